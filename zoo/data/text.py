"""Token sources for sequence models: character-level text for language models, and synthetic
sequence tasks with known answers.

:class:`CharTextDataModule` serves a text (a file, a folder of files or, by default, the source of
Python's standard library, which every installation has) as ``(x, y)`` windows of character ids
for :class:`~zoo.models.GPT`. :class:`SequenceTaskDataModule` generates small problems (reverse,
sort, majority) whose answers are known, for quick checks of sequence models such as
:class:`~zoo.models.SequenceClassifier`. Both give ``(N, T)`` int64 token ids, ``task =
"multiclass"``, ``input_shape = [T]`` and a :attr:`vocab` string that the CLI links into the model.
"""

from __future__ import annotations

import os
import string
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from zoo.data.base import ArraySplit, Loaded, OnDevice, SplitSize, ZooDataModule, _split_count
from zoo.data.loader import ResumableIteration, TensorLoader
from zoo.data.token_file import code_points
from zoo.distributed import check_rank, derive_seed
from zoo.errors import ZooError

#: the character that stands for validation/test characters never seen in training
#: (U+FFFD REPLACEMENT CHARACTER); it is always part of a :class:`CharTextDataModule` vocabulary
UNKNOWN_CHAR = "\ufffd"

#: how many characters of the default corpus (the standard library's source) are read
DEFAULT_CORPUS_CHARS = 3_000_000

#: folders of the standard library that the default corpus leaves out: test suites and
#: third-party packages
STDLIB_SKIPPED_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)

_SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
_MORE_TEXT = {"train": "more text", "val": "a larger data.val_size", "test": "a larger data.test_size"}


def _positive_int(value: Any, option: str, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZooError(f"data.{option} must be an integer >= 1{hint}; got {value!r}.")
    return value


# ---------------------------------------------------------------------------- reading text


def stdlib_source_files(root: str | Path | None = None) -> list[Path]:
    """The ``*.py`` files of the standard library (``sysconfig.get_paths()["stdlib"]``) in path
    order, without test suites (folders ``test``, ``tests``, ``idle_test``; files ``test_*.py``)
    and without ``site-packages``."""
    root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in STDLIB_SKIPPED_DIRS and not d.startswith(".")]
        found += [Path(folder, f) for f in files if f.endswith(".py") and not f.startswith(("test_", "."))]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _read(path: Path, errors: str) -> str:
    """One file as text: UTF-8 (a leading byte-order mark dropped), line endings as ``\\n``."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as err:
        raise ZooError(
            f"data.path: {path} is not UTF-8 text ({err.reason} at byte {err.start}); convert it to "
            "UTF-8, or leave it out with data.glob (e.g. '*.txt')."
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _join(paths: list[Path], max_chars: int | None, errors: str) -> str:
    """The files' texts in order, each ending with a newline, cut at ``max_chars`` characters."""
    parts: list[str] = []
    total = 0
    for path in paths:
        text = _read(path, errors)
        if text and not text.endswith("\n"):
            text += "\n"
        parts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    joined = "".join(parts)
    return joined[:max_chars] if max_chars is not None else joined


# ---------------------------------------------------------------------------- loaders


class RandomWindowLoader(ResumableIteration):
    """Batches of random windows of a token sequence, for language-model training.

    Each batch holds ``batch_size`` windows of ``block_size + 1`` consecutive tokens starting at
    uniformly drawn offsets: ``x`` is a window without its last token and ``y`` without its first
    (both int64 ``(batch_size, block_size)``), so ``y[:, t]`` is the token that follows
    ``x[:, :t + 1]``. One pass (epoch) is ``num_batches`` batches; pass ``k`` draws its offsets
    from a generator seeded with ``(seed, k)``, so runs with the same seed see the same windows
    and every epoch sees new ones.

    **Several processes.** An epoch stays ``num_batches * batch_size`` windows in all: each step
    draws ``world_size * batch_size`` offsets from the shared generator and rank ``r`` takes rows
    ``r, r + world_size, ...``, so every rank trains on different windows, the ranks take
    ``ceil(num_batches / world_size)`` steps each, and two ranks with ``batch_size`` B read
    exactly the windows one process with ``2B`` reads.

    Args:
        tokens: 1-D token ids, at least ``block_size + 1`` of them.
        block_size: tokens per example.
        batch_size: windows per batch (per rank).
        num_batches: batches of ``batch_size`` windows per pass, over all ranks together.
        seed: seeds the offsets.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        block_size: int,
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if tokens.ndim != 1 or len(tokens) < block_size + 1:
            raise ValueError(
                f"need a 1-D sequence of at least {block_size + 1} tokens, got {tuple(tokens.shape)}"
            )
        check_rank(rank, world_size)
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._offsets = torch.arange(block_size, device=tokens.device)

    def __len__(self) -> int:
        return -(-self.num_batches // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass draw the windows of epoch ``epoch`` (e.g. when resuming a run)."""
        self.epoch = epoch

    @property
    def sampler(self) -> RandomWindowLoader:
        """The loader is its own sampler: Lightning's loops call ``loader.sampler.set_epoch(epoch)``
        before every epoch, as for a ``DataLoader``."""
        return self

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        skip = self._batches_to_skip(epoch)  # resumed mid-epoch: draw and drop the served batches
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        self.epoch += 1
        starts_high = len(self.tokens) - self.block_size  # offsets 0 .. len - block_size - 1
        for i in range(len(self)):
            starts = torch.randint(starts_high, (self.world_size * self.batch_size, 1), generator=generator)
            if i < skip:
                continue
            self._served(epoch, i + 1)
            # drawn on the host (the same windows on every device), indexed where the tokens are
            index = starts[self.rank :: self.world_size].to(self._offsets.device) + self._offsets
            yield self.tokens[index], self.tokens[index + 1]


def contiguous_windows(tokens: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of the consecutive, non-overlapping windows of ``tokens``: window ``i`` is
    ``x = tokens[i*T : (i+1)*T]`` and ``y`` the same shifted by one (``T = block_size``). Every
    token after the first is a target exactly once, except the last ``(len - 1) % T``, which fill
    no whole window. Views of ``tokens``, no copies."""
    n = (len(tokens) - 1) // block_size
    x = tokens[: n * block_size].view(n, block_size)
    y = tokens[1 : n * block_size + 1].view(n, block_size)
    return x, y


# ---------------------------------------------------------------------------- character-level text


class CharTextDataModule(ZooDataModule):
    """Character-level language-model data from any UTF-8 text: one token per character.

    **Text.** ``path`` is a file, or a folder whose files matching ``glob`` (searched
    recursively; hidden files and folders skipped) are read in path order. Without ``path``, the
    offline default corpus is the Python source (``*.py``) of the standard library
    (``sysconfig.get_paths()["stdlib"]``), without its test suites and without site-packages
    (see :func:`stdlib_source_files`), cut at ``max_chars`` (default
    :data:`DEFAULT_CORPUS_CHARS` = 3,000,000 characters, read in about 0.1 s). Files are decoded
    as UTF-8 (a leading byte-order mark is dropped, line endings become ``\\n``) and joined, each
    ending with a newline (one is added where a file lacks it); a file that is not UTF-8 is a
    :class:`ZooError` naming it (the default corpus replaces bad bytes with U+FFFD instead).

    **Splits** are contiguous, by position: training is the first part of the text, validation
    the next ``val_size`` characters and test the last ``test_size`` characters; they do not
    overlap and together are the whole text, in order.

    **Vocabulary** (:attr:`vocab`): the distinct characters of the *training* text plus
    :data:`UNKNOWN_CHAR` (U+FFFD), in code-point order; id ``i`` is ``vocab[i]``. Validation and
    test characters never seen in training become the id of U+FFFD (:attr:`unknown_id`), so
    every id is valid for a model whose ``num_classes`` is ``len(vocab)``. The whole text is
    stored once as one int64 tensor of ids (:attr:`tokens`); the splits are views of it.

    **Text larger than memory** (``memory_map: true``): the text is read in chunks of
    ``chunk_chars`` characters and tokenized once into a file of ``uint16`` ids (``uint32`` for
    vocabularies over 65,536 characters) in ``token_dir``, with its vocabulary and split bounds
    in ``meta.json`` beside it (see :mod:`zoo.data.token_file`); :attr:`tokens` is then a
    memory map of that file, and windows read only their own pages. A later run with the same
    files (paths, sizes, modification times) and options reuses the file. The ids, splits and
    batches are those of the in-memory form; batches leave the loaders in the file's integer type
    and become int64 on the device (:meth:`on_after_batch_transfer`).

    **Batches** ``(x, y)``: int64 ``(N, block_size)`` with ``y`` = ``x`` shifted by one character.
    Training draws ``batch_size`` windows at random offsets of the training text,
    ``train_batches_per_epoch`` batches per epoch, seeded by ``seed`` and the epoch (see
    :class:`RandomWindowLoader`). Validation and test are the split's consecutive,
    non-overlapping windows in order (:func:`contiguous_windows`), the same in every run, so
    their losses are exact and comparable; predict serves the test windows' ``x``.

    Args:
        path: a text file or a folder of text files; ``None``: the standard library's source.
        glob: which files of a folder to read, e.g. ``"*.txt"`` or ``"*.py"`` (ignored for a file).
        block_size: characters per example (the model's context, ``input_shape = [block_size]``).
        batch_size: windows per training batch.
        eval_batch_size: windows per validation, test and predict batch (default: ``batch_size``).
        val_size: the validation split, a fraction of the text (``0.05``) or a number of characters.
        test_size: the test split, likewise.
        train_batches_per_epoch: random-window batches that make one training epoch.
        max_chars: read at most this many characters; ``None``: the whole of ``path``, or
            :data:`DEFAULT_CORPUS_CHARS` of the default corpus.
        seed: seeds the training windows.
        memory_map: tokenize into a file once and memory-map it, for corpora larger than memory.
        token_dir: where the token file is kept; ``None``: beside the data (``<file>.zoo-tokens/``
            for a file, ``<folder>/.zoo-tokens/`` for a folder, ``~/.cache/lightning-zoo/`` for
            the default corpus).
        chunk_chars: characters read and encoded at a time when ``memory_map`` is set.
        on_device: keep the ids on the training device (one int64 copy of the text) and cut the
            windows there: ``true``, ``false`` or ``auto`` (see :class:`~zoo.data.ZooDataModule`).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        glob: str = "*",
        block_size: int = 64,
        batch_size: int = 12,
        eval_batch_size: int | None = None,
        val_size: SplitSize = 0.05,
        test_size: SplitSize = 0.05,
        train_batches_per_epoch: int = 200,
        max_chars: int | None = None,
        seed: int = 0,
        memory_map: bool = False,
        token_dir: str | Path | None = None,
        chunk_chars: int = 1 << 22,
        on_device: OnDevice = "auto",
    ) -> None:
        _positive_int(block_size, "block_size", " (characters per example)")
        _positive_int(chunk_chars, "chunk_chars")
        _positive_int(batch_size, "batch_size")
        _positive_int(train_batches_per_epoch, "train_batches_per_epoch")
        if max_chars is not None:
            _positive_int(max_chars, "max_chars", " or null (no limit)")
        if not isinstance(glob, str) or not glob:
            raise ZooError(f"data.glob must be a file pattern such as '*.txt'; got {glob!r}.")
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_size=val_size,
            test_size=test_size,
            seed=seed,
            stratify=False,
            standardize=False,
            on_device=on_device,
        )
        self.path = Path(path) if path is not None else None
        self.glob = glob
        self.block_size = block_size
        self.train_batches_per_epoch = train_batches_per_epoch
        self.max_chars = max_chars
        self.memory_map = memory_map
        self.token_dir = Path(token_dir) if token_dir is not None else None
        self.chunk_chars = chunk_chars
        self._tokens: torch.Tensor | None = None
        self._bounds: dict[str, tuple[int, int]] = {}
        self._vocab = ""

    # ------------------------------------------------------------------ the text

    def files(self) -> list[Path]:
        """The files read, in order."""
        if self.path is None:
            return stdlib_source_files()
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise ZooError(f"data.path: no such file or folder: {self.path}")
        found = sorted(
            p
            for p in self.path.rglob(self.glob)
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.path).parts)
        )
        if not found:
            raise ZooError(
                f"data.glob: no files match {self.glob!r} in the folder {self.path} (searched recursively)."
            )
        return found

    def read_text(self) -> str:
        """The whole text, before splitting (see the class description for how it is read)."""
        if self.path is None:
            limit = self.max_chars if self.max_chars is not None else DEFAULT_CORPUS_CHARS
            return _join(self.files(), limit, errors="replace")
        return _join(self.files(), self.max_chars, errors="strict")

    def load(self) -> Loaded:
        raise NotImplementedError("CharTextDataModule reads text with read_text(), not arrays")

    # ------------------------------------------------------------------ preparation

    def token_folder(self) -> Path:
        """Where ``memory_map`` keeps the token file (see ``token_dir``)."""
        if self.token_dir is not None:
            return self.token_dir
        if self.path is None:
            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            return cache / "lightning-zoo" / "stdlib-chars"
        if self.path.is_file():
            return self.path.with_name(self.path.name + ".zoo-tokens")
        return self.path / ".zoo-tokens"

    def _prepare_memory_map(self) -> None:
        from zoo.data.token_file import prepare_token_file

        default = self.path is None
        meta = prepare_token_file(
            self.files(),
            self.token_folder(),
            self._split_bounds,
            max_chars=DEFAULT_CORPUS_CHARS if default and self.max_chars is None else self.max_chars,
            errors="replace" if default else "strict",
            chunk_chars=self.chunk_chars,
            options={"val_size": self.val_size, "test_size": self.test_size},
            source=None if default else str(self.path),
        )
        # copy-on-write: writable for torch, never written back to the file
        ids = np.memmap(meta["tokens"], dtype=meta["dtype"], mode="c", shape=(meta["length"],))
        self._tokens = torch.from_numpy(ids)
        self._bounds = self._split_bounds(meta["length"])  # also checks block_size against the splits
        self._vocab, self._unknown_id = meta["vocab"], meta["unknown_id"]
        self._task, self._classes, self._num_classes = "multiclass", None, len(self._vocab)

    def prepare(self) -> None:
        """Read the text, build the vocabulary from the training part and encode it (once)."""
        if self._tokens is not None:
            return
        if self.memory_map:
            self._prepare_memory_map()
            return
        text = self.read_text()
        where = "the standard library's source" if self.path is None else str(self.path)
        if not text:
            raise ZooError(f"data.path: {where} holds no text (0 characters).")
        bounds = self._split_bounds(len(text))
        points = code_points(text)
        train_points = points[: bounds["train"][1]]
        chars = np.union1d(np.unique(train_points), [ord(UNKNOWN_CHAR)]).astype(np.int64)
        self._vocab = "".join(map(chr, chars.tolist()))
        unknown_id = int(np.searchsorted(chars, ord(UNKNOWN_CHAR)))
        # a lookup table from code point to id; unseen code points get the unknown id
        table = np.full(int(max(points.max(), chars[-1])) + 1, unknown_id, dtype=np.int64)
        table[chars] = np.arange(len(chars))
        self._tokens = torch.from_numpy(table[points])
        self._bounds = bounds
        self._unknown_id = unknown_id
        self._task, self._classes, self._num_classes = "multiclass", None, len(self._vocab)

    def _split_bounds(self, n: int) -> dict[str, tuple[int, int]]:
        test = _split_count(self.test_size, n, "test_size")
        val = _split_count(self.val_size, n, "val_size")
        train = n - val - test
        if train < 1:
            raise ZooError(
                f"data.val_size={self.val_size} and data.test_size={self.test_size} take {val} + {test} "
                f"of the {n} characters and leave none to train on."
            )
        bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, n)}
        for name, (start, stop) in bounds.items():
            chars = stop - start
            if chars < self.block_size + 1:
                more = _MORE_TEXT[name]
                fix = f"use data.block_size <= {chars - 1}, or {more}" if chars > 1 else f"use {more}"
                raise ZooError(
                    f"data.block_size={self.block_size} is too large for the {_SPLIT_WORDS[name]} split: "
                    f"it has {chars} characters and one window needs block_size + 1 = {self.block_size + 1}; "
                    f"{fix}."
                )
        return bounds

    # ------------------------------------------------------------------ facts the model needs

    @property
    def vocab(self) -> str:
        """The characters of the vocabulary in id order (those of the training text and U+FFFD)."""
        self.prepare()
        return self._vocab

    def preprocessing(self) -> dict[str, Any]:
        """Characters become ids through the vocabulary (stored with the model)."""
        return {"kind": "tokens", "task": self.task, "input_shape": self.input_shape, "vocab": self.vocab}

    @property
    def unknown_id(self) -> int:
        """The id of :data:`UNKNOWN_CHAR`, which stands for characters not seen in training."""
        self.prepare()
        return self._unknown_id

    @property
    def input_shape(self) -> list[int]:
        return [self.block_size]

    @property
    def tokens(self) -> torch.Tensor:
        """The whole text as one 1-D int64 tensor of ids; the splits are consecutive parts of it."""
        self.prepare()
        return self._tokens

    def split_tokens(self, name: str) -> torch.Tensor:
        """The ids of one split (``train``, ``val`` or ``test``): a view of :attr:`tokens`."""
        self.prepare()
        start, stop = self._bounds[name]
        return self._tokens[start:stop]

    @property
    def num_train_examples(self) -> int:
        """Distinct training windows (one per start offset)."""
        return max(1, self.split_sizes()["train"] - self.block_size)

    def split_sizes(self) -> dict[str, int]:
        """Characters per split."""
        self.prepare()
        return {name: stop - start for name, (start, stop) in self._bounds.items()}

    def encode(self, text: str) -> torch.Tensor:
        """The ids of ``text`` (characters outside the vocabulary become :attr:`unknown_id`)."""
        ids = {c: i for i, c in enumerate(self.vocab)}
        return torch.tensor([ids.get(c, self._unknown_id) for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The text of a 1-D sequence of ids."""
        vocab = self.vocab
        return "".join(vocab[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids))

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def _data_bytes(self) -> int:
        return len(self.tokens) * 8  # int64 ids on the device (a token file's may be narrower)

    def _loader_tokens(self, name: str) -> torch.Tensor:
        """A split's ids where the loaders index them: a view of one int64 copy of the whole text on
        the training device when the data is kept there (``on_device``), else :meth:`split_tokens`."""
        if not self.keeps_data_on_device():
            return self.split_tokens(name)
        (tokens,) = self._device_copy("tokens", (self.tokens,), torch.long)
        start, stop = self._bounds[name]
        return tokens[start:stop]

    def train_dataloader(self) -> RandomWindowLoader:
        rank, world = self.distributed_position()
        return RandomWindowLoader(
            self._loader_tokens("train"),
            self.block_size,
            self.batch_size,
            self.train_batches_per_epoch,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )

    def _windows_loader(self, name: str, targets: bool = True) -> TensorLoader:
        """The split's consecutive windows in order, each counted once across ranks."""
        x, y = contiguous_windows(self._loader_tokens(name), self.block_size)
        rank, world = self.distributed_position()
        return TensorLoader(
            *((x, y) if targets else (x,)), batch_size=self.eval_batch_size, rank=rank, world_size=world
        )

    def val_dataloader(self) -> TensorLoader:
        return self._windows_loader("val")

    def test_dataloader(self) -> TensorLoader:
        return self._windows_loader("test")

    def predict_dataloader(self) -> TensorLoader:
        return self._windows_loader("test", targets=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Ids read from a token file travel as uint16 (a quarter of int64's bytes) and become
        int64 on the device."""
        if isinstance(batch, torch.Tensor):
            return batch.long()
        return type(batch)(t.long() for t in batch) if isinstance(batch, (list, tuple)) else batch


# ---------------------------------------------------------------------------- synthetic sequence tasks

#: the characters that name the tokens of :class:`SequenceTaskDataModule` (token ``i`` is ``TOKEN_CHARS[i]``)
TOKEN_CHARS = string.digits + string.ascii_lowercase + string.ascii_uppercase

Problem = Literal["reverse", "sort", "majority"]

#: problems with one answer token per input token (targets ``(N, T)``); the others have one per sequence
PER_TOKEN_PROBLEMS = ("reverse", "sort")
PROBLEMS = ("reverse", "sort", "majority")


def make_sequence_task(
    problem: str, num_examples: int, length: int, vocab_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random int64 token sequences ``x`` ``(N, length)`` and their answers ``y``.

    ``reverse``: ``y = x[:, ::-1]``; ``sort``: ``y`` = each row sorted; both ``(N, length)``.
    ``majority``: ``y`` ``(N,)`` is the most frequent token of each row, which is unique by
    construction: where the uniform draw ties, one occurrence of each other tied token is
    replaced by a randomly chosen winner among them.
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab_size, size=(num_examples, length), dtype=np.int64)
    if problem == "reverse":
        return x, np.ascontiguousarray(x[:, ::-1])
    if problem == "sort":
        return x, np.sort(x, axis=1)
    counts = np.zeros((num_examples, vocab_size), dtype=np.int64)
    np.add.at(counts, (np.arange(num_examples)[:, None], x), 1)
    top = counts.max(axis=1, keepdims=True)
    tied = counts == top
    # a random winner among the tied tokens of each row: the tied token with the largest random key
    winner = np.argmax(np.where(tied, rng.random(counts.shape), -1.0), axis=1)
    for row in np.nonzero(tied.sum(axis=1) > 1)[0]:
        for token in np.nonzero(tied[row])[0]:
            if token != winner[row]:
                position = np.nonzero(x[row] == token)[0][0]
                x[row, position] = winner[row]
    return x, winner.astype(np.int64)


class SequenceTaskDataModule(ZooDataModule):
    """Synthetic sequence problems with known answers, for quick checks of sequence models.

    Inputs ``x`` are uniformly random token sequences, int64 ``(N, length)`` with ids
    ``0..vocab_size-1``, named by the characters ``0-9``, ``a-z``, ``A-Z`` (:attr:`vocab`).
    Generated from ``seed`` (the same seed gives the same examples and splits); split by
    :class:`ZooDataModule` into seeded train/val/test sets, with no standardization.

    Problems (``problem``):

    - ``reverse``: the sequence backwards; ``y`` ``(N, length)``, one answer token per position
      (for ``SequenceClassifier(pooling="none")``).
    - ``sort``: the sequence in ascending order; ``y`` ``(N, length)``.
    - ``majority``: the most frequent token, unique by construction; ``y`` ``(N,)`` (for a pooled
      classifier).

    ``num_classes`` is ``vocab_size`` for all three (class ``i`` is token ``vocab[i]``, see
    :attr:`classes`), ``input_shape`` is ``[length]``.

    Args:
        problem: ``reverse``, ``sort`` or ``majority``.
        length: tokens per sequence.
        vocab_size: distinct tokens, 2 to 62.
        num_examples: sequences generated (before splitting).
        batch_size: training batch size.
        eval_batch_size: validation, test and predict batch size (default: ``batch_size``).
        val_size: validation split, a fraction (``0.1``) or a count of sequences.
        test_size: test split, likewise.
        seed: seeds the generation, the split and the shuffling.
        stratify: keep the answers' class proportions equal across splits (``majority`` only;
            per-token problems are split without stratification).
        on_device: keep the splits on the training device: ``true``, ``false`` or ``auto`` (see
            :class:`~zoo.data.ZooDataModule`).
    """

    def __init__(
        self,
        problem: Problem = "reverse",
        length: int = 16,
        vocab_size: int = 10,
        num_examples: int = 10000,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_size: SplitSize = 0.1,
        test_size: SplitSize = 0.1,
        seed: int = 0,
        stratify: bool = True,
        on_device: OnDevice = "auto",
    ) -> None:
        if problem not in PROBLEMS:
            raise ZooError(f"data.problem must be one of {', '.join(PROBLEMS)}; got {problem!r}.")
        _positive_int(length, "length", " (tokens per sequence)")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 2 <= vocab_size <= 62:
            raise ZooError(
                f"data.vocab_size must be an integer from 2 to {len(TOKEN_CHARS)}; got {vocab_size!r}."
            )
        if problem == "majority" and length < 2:
            raise ZooError(f"data.length must be >= 2 for the majority problem; got {length}.")
        _positive_int(num_examples, "num_examples", " (sequences to generate)")
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_size=val_size,
            test_size=test_size,
            seed=seed,
            stratify=stratify and problem not in PER_TOKEN_PROBLEMS,
            standardize=False,
            on_device=on_device,
        )
        self.problem = problem
        self.length = length
        self.vocab_size = vocab_size
        self.num_examples = num_examples

    def load(self) -> Loaded:
        x, y = make_sequence_task(self.problem, self.num_examples, self.length, self.vocab_size, self.seed)
        return Loaded(ArraySplit(x, y), task="multiclass", classes=list(TOKEN_CHARS[: self.vocab_size]))

    @property
    def per_token(self) -> bool:
        """Whether the answer has one token per input position (targets ``(N, length)``)."""
        return self.problem in PER_TOKEN_PROBLEMS

    @property
    def vocab(self) -> str:
        """The token characters in id order."""
        return TOKEN_CHARS[: self.vocab_size]

    def _standardize(self, splits: dict[str, ArraySplit]) -> None:
        """Token ids are categories: never scaled."""

    def preprocessing(self) -> dict[str, Any]:
        """Token characters become ids through the vocabulary."""
        facts = super().preprocessing()
        facts.update(kind="tokens", vocab=self.vocab)
        return facts

    def _features_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.long)
