"""A character corpus tokenized once into a memory-mapped file, for text larger than memory.

:func:`prepare_token_file` reads the corpus in chunks of ``chunk_chars`` characters, so its memory
does not grow with the corpus, and keeps two files in a folder beside the data:

- ``tokens.bin``: one id per character, ``uint16`` when the vocabulary has at most 65,536
  characters, else ``uint32``;
- ``meta.json``: the vocabulary, the split bounds and a fingerprint of the corpus (each file's
  path, size and modification time, and the options that shape the ids).

A later run whose corpus and options give the same fingerprint maps the existing file instead of
reading the text again. Both files are written under temporary names and renamed into place, so
a run killed while preparing leaves no half-written token file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

FORMAT_VERSION = 1
UNKNOWN_CODE = 0xFFFD  # U+FFFD REPLACEMENT CHARACTER: stands for characters not seen in training


def fingerprint(files: list[Path], **options: Any) -> str:
    """A digest of the files' paths, sizes and modification times and of ``options``."""
    listing = []
    for path in files:
        stat = path.stat()
        listing.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"version": FORMAT_VERSION, "files": listing, "options": options}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def iter_text_chunks(
    files: list[Path], max_chars: int | None, errors: str, chunk_chars: int
) -> Iterator[str]:
    """The corpus as :func:`zoo.data.text.read_text` joins it (UTF-8, a leading byte-order mark
    dropped, line endings as ``\\n``, each file ending with a newline, cut at ``max_chars``),
    in pieces of at most ``chunk_chars`` characters."""
    total = 0
    for path in files:
        last = ""
        try:
            # universal newlines turn \r\n and \r into \n, also across chunk boundaries
            with open(path, encoding="utf-8-sig", errors=errors, newline=None) as handle:
                while chunk := handle.read(chunk_chars):
                    last = chunk[-1]
                    if max_chars is not None and total + len(chunk) >= max_chars:
                        yield chunk[: max_chars - total]
                        return
                    total += len(chunk)
                    yield chunk
        except UnicodeDecodeError as err:
            raise ZooError(
                f"data.path: {path} is not UTF-8 text ({err.reason}); convert it to UTF-8, "
                "or leave it out with data.glob (e.g. '*.txt')."
            ) from None
        if last and last != "\n":
            total += 1
            yield "\n"
            if max_chars is not None and total >= max_chars:
                return


def code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array (one per character)."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")


def _chunks_of(array: np.ndarray, start: int, stop: int, size: int) -> Iterator[np.ndarray]:
    for begin in range(start, stop, size):
        yield np.asarray(array[begin : min(stop, begin + size)])


def prepare_token_file(
    files: list[Path],
    folder: Path,
    split_bounds: Callable[[int], dict[str, tuple[int, int]]],
    max_chars: int | None,
    errors: str,
    chunk_chars: int,
    options: dict[str, Any],
    source: str | None = None,
) -> dict[str, Any]:
    """Make (or reuse) ``folder/tokens.bin`` and ``folder/meta.json`` for the corpus ``files``.

    ``split_bounds(n)`` turns the corpus length into the splits' ``(start, stop)`` character
    bounds (and raises :class:`ZooError` when they do not fit); the vocabulary is the training
    split's characters plus U+FFFD, in code-point order. Returns the metadata, with the token
    file's path under ``"tokens"``. ``source`` names the corpus in messages (the option's value).
    A failed preparation leaves no folder it made.
    """
    print_key = fingerprint(files, max_chars=max_chars, errors=errors, **options)
    meta_path, tokens_path = folder / "meta.json", folder / "tokens.bin"
    if meta_path.is_file() and tokens_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        expected = meta.get("length", -1) * np.dtype(meta.get("dtype", "uint8")).itemsize
        if meta.get("fingerprint") == print_key and tokens_path.stat().st_size == expected:
            meta["bounds"] = {k: tuple(v) for k, v in meta["bounds"].items()}
            return {**meta, "tokens": tokens_path}
    made = [f for f in [folder, *folder.parents] if not f.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(
            f"data.token_dir: cannot create {folder} ({err.strerror}); name a writable folder."
        ) from None

    codes_path = folder / f".codes.{os.getpid()}.tmp"
    tmp_tokens = folder / f".tokens.{os.getpid()}.tmp"
    try:
        # pass 1: the text's code points, as uint32, to a scratch file
        length = 0
        with open(codes_path, "wb") as out:
            for text in iter_text_chunks(files, max_chars, errors, chunk_chars):
                points = code_points(text)
                out.write(points.tobytes())
                length += len(points)
        if length == 0:
            where = source or (files[0] if len(files) == 1 else files[0].parent if files else folder)
            raise ZooError(f"data.path: {where} holds no text (0 characters).")
        bounds = split_bounds(length)
        codes = np.memmap(codes_path, dtype="<u4", mode="r", shape=(length,))
        # pass 2: the vocabulary of the training split
        chars = np.array([UNKNOWN_CODE], dtype=np.uint32)
        for chunk in _chunks_of(codes, *bounds["train"], chunk_chars):
            chars = np.union1d(chars, np.unique(chunk))
        unknown_id = int(np.searchsorted(chars, UNKNOWN_CODE))
        dtype = np.uint16 if len(chars) <= 2**16 else np.uint32
        # pass 3: ids, with unseen characters as the id of U+FFFD
        with open(tmp_tokens, "wb") as out:
            for chunk in _chunks_of(codes, 0, length, chunk_chars):
                ids = np.searchsorted(chars, chunk)
                known = chars[np.minimum(ids, len(chars) - 1)] == chunk
                out.write(np.where(known, ids, unknown_id).astype(dtype).tobytes())
        del codes
        meta = {
            "fingerprint": print_key,
            "length": length,
            "dtype": np.dtype(dtype).name,
            "vocab": "".join(map(chr, chars.tolist())),
            "unknown_id": unknown_id,
            "bounds": bounds,
        }
        os.replace(tmp_tokens, tokens_path)
        tmp_meta = folder / f".meta.{os.getpid()}.tmp"
        tmp_meta.write_text(json.dumps(meta) + "\n")
        os.replace(tmp_meta, meta_path)
    except BaseException:
        codes_path.unlink(missing_ok=True)
        tmp_tokens.unlink(missing_ok=True)
        for made_folder in made:  # innermost first; a folder something else wrote into stays
            try:
                made_folder.rmdir()
            except OSError:
                break
        raise
    finally:
        codes_path.unlink(missing_ok=True)
        tmp_tokens.unlink(missing_ok=True)
    return {**meta, "tokens": tokens_path}
