"""Files the zoo writes whole or not at all."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Write ``path`` through a temporary file beside it, renamed into place once ``write(handle)``
    returns: a kill during the write never leaves a truncated ``path``, and a failed write leaves
    no temporary file. The folder must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open(
            "wb" if binary else "w", **({} if binary else {"newline": "", "encoding": "utf-8"})
        ) as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """``data`` as indented JSON in ``path`` (its folder made if needed), written atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2) + "\n"))


def temporary_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file in ``path``'s folder to write ``path`` through; :func:`move_into_place`
    then renames it to ``path``."""
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def move_into_place(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename the finished ``tmp`` to ``path``, with the permissions a new file gets (a temporary
    file is readable by its owner alone, which a shared or packaged file must not be)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
