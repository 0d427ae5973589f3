"""Files the zoo writes whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from zoo.errors import ZooError

#: the errors of a disk that takes nothing more: full, over its quota, mounted read-only
FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_ERRORS = (*FULL, errno.EROFS)


class DiskError(ZooError):
    """A write the disk refused (full, over quota, read-only), in one line naming the folder. What
    was written before stays: a run's directory and its earlier checkpoints are still good."""

    keep_run = True

    def __init__(self, message: str, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


def disk_error(err: BaseException, path: str | os.PathLike | None = None) -> DiskError | None:
    """``err`` as a :class:`DiskError` when it is the disk refusing a write (no space left, a quota
    used up, a read-only file system), else ``None``. It names the folder of the file the error
    names (the target of a copy first), or else of ``path``, the file being written."""
    if not isinstance(err, OSError) or err.errno not in DISK_ERRORS:
        return None
    named = err.filename2 or err.filename
    target = Path(os.fsdecode(named)) if isinstance(named, (str, bytes, os.PathLike)) else None
    if path is not None and (target is None or _same_folder(target, Path(path))):
        target = Path(path)  # not the temporary file beside it (staged): the file meant
    folder = target.parent if target is not None else None
    where = f"the disk holding {folder}" if folder is not None else "the disk"
    if err.errno == errno.EROFS:
        why = f"{folder if folder is not None else 'it'} is on a read-only file system"
    elif err.errno == errno.EDQUOT:
        why = f"the disk quota of {folder if folder is not None else 'this user'} is used up"
    else:
        why = f"{where} is full (no space left on device)"
    what = f"cannot write {target}" if target is not None else "cannot write"
    advice = "write elsewhere" if err.errno == errno.EROFS else "free some space there, or write elsewhere"
    return DiskError(f"{what}: {why}; {advice}.", full=err.errno in FULL)


def _same_folder(a: Path, b: Path) -> bool:
    return os.path.abspath(a.parent) == os.path.abspath(b.parent)


def _raise_disk_error(err: OSError, path: Path) -> None:
    """Raise ``err`` as a :class:`DiskError` when it is one; return otherwise."""
    found = disk_error(err, path)
    if found is not None:
        raise found from None


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


def write_json_atomic(path: str | os.PathLike, data: Any, in_place_when_full: bool = False) -> None:
    """``data`` as indented JSON in ``path`` (its folder made if needed), written atomically.

    With ``in_place_when_full``, a full disk, which has no room for the temporary file, gets the
    file rewritten in place instead, when the new text fits in the blocks the file already holds
    (a run's ``run.json`` saying ``failed`` because the disk filled up, instead of ``running``
    forever); otherwise, and for any other file, a full disk is a :class:`DiskError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _raise_disk_error(err, path)
        raise
    text = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    try:
        atomic_write(path, lambda handle: handle.write(text), binary=True)
    except DiskError as err:
        if not (in_place_when_full and err.full and _fits_in_place(path, len(text))):
            raise
        try:
            with path.open("r+b") as handle:
                handle.write(text)
                handle.truncate()
        except OSError:
            raise err from None


def _fits_in_place(path: Path, size: int) -> bool:
    """Whether ``size`` bytes fit in the blocks the regular file ``path`` holds already."""
    try:
        info = path.lstat()
    except OSError:
        return False
    import stat

    return stat.S_ISREG(info.st_mode) and size <= getattr(info, "st_blocks", 0) * 512


@contextmanager
def staged(path: str | os.PathLike, suffix: str = ".tmp", make_folder: bool = False) -> Iterator[Path]:
    """A new empty file beside ``path`` to write ``path`` through: when the block ends it is
    renamed to ``path`` (with the permissions any new file gets, not a temporary file's
    owner-only ones); when the block raises it is removed and ``path`` is left as it was. The
    folder must exist, unless ``make_folder``. A full disk or a read-only folder, here or in the
    block, is one :class:`DiskError` naming the folder (the partial file removed, so that the space
    is free again)."""
    path = Path(path)
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as err:
        _raise_disk_error(err, path)
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as err:
        _raise_disk_error(err, path)  # after the finally below has removed the partial file
        raise
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


def check_writable(
    path: str | os.PathLike, option: str, example: str | os.PathLike, make_folder: bool = False
) -> None:
    """Raise :class:`ZooError` naming ``option`` unless a file can be written at ``path``: it is no
    folder (``example`` shows a file name to give instead), its folder exists, and a new file can
    be made there (tried, as :func:`atomic_write` will: ``os.access`` says yes to root anywhere).
    With ``make_folder``, a missing folder is fine when it can be made (tried in its nearest
    existing parent; nothing is made). Checked before the work whose result it will hold."""
    path = Path(path)
    if path.is_dir():
        raise ZooError(f"{option}: {path} is a folder; give a file name in it, such as {example}.")
    folder = path.parent
    if make_folder:
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ZooError(f"{option}: the folder {folder} {what}.")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        why = err.strerror or type(err).__name__
        shown = Path.cwd() if str(folder) == "." else folder
        raise ZooError(f"{option}: cannot write in {shown} ({why}).") from None
    os.close(handle)
    os.unlink(name)
