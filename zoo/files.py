"""Files the zoo writes whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Write ``path`` through a temporary file beside it, renamed into place once ``write(handle)``
    returns: a kill during the write never leaves a truncated ``path``, and a failed write leaves
    no temporary file. The folder must exist."""
    with (
        staged(path) as tmp,
        tmp.open(
            "wb" if binary else "w", **({} if binary else {"newline": "", "encoding": "utf-8"})
        ) as handle,
    ):
        write(handle)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """``data`` as indented JSON in ``path`` (its folder made if needed), written atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2) + "\n"))


@contextmanager
def staged(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A new empty file beside ``path`` to write ``path`` through: when the block ends it is
    renamed to ``path`` (with the permissions any new file gets, not a temporary file's
    owner-only ones); when the block raises it is removed and ``path`` is left as it was. The
    folder must exist."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def utf8_fault(path: Path, err: UnicodeDecodeError) -> str:
    """Where in ``path`` its first byte that is not UTF-8 is, in words."""
    try:
        with path.open("rb") as handle:
            if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                return "it is UTF-16; save it as UTF-8"
            handle.seek(0)
            base, line, carry = 0, 1, b""
            while True:
                block = handle.read(1 << 20)
                data = carry + block
                try:
                    data.decode("utf-8")
                    good = len(data)
                except UnicodeDecodeError as bad:
                    if not (block and bad.reason == "unexpected end of data"):
                        line += data.count(b"\n", 0, bad.start)
                        return (
                            f"byte 0x{data[bad.start]:02x} at offset {base + bad.start}, line {line}; "
                            "save it as UTF-8"
                        )
                    good = bad.start  # a character cut by the block's end: decode it with the next
                if not block:
                    break
                line += data.count(b"\n", 0, good)
                base += good
                carry = data[good:]
    except OSError:
        pass
    return f"{err.reason}; save it as UTF-8"


def check_writable(path: str | os.PathLike, option: str, example: str | os.PathLike) -> None:
    """Raise :class:`ZooError` naming ``option`` unless a file can be written at ``path``: it is no
    folder (``example`` shows a file name to give instead), its folder exists, and a new file can
    be made there (tried, as :func:`atomic_write` will: ``os.access`` says yes to root anywhere).
    Checked before the work whose result it will hold."""
    from zoo.errors import ZooError

    path = Path(path)
    if path.is_dir():
        raise ZooError(f"{option}: {path} is a folder; give a file name in it, such as {example}.")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ZooError(f"{option}: the folder {folder} {what}.")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ZooError(f"{option}: cannot write in {folder} ({why}).") from None
    os.close(handle)
    os.unlink(name)
