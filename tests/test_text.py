"""Token data: character-level text (files, folders, the standard library's source) for language
models, synthetic sequence tasks with known answers, and tiny models learning from both."""

from __future__ import annotations

import functools
import sysconfig
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import quiet_trainer
from tests.test_cli import run_main
from zoo.data import CharTextDataModule, RandomWindowLoader, SequenceTaskDataModule, ZooDataModule
from zoo.data.text import DEFAULT_CORPUS_CHARS, UNKNOWN_CHAR, make_sequence_task
from zoo.errors import ZooError
from zoo.models import GPT, SequenceClassifier

pytestmark = pytest.mark.usefixtures("seeded_one_thread")


def _trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    return quiet_trainer(default_root_dir=tmp_path, num_sanity_val_steps=0, **kwargs)


# a text whose last characters ("Z", "Q", "é") appear only in the test part
BODY = "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n" * 12
TEXT = BODY + "Zebra Quiz: café!\n"


def write(path: Path, text: str = TEXT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def char_data(tmp_path: Path, text: str = TEXT, **kwargs) -> CharTextDataModule:
    options = {"block_size": 8, "batch_size": 4, "train_batches_per_epoch": 5, **kwargs}
    return CharTextDataModule(write(tmp_path / "text.txt", text), **options)


def entropy_nats(ids: torch.Tensor) -> float:
    """The unigram entropy of a token sequence, in nats per token."""
    counts = np.bincount(ids.numpy())
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


# ---------------------------------------------------------------------------- CharText: splits, vocab


def test_splits_are_contiguous_disjoint_and_cover_the_text(tmp_path: Path):
    dm = char_data(tmp_path, val_size=0.05, test_size=0.05)
    n = len(TEXT)
    sizes = dm.split_sizes()
    assert sizes == {"train": n - 2 * round(0.05 * n), "val": round(0.05 * n), "test": round(0.05 * n)}
    train_end, val_end = sizes["train"], sizes["train"] + sizes["val"]
    # the splits are consecutive views of one int64 tensor of the whole text
    assert dm.tokens.dtype == torch.int64 and dm.tokens.shape == (n,)
    parts = [dm.split_tokens(name) for name in ("train", "val", "test")]
    torch.testing.assert_close(torch.cat(parts), dm.tokens)
    assert dm.decode(parts[0]) == TEXT[:train_end]
    assert dm.decode(parts[1]) == TEXT[train_end:val_end]
    # test characters never seen in training are the unknown character; the rest come back as they were
    unseen = set(TEXT[val_end:]) - set(TEXT[:train_end])
    assert unseen == {"Z", "Q", "é", ":", "!"}
    expected_test = "".join(UNKNOWN_CHAR if c in unseen else c for c in TEXT[val_end:])
    assert dm.decode(parts[2]) == expected_test


def test_vocab_comes_from_the_training_text_only(tmp_path: Path):
    dm = char_data(tmp_path)
    train_text = TEXT[: dm.split_sizes()["train"]]
    assert dm.vocab == "".join(sorted(set(train_text) | {UNKNOWN_CHAR}))
    assert "Z" not in dm.vocab and "é" not in dm.vocab
    assert dm.vocab[dm.unknown_id] == UNKNOWN_CHAR
    test_ids = dm.split_tokens("test")
    z_at = TEXT.index("Z") - (len(TEXT) - len(test_ids))
    assert test_ids[z_at] == dm.unknown_id
    assert dm.tokens.max() < len(dm.vocab) and dm.tokens.min() >= 0
    assert dm.encode("fox Z").tolist() == [dm.vocab.index(c) for c in "fox "] + [dm.unknown_id]


def test_facts_the_model_needs(tmp_path: Path):
    dm = char_data(tmp_path, block_size=16)
    assert isinstance(dm, ZooDataModule)
    assert dm.task == "multiclass"
    assert dm.input_shape == [16]
    assert dm.num_classes == len(dm.vocab) == len(set(dm.vocab))
    assert dm.classes is None and dm.target_stats is None


# ---------------------------------------------------------------------------- CharText: batches


def windows(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def test_training_windows_are_shifted_substrings_of_the_training_text(tmp_path: Path):
    dm = char_data(tmp_path, block_size=8, batch_size=4, train_batches_per_epoch=5)
    train_text = TEXT[: dm.split_sizes()["train"]]
    loader = dm.train_dataloader()
    assert len(loader) == 5
    batches = windows(loader) + windows(loader)
    assert len(batches) == 10
    for x, y in batches:
        assert x.shape == y.shape == (4, 8)
        assert x.dtype == y.dtype == torch.int64
        torch.testing.assert_close(y[:, :-1], x[:, 1:])
        for row_x, row_y in zip(x, y, strict=True):
            window = dm.decode(row_x) + dm.vocab[row_y[-1]]
            assert window in train_text


def test_training_windows_are_seeded_and_change_every_epoch(tmp_path: Path):
    def first_two_epochs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        loader = char_data(tmp_path, seed=seed, train_batches_per_epoch=3).train_dataloader()
        return tuple(torch.cat([x for x, _ in windows(loader)]) for _ in range(2))

    a1, a2 = first_two_epochs(0)
    b1, b2 = first_two_epochs(0)
    c1, _ = first_two_epochs(1)
    torch.testing.assert_close(a1, b1)
    torch.testing.assert_close(a2, b2)
    assert not torch.equal(a1, a2)  # the next epoch draws new windows
    assert not torch.equal(a1, c1)  # another seed, other windows
    # set_epoch replays an epoch, e.g. after resuming
    loader = char_data(tmp_path, seed=0, train_batches_per_epoch=3).train_dataloader()
    loader.set_epoch(1)
    torch.testing.assert_close(torch.cat([x for x, _ in loader]), a2)


def test_random_window_loader_reaches_both_ends():
    tokens = torch.arange(12)
    loader = RandomWindowLoader(tokens, block_size=3, batch_size=50, num_batches=4, seed=0)
    starts = torch.cat([x[:, 0] for x, _ in loader])
    assert starts.min() == 0 and starts.max() == 12 - 3 - 1  # every start that fits a window
    ends = torch.cat([y[:, -1] for _, y in loader])
    assert ends.max() == 11


@pytest.mark.parametrize("name", ["val", "test"])
def test_evaluation_windows_are_consecutive_and_deterministic(tmp_path: Path, name: str):
    dm = char_data(tmp_path, block_size=7, eval_batch_size=3, val_size=0.1, test_size=0.1)
    loader = dm.val_dataloader() if name == "val" else dm.test_dataloader()
    ids = dm.split_tokens(name)
    n = (len(ids) - 1) // 7
    batches = windows(loader)
    assert [len(x) for x, _ in batches][:-1] == [3] * (len(batches) - 1)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == y.shape == (n, 7) and x.dtype == torch.int64
    # window i is ids[7i : 7i+7]: no overlap, in order, every target predicted once
    torch.testing.assert_close(x.flatten(), ids[: n * 7])
    torch.testing.assert_close(y.flatten(), ids[1 : n * 7 + 1])
    # the same windows every pass and for every seed
    again = char_data(tmp_path, block_size=7, eval_batch_size=3, val_size=0.1, test_size=0.1, seed=5)
    other = again.val_dataloader() if name == "val" else again.test_dataloader()
    for (xa, ya), (xb, yb) in zip(windows(loader), windows(other), strict=True):
        torch.testing.assert_close(xa, xb)
        torch.testing.assert_close(ya, yb)


def test_predict_serves_the_test_windows_inputs(tmp_path: Path):
    dm = char_data(tmp_path, block_size=8, eval_batch_size=1000)
    (x_pred,) = next(iter(dm.predict_dataloader()))
    x_test, _ = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(x_pred, x_test)


# ---------------------------------------------------------------------------- CharText: files and folders


def test_folder_with_glob_reads_matching_files_in_path_order(tmp_path: Path):
    root = tmp_path / "corpus"
    write(root / "b.txt", "second file\n")
    write(root / "a.txt", "first file")  # no final newline: one is added
    write(root / "sub" / "c.txt", "third\r\nwith windows line ends\r\n")
    write(root / "notes.md", "not matched\n")
    write(root / ".hidden" / "d.txt", "hidden\n")
    (root / "bom.txt").write_bytes("\ufeffbyte order mark\n".encode())
    dm = CharTextDataModule(root, glob="*.txt", block_size=2, val_size=3, test_size=3)
    assert [p.relative_to(root).as_posix() for p in dm.files()] == ["a.txt", "b.txt", "bom.txt", "sub/c.txt"]
    expected = "first file\nsecond file\nbyte order mark\nthird\nwith windows line ends\n"
    assert dm.read_text() == expected
    assert dm.decode(dm.tokens[: dm.split_sizes()["train"]]) == expected[:-6]
    # every file without a glob
    assert "not matched" in CharTextDataModule(root, block_size=2).read_text()


def test_max_chars_cuts_the_text(tmp_path: Path):
    dm = char_data(tmp_path, max_chars=300)
    assert dm.read_text() == TEXT[:300]
    assert len(dm.tokens) == 300


# ---------------------------------------------------------------------------- CharText: the default corpus


def test_default_corpus_is_the_standard_library_source():
    dm = CharTextDataModule(max_chars=300_000)
    text = dm.read_text()
    assert len(text) == 300_000
    assert "def " in text and "import " in text and "class " in text
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [p.relative_to(stdlib) for p in dm.files()]
    assert Path("os.py") in files and Path("json/__init__.py") in files
    skipped = {"test", "tests", "idle_test", "site-packages", "dist-packages"}
    assert not [f for f in files if skipped & set(f.parts) or f.name.startswith("test_")]
    assert files == sorted(files, key=lambda p: p.parts)
    assert all(f.suffix == ".py" for f in files)
    # the text is the files in order: the first file starts it
    first = (stdlib / files[0]).read_text(encoding="utf-8")
    assert text.startswith(first[:1000])


def test_default_corpus_size():
    dm = CharTextDataModule()
    assert len(dm.tokens) == DEFAULT_CORPUS_CHARS
    assert dm.split_sizes()["val"] == round(0.05 * DEFAULT_CORPUS_CHARS)
    assert 60 < len(dm.vocab) < 300


# ---------------------------------------------------------------------------- CharText: errors


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"block_size": 0}, r"data.block_size must be an integer >= 1"),
        ({"block_size": True}, r"data.block_size must be an integer >= 1"),
        ({"batch_size": 0}, r"data.batch_size must be an integer >= 1"),
        ({"train_batches_per_epoch": 0}, r"data.train_batches_per_epoch must be an integer >= 1"),
        ({"max_chars": -5}, r"data.max_chars must be an integer >= 1 or null"),
        ({"val_size": 0.6, "test_size": 0.5}, r"data.val_size \+ data.test_size .* less than 1"),
        ({"val_size": 0}, r"data.val_size must be a fraction in \(0, 1\) or a count >= 1"),
        ({"glob": ""}, r"data.glob must be a file pattern"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict, message: str):
    with pytest.raises(ZooError, match=message):
        char_data(tmp_path, **options)


def test_block_size_too_large_for_a_split_says_which_and_what_fits(tmp_path: Path):
    dm = char_data(tmp_path, block_size=60, val_size=50, test_size=100)
    with pytest.raises(
        ZooError,
        match=r"data.block_size=60 is too large for the validation split: it has 50 "
        r"characters .* use data.block_size <= 49, or a larger data.val_size",
    ):
        dm.prepare()
    dm = char_data(tmp_path, block_size=60, val_size=100, test_size=30)
    with pytest.raises(ZooError, match=r"test split: it has 30 characters .* data.block_size <= 29"):
        _ = dm.vocab


def test_bad_paths_and_texts(tmp_path: Path):
    with pytest.raises(ZooError, match=r"data.path: no such file or folder: .*missing.txt"):
        CharTextDataModule(tmp_path / "missing.txt").prepare()
    empty = write(tmp_path / "empty.txt", "")
    with pytest.raises(ZooError, match=r"data.path: .*empty.txt holds no text"):
        CharTextDataModule(empty).prepare()
    write(tmp_path / "folder" / "a.txt")
    with pytest.raises(ZooError, match=r"data.glob: no files match '\*.py' in the folder"):
        CharTextDataModule(tmp_path / "folder", glob="*.py").prepare()
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(ZooError, match=r"data.path: .*latin1.txt is not UTF-8 text .* at byte 3"):
        CharTextDataModule(binary).prepare()
    with pytest.raises(ZooError, match=r"take 600 \+ 500 of the 1000 characters and leave none"):
        CharTextDataModule(write(tmp_path / "k.txt", "x" * 999 + "\n"), val_size=600, test_size=500).prepare()


# ---------------------------------------------------------------------------- CharText: a model learns


def test_gpt_learns_the_standard_library_below_its_unigram_entropy(tmp_path: Path):
    dm = CharTextDataModule(
        max_chars=200_000, block_size=32, batch_size=32, eval_batch_size=256, train_batches_per_epoch=250
    )
    model = GPT(
        n_layer=2,
        n_head=2,
        n_embd=64,
        task=dm.task,
        num_classes=dm.num_classes,
        input_shape=dm.input_shape,
        vocab=dm.vocab,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3),
    )
    x_val, y_val = dm.val_dataloader().tensors
    with torch.no_grad():  # untrained: about uniform over the vocabulary
        before = F.cross_entropy(model(x_val[:64]).flatten(0, 1), y_val[:64].flatten())
    assert before > 0.9 * np.log(len(dm.vocab))
    trainer = _trainer(tmp_path, max_epochs=1, limit_val_batches=8)
    trainer.fit(model, datamodule=dm)
    entropy = entropy_nats(dm.split_tokens("train"))
    val_loss = float(trainer.callback_metrics["val/loss"])
    assert 2.5 < entropy < 4.0  # Python source: about 3.1 nats per character
    assert val_loss < 0.8 * entropy, (val_loss, entropy)
    # the model keeps the vocabulary: it reads and writes text
    assert model.vocab == dm.vocab
    assert model.generate("def ", max_new_tokens=10, seed=0).startswith("def ")


def test_cli_links_the_vocabulary_into_the_checkpoint(tmp_path: Path, capsys):
    text = write(tmp_path / "t.txt")
    root = tmp_path / "runs"
    argv = ["fit", "--model", "zoo.models.GPT", "--model.n_layer", "1", "--model.n_head", "2"]
    argv += ["--model.n_embd", "16", "--data", "zoo.data.CharTextDataModule", "--data.path", str(text)]
    argv += ["--data.block_size", "8", "--data.train_batches_per_epoch", "3", "--trainer.max_epochs", "1"]
    argv += ["--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    (ckpt,) = root.rglob("last.ckpt")
    reloaded = GPT.load_from_checkpoint(ckpt)
    expected = char_data(tmp_path, block_size=8)
    assert reloaded.vocab == expected.vocab and reloaded.num_classes == len(expected.vocab)
    assert reloaded.block_size == 8
    # a user error is one clear message
    code, _, err = run_main([*argv, "--data.block_size", "500"], capsys)
    assert code == 2 and "data.block_size=500 is too large for the validation split" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------- synthetic sequence tasks


@pytest.mark.parametrize("problem", ["reverse", "sort", "majority"])
def test_sequence_task_answers_are_correct(problem: str):
    x, y = make_sequence_task(problem, num_examples=500, length=9, vocab_size=5, seed=3)
    assert x.shape == (500, 9) and x.dtype == np.int64
    assert x.min() == 0 and x.max() == 4
    if problem == "reverse":
        np.testing.assert_array_equal(y, np.flip(x, axis=1))
    elif problem == "sort":
        np.testing.assert_array_equal(y, np.sort(x, axis=1))
    else:
        counts = np.stack([np.bincount(row, minlength=5) for row in x])
        np.testing.assert_array_equal(y, counts.argmax(axis=1))
        top = np.sort(counts, axis=1)
        assert np.all(top[:, -1] > top[:, -2])  # the majority is unique
        assert len(np.unique(y)) == 5  # every token wins somewhere


@pytest.mark.parametrize(("problem", "y_shape"), [("reverse", (12,)), ("sort", (12,)), ("majority", ())])
def test_sequence_task_data_module(problem: str, y_shape: tuple):
    dm = SequenceTaskDataModule(problem, length=12, vocab_size=7, num_examples=400, batch_size=32, seed=1)
    assert dm.task == "multiclass" and dm.num_classes == 7 and dm.input_shape == [12]
    assert dm.vocab == "0123456"
    assert dm.classes == list("0123456")
    assert dm.split_sizes() == {"train": 320, "val": 40, "test": 40}
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == y.dtype == torch.int64
    assert x.shape == (32, 12) and y.shape == (32, *y_shape)
    # every split holds correct answers; the splits partition the generated examples
    gen_x, gen_y = make_sequence_task(problem, 400, 12, 7, seed=1)
    rows = []
    for name in ("train", "val", "test"):
        xs, ys = (t.numpy() for t in dm._tensors[name])
        assert xs.dtype == np.int64  # token ids: never standardized
        if problem == "reverse":
            np.testing.assert_array_equal(ys, xs[:, ::-1])
        elif problem == "sort":
            np.testing.assert_array_equal(ys, np.sort(xs, axis=1))
        rows += [tuple(r) for r in xs]
    assert sorted(rows) == sorted(tuple(r) for r in gen_x)
    assert sorted(
        map(int, np.concatenate([dm._tensors[n][1].numpy().ravel() for n in dm._tensors]))
    ) == sorted(gen_y.ravel().tolist())


def test_sequence_task_is_deterministic_under_the_seed():
    def train_x(seed: int) -> torch.Tensor:
        dm = SequenceTaskDataModule("sort", num_examples=200, seed=seed)
        dm.setup()
        return dm._tensors["train"][0]

    torch.testing.assert_close(train_x(4), train_x(4))
    assert not torch.equal(train_x(4), train_x(5))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"problem": "copy"}, "data.problem must be one of reverse, sort, majority; got 'copy'"),
        ({"vocab_size": 1}, "data.vocab_size must be an integer from 2 to 62"),
        ({"vocab_size": 63}, "data.vocab_size must be an integer from 2 to 62"),
        ({"length": 0}, "data.length must be an integer >= 1"),
        ({"problem": "majority", "length": 1}, "data.length must be >= 2 for the majority problem"),
        ({"num_examples": 0}, "data.num_examples must be an integer >= 1"),
        ({"batch_size": 0}, "data.batch_size must be >= 1"),
        ({"batch_size": 2.0}, r"data.batch_size must be an integer >= 1; got 2.0.$"),
        ({"eval_batch_size": "8"}, r"data.eval_batch_size must be an integer >= 1 or None; got '8'.$"),
        ({"num_examples": 10, "test_size": 10}, "data.test_size=10 takes 10 of 10 examples"),
    ],
)
def test_sequence_task_bad_options(options: dict, message: str):
    with pytest.raises(ZooError, match=message):
        SequenceTaskDataModule(**options).prepare()


def test_sequence_classifier_trains_on_reverse(tmp_path: Path):
    dm = SequenceTaskDataModule("reverse", length=8, vocab_size=6, num_examples=600, batch_size=64)
    model = SequenceClassifier(
        dim=32,
        depth=1,
        heads=2,
        pooling="none",
        task=dm.task,
        num_classes=dm.num_classes,
        input_shape=dm.input_shape,
        vocab=dm.vocab,
    )
    trainer = _trainer(tmp_path, max_epochs=8)  # ~1 s; with lr 0 the accuracy stays near 1/6
    trainer.fit(model, datamodule=dm)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert metrics["test/acc"] >= 0.95, metrics
    preds = torch.cat(trainer.predict(model, datamodule=dm))
    assert preds.shape[:2] == (60, 8)
    x_test, y_test = dm._tensors["test"]
    assert torch.equal(y_test, x_test.flip(1))  # the task: the answer is the input reversed
    assert (preds.argmax(-1) == y_test).float().mean().item() == pytest.approx(metrics["test/acc"])


# ---------------------------------------------------------------------------- CharText: memory-mapped


def write_corpus(folder: Path) -> Path:
    """Files that exercise the reader: CRLF and CR line endings, a byte-order mark, a file without
    a final newline, characters beyond ASCII, and a character that only validation/test hold."""
    folder.mkdir(parents=True)
    (folder / "a.txt").write_bytes(("héllo wörld\r\n" * 300 + "café\rnaïve\n").encode())
    (folder / "b.txt").write_bytes("\ufeff".encode() + ("def f(x):\n    return x * 2\n" * 200).encode())
    (folder / "c.txt").write_bytes(("no newline at the end λ" * 50).encode())
    (folder / "d.txt").write_bytes(("tail ✓ only here " * 40).encode())
    return folder


def _assert_same_text_data(memory: CharTextDataModule, mapped: CharTextDataModule) -> None:
    assert mapped.vocab == memory.vocab and mapped.unknown_id == memory.unknown_id
    assert mapped.split_sizes() == memory.split_sizes()
    assert mapped.tokens.dtype == torch.uint16
    assert torch.equal(mapped.tokens.long(), memory.tokens)
    for epoch in (0, 2):
        a, b = memory.train_dataloader(), mapped.train_dataloader()
        a.set_epoch(epoch), b.set_epoch(epoch)
        for (xa, ya), batch in zip(a, b, strict=True):
            xb, yb = mapped.on_after_batch_transfer(batch, 0)
            assert xb.dtype == torch.int64 and torch.equal(xa, xb) and torch.equal(ya, yb)
    for name in ("val_dataloader", "test_dataloader"):
        for (xa, ya), batch in zip(getattr(memory, name)(), getattr(mapped, name)(), strict=True):
            xb, yb = mapped.on_after_batch_transfer(batch, 0)
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_memory_mapped_text_gives_the_ids_and_batches_of_the_in_memory_form(tmp_path: Path):
    corpus = write_corpus(tmp_path / "corpus")
    options = {
        "block_size": 16,
        "batch_size": 8,
        "train_batches_per_epoch": 4,
        "val_size": 0.1,
        "test_size": 0.1,
    }
    memory = CharTextDataModule(corpus, **options)
    # chunks of 7 characters: every boundary case of the chunked reader (CRLF split, BOM, ends)
    mapped = CharTextDataModule(corpus, memory_map=True, chunk_chars=7, **options)
    _assert_same_text_data(memory, mapped)
    assert "✓" not in memory.vocab  # only in the test split: its id is U+FFFD's
    token_file = corpus / ".zoo-tokens" / "tokens.bin"
    assert token_file.stat().st_size == 2 * len(memory.tokens)
    assert not [p for p in (corpus / ".zoo-tokens").iterdir() if p.name.startswith(".")]  # no scratch left

    # unchanged corpus: the file is reused; a changed file: tokenized again
    before = token_file.stat().st_mtime_ns
    CharTextDataModule(corpus, memory_map=True, **options).prepare()
    assert token_file.stat().st_mtime_ns == before
    (corpus / "b.txt").write_text("def g(y):\n    return y + 1\n" * 200)
    memory = CharTextDataModule(corpus, **options)
    mapped = CharTextDataModule(corpus, memory_map=True, **options)
    _assert_same_text_data(memory, mapped)
    assert token_file.stat().st_mtime_ns != before


def test_memory_mapped_default_corpus_matches_and_honours_max_chars(tmp_path: Path):
    memory = CharTextDataModule(max_chars=200_000, block_size=32)
    mapped = CharTextDataModule(max_chars=200_000, block_size=32, memory_map=True, token_dir=tmp_path / "tok")
    assert len(mapped.tokens) == 200_000
    _assert_same_text_data(memory, mapped)


def test_memory_mapped_text_trains_in_constant_memory(tmp_path: Path):
    import tracemalloc

    folder = tmp_path / "big"
    folder.mkdir()
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghij klmnop\n"))
    for i in range(24):  # 24 files of 500,000 characters: 12 M characters in all
        (folder / f"{i:02d}.txt").write_text("".join(rng.choice(letters, 499_999)) + "\n")
    dm = CharTextDataModule(folder, memory_map=True, chunk_chars=100_000, block_size=64, batch_size=32)
    tracemalloc.start()
    try:
        dm.prepare()
        for _, (x, _y) in zip(range(5), dm.train_dataloader(), strict=False):
            assert x.shape == (32, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(dm.tokens) == 12_000_000
    # in memory the text alone would be 12 MB as str, 48 MB as code points and 96 MB as int64 ids;
    # chunks of 100,000 characters keep the peak near a few of them
    print(f"peak traced memory {peak / 1e6:.2f} MB")
    assert peak < 6_000_000, f"peak {peak / 1e6:.1f} MB"


def test_memory_mapped_text_errors(tmp_path: Path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine text\n" * 100)
    (folder / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1") * 10)
    with pytest.raises(ZooError, match=r"data.path: .*latin1.txt is not UTF-8 text"):
        CharTextDataModule(folder, memory_map=True, block_size=4).prepare()
    assert not (folder / ".zoo-tokens").exists()  # nothing half-written, not even the folder
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ZooError) as info:
        CharTextDataModule(empty, memory_map=True, block_size=4).prepare()
    assert str(info.value) == f"data.path: {empty} holds no text (0 characters)."
    assert not (tmp_path / "empty.txt.zoo-tokens").exists()
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(ZooError, match="data.token_dir: cannot create .*file-not-folder/sub"):
        CharTextDataModule(
            folder, glob="ok.txt", memory_map=True, block_size=4, token_dir=blocked / "sub"
        ).prepare()
