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
