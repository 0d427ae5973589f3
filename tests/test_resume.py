"""Durable runs: a run killed with SIGKILL and resumed with --ckpt_path ends as if never stopped,
in its own run directory; --ckpt_path last finds the run; bad checkpoint paths are refused."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.conftest import QUIET, zoo_executable
from tests.test_cli import run_main
from zoo.runs import collect

REPO = Path(__file__).resolve().parents[1]


class KillAtEpoch(pl.Callback):
    """SIGKILL this process when epoch ``epoch`` starts: no handler, no cleanup, as a killed job."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


class KillAtStep(pl.Callback):
    """SIGKILL this process as training step ``step`` (global) starts, mid-epoch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


# dropout on, a per-step schedule and early-stopping state: all of it must come back
RUN = (
    "train", "-c", "mlp_digits", *QUIET, "--trainer.max_epochs", "5", "--data.batch_size", "512",
    "--trainer.accelerator", "cpu",
)  # fmt: skip


def _zoo(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [zoo_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _epoch_values(run: Path, key: str) -> list[tuple[str, str]]:
    return [(row["epoch"], row[key]) for row in _rows(run) if row.get(key)]


# 3 training batches an epoch (1,257 rows, batch 512): killed at the start of epoch 2, or in
# epoch 1 after its first batch, where the step checkpoint (every 4 steps) was written
KILLS = {
    "epoch-boundary": ([], "KillAtEpoch", "epoch=2", (1, 6)),
    # a log every step: the rows logged after the step-4 checkpoint (the learning rate as step 4
    # began) must not stay beside the resumed run's own
    "mid-epoch": (
        ["--checkpoint.every_n_train_steps", "4", "--trainer.log_every_n_steps", "1"],
        "KillAtStep",
        "step=5",
        (1, 4),
    ),
}


@pytest.mark.parametrize(
    "kill",
    # the suite's time budget: the epoch-boundary case (the easier one, 14 s) runs with `nox -s slow`
    [pytest.param(k, marks=pytest.mark.slow) if k == "epoch-boundary" else k for k in KILLS],
)
def test_a_killed_run_resumes_bit_for_bit_in_its_own_directory(
    tmp_path: Path, kill: str, seeded_one_thread, capsys
) -> None:
    # the uninterrupted and the resumed run in-process (one thread, as the killed one), the
    # killed one in a process of its own
    extra, callback, argument, (last_epoch, last_step) = KILLS[kill]
    run = (*RUN, *extra)
    code, _, err = run_main([*run, "--trainer.default_root_dir", str(tmp_path / "whole")], capsys)
    assert code == 0, err[-3000:]

    killed = _zoo(
        tmp_path, *run, "--trainer.default_root_dir", "cut",
        f"--trainer.callbacks+=tests.test_resume.{callback}", f"--trainer.callbacks.{argument}",
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert [run.status for run in collect(tmp_path / "cut")] == ["interrupted"]  # run.json: process gone
    started = json.loads((tmp_path / "cut" / "version_0" / "run.json").read_text())["started"]
    last = tmp_path / "cut" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (last_epoch, last_step)

    code, _, err = run_main(
        [*run, "--trainer.default_root_dir", str(tmp_path / "cut"), "--ckpt_path", "last"], capsys
    )
    assert code == 0, err[-3000:]
    assert f"zoo: resuming from {last}" in err
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["version_0"]  # the same run directory
    # the killed run named its folder "cut/...", the resumed one by its absolute path: the same files
    checkpoints = sorted(p.name for p in (tmp_path / "cut" / "version_0" / "checkpoints").iterdir())
    assert checkpoints == sorted(p.name for p in (tmp_path / "whole" / "version_0" / "checkpoints").iterdir())

    a, b = tmp_path / "whole" / "version_0", tmp_path / "cut" / "version_0"
    final_a = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    final_b = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final_a["global_step"] == final_b["global_step"]
    for name, weight in final_a["state_dict"].items():
        assert torch.equal(weight, final_b["state_dict"][name]), name  # bit for bit
    for key in ("val/loss", "val/acc", "train/acc"):
        assert _epoch_values(a, key) == _epoch_values(b, key), key  # every epoch's row, once
    metrics_a = json.loads((a / "test_metrics.json").read_text())
    metrics_b = json.loads((b / "test_metrics.json").read_text())
    assert Path(metrics_a.pop("best_checkpoint")).name == Path(metrics_b.pop("best_checkpoint")).name
    assert metrics_a == metrics_b
    assert (b / "config.yaml").is_file() and (b / "config.resume.yaml").is_file()
    key = "lr-AdamW/decay"
    rates = [[(row["step"], row[key]) for row in _rows(run) if row.get(key)] for run in (a, b)]
    assert rates[0] == rates[1] and len(rates[0]) >= 5  # every epoch start's rate, once
    record = json.loads((b / "run.json").read_text())
    assert (record["status"], record["started"], record["resumed"]) == ("finished", started, 1)


def test_ckpt_path_last_without_a_run_is_an_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    code, _, err = run_main([*RUN, "--trainer.default_root_dir", str(root), "--ckpt_path", "last"], capsys)
    assert code == 2
    assert err.strip().splitlines()[0] == (
        f"zoo: error: --ckpt_path last: there is no last.ckpt under {root} (trainer.default_root_dir); "
        "train without --ckpt_path first, or give the path of a checkpoint."
    )
    assert not root.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a checkpoint at all", "is not a readable PyTorch checkpoint"),
        ("pickled", "holds more than tensors and plain values"),
        ("tensor", "is a PyTorch file but not a Lightning checkpoint"),
    ],
    ids=["missing", "garbage", "pickled-code", "not-lightning"],
)
def test_bad_ckpt_path_is_one_clear_error(tmp_path: Path, capsys, content, message) -> None:
    path = tmp_path / "model.ckpt"
    if content == "pickled":
        torch.save({"state_dict": {}, "evil": KillAtEpoch(0)}, path)  # an object: pickled code
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    elif content is not None:
        path.write_bytes(content)
    root = tmp_path / "runs"
    code, _, err = run_main([*RUN, "--trainer.default_root_dir", str(root), "--ckpt_path", str(path)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"zoo: error: --ckpt_path: {path} {message}"), err
    assert "Traceback" not in err
    assert not root.exists()  # nothing half-written


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_bit_for_bit(tmp_path: Path) -> None:
    """Every rank's random state comes back: two DDP processes with dropout, both killed at an
    epoch boundary, resumed, end as the run that was never stopped."""
    ddp = (*RUN, "-c", "trainer/ddp", "--trainer.devices", "2")
    assert _zoo(tmp_path, *ddp, "--trainer.default_root_dir", "whole").returncode == 0
    killed = _zoo(
        tmp_path, *ddp, "--trainer.default_root_dir", "cut",
        "--trainer.callbacks+=tests.test_resume.KillAtEpoch", "--trainer.callbacks.epoch=2",
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    resumed = _zoo(tmp_path, *ddp, "--trainer.default_root_dir", "cut", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = tmp_path / "whole" / "version_0", tmp_path / "cut" / "version_0"
    final_a = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    final_b = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(final_b["zoo_rng_states"]) == 2  # one per rank
    for name, weight in final_a["state_dict"].items():
        assert torch.equal(weight, final_b["state_dict"][name]), name
    assert _epoch_values(a, "val/loss") == _epoch_values(b, "val/loss")


class TermAtStep(pl.Callback):
    """A scheduler's SIGTERM to the launching process (rank 0) as training step ``step`` starts."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            # the other rank is then inside the step's gradient all-reduce, waiting for this one: where
            # a collective in the signal handler deadlocks (the order, not a timing, is what is tested)
            time.sleep(2)
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_to_a_two_process_run_stops_both_after_the_same_step_and_it_resumes_bit_for_bit(
    tmp_path: Path,
) -> None:
    """Preemption under DDP: the signal reaches rank 0 as step 5 starts; both ranks finish that step
    and stop together as step 6 would start (Lightning 2.6 alone could hang here: its handler runs
    a collective), ``last.ckpt`` holds step 6, the command exits 143 leaving no process behind,
    and ``--ckpt_path last`` ends where the uninterrupted run ends."""
    ddp = (*RUN, "-c", "trainer/ddp", "--trainer.devices", "2")
    assert _zoo(tmp_path, *ddp, "--trainer.default_root_dir", "whole").returncode == 0
    stopped = _zoo(
        tmp_path, *ddp, "--trainer.default_root_dir", "cut",
        "--trainer.callbacks+=tests.test_resume.TermAtStep", "--trainer.callbacks.step=5", timeout=120,
    )  # fmt: skip
    run = tmp_path / "cut" / "version_0"
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    # two steps an epoch a rank (1,257 rows, batch 512, two shards): step 6 begins epoch 4
    assert (
        stopped.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"zoo: interrupted by SIGTERM in epoch 4, at step 6; the run is in {Path('cut') / 'version_0'}."
        )
    )
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 6 and len(saved["zoo_rng_states"]) == 2
    resumed = _zoo(tmp_path, *ddp, "--trainer.default_root_dir", "cut", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final_a = torch.load(tmp_path / "whole" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    final_b = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for name, weight in final_a["state_dict"].items():
        assert torch.equal(weight, final_b["state_dict"][name]), name
    assert _epoch_values(tmp_path / "whole" / "version_0", "val/loss") == _epoch_values(run, "val/loss")


def test_run_root_that_is_a_file_is_one_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "runs").write_text("not a folder")
    for root, where in ((tmp_path / "runs", "is a file"), (tmp_path / "runs" / "sub", "lies under the file")):
        code, _, err = run_main([*RUN, "--trainer.default_root_dir", str(root)], capsys)
        assert code == 2 and "Traceback" not in err
        assert f"zoo: error: trainer.default_root_dir: {root} {where}" in err, err


def test_run_root_must_be_writable(tmp_path: Path, capsys, monkeypatch) -> None:
    import zoo.trainer as trainer

    real = os.access
    # the suite may run as root, who may write anywhere: say the folder is not writable
    monkeypatch.setattr(trainer.os, "access", lambda path, mode: not mode & os.W_OK and real(path, mode))
    code, _, err = run_main([*RUN, "--trainer.default_root_dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and f"zoo: error: trainer.default_root_dir: {tmp_path} is not writable" in err, err


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> Path:
    from tests.conftest import quiet_trainer
    from zoo.data import SklearnDataModule
    from zoo.models import MLP

    data = SklearnDataModule("digits", batch_size=256)
    model = MLP(task=data.task, num_classes=data.num_classes, input_shape=data.input_shape, hidden_sizes=[8])
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, datamodule=data)
    path = tmp_path_factory.mktemp("digits") / "digits.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("mlp_breast_cancer", "task 'multiclass', but the data of this command gives 'binary'"),
        ("convnet_digits", "input shape [64], but the data of this command gives [1, 8, 8]"),
    ],
)
def test_a_checkpoint_that_does_not_fit_the_data_is_one_clear_error(
    digits_checkpoint: Path, tmp_path: Path, capsys, recipe: str, expected: str
) -> None:
    root = tmp_path / "runs"
    argv = [
        "test",
        "-c",
        recipe,
        "--ckpt_path",
        str(digits_checkpoint),
        "--trainer.default_root_dir",
        str(root),
    ]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"zoo: error: --ckpt_path: {digits_checkpoint} was trained with {expected}" in err, err
    assert not root.exists()


def test_zoo_test_takes_a_checkpoint_written_from_python(
    digits_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """Its hyper-parameters (hidden_sizes=[8], not the recipe's) rebuild the model it holds."""
    argv = ["test", "-c", "mlp_digits", *QUIET, "--ckpt_path", str(digits_checkpoint)]
    code, out, err = run_main([*argv, "--trainer.default_root_dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err[-3000:]
    assert "test/acc" in out


@pytest.mark.parametrize(
    ("command", "printed"), [("test", "test/acc"), ("validate", "val/acc"), ("predict", "predictions")]
)
def test_evaluation_commands_write_no_run_directory(
    digits_checkpoint: Path, tmp_path: Path, capsys, command: str, printed: str
) -> None:
    root = tmp_path / "runs"
    argv = [command, "-c", "mlp_digits", *QUIET, "--ckpt_path", str(digits_checkpoint)]
    code, out, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 0, err[-3000:]
    assert printed in out
    assert "callbacks used to create the checkpoint" not in err
    if command != "predict":
        assert not root.exists()  # no config-only version_N, no metrics.csv, no checkpoints folder
        return
    # predict writes predictions.csv: in the checkpoint's run directory, or (this one was written
    # from Python) in the run root, and nothing else
    assert [p.name for p in root.iterdir()] == ["predictions.csv"]
    with (root / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["row", "prediction"] + [f"prob_{k}" for k in range(10)]
    assert len(rows) == 270 and {r["prediction"] for r in rows} <= {str(k) for k in range(10)}
    assert f"predictions (270 rows): {root / 'predictions.csv'}" in out


# ---------------------------------------------------------------- loaders that resume mid-epoch


def _loaders() -> dict[str, object]:
    from torch.utils.data import TensorDataset

    from zoo.data import RandomWindowLoader, TensorLoader
    from zoo.data.loader import ShardedDataLoader, ShardSampler

    rows = torch.arange(70).float().unsqueeze(1)
    return {
        "tensor": lambda: TensorLoader(rows, batch_size=8, shuffle=True, seed=3),
        "windows": lambda: RandomWindowLoader(torch.arange(500), block_size=4, batch_size=3, num_batches=9),
        "files": lambda: ShardedDataLoader(
            TensorDataset(rows), batch_size=8, sampler=ShardSampler(70, shuffle=True, seed=3, even=True)
        ),
        "files-2-workers": lambda: ShardedDataLoader(
            TensorDataset(rows), batch_size=8, num_workers=2,
            sampler=ShardSampler(70, shuffle=True, seed=3, even=True),
        ),
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["tensor", "windows", "files", "files-2-workers"])
def test_a_loader_restored_from_its_state_serves_the_rest_of_the_epoch(kind: str) -> None:
    make = _loaders()[kind]
    whole = make()
    whole.sampler.set_epoch(2)
    expected = [batch[0].clone() for batch in whole]
    assert len(expected) == len(whole) >= 5

    cut = make()
    cut.sampler.set_epoch(2)
    served = iter(cut)
    for _ in range(3):
        next(served)
    state = cut.state_dict()
    assert state == {"epoch": 2, "batches": 3}

    resumed = make()  # a new process: the loader is built again, then Lightning hands the state back
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    rest = [batch[0] for batch in resumed]
    assert len(rest) == len(expected) - 3
    for got, want in zip(rest, expected[3:], strict=True):
        assert torch.equal(got, want)
    assert resumed.state_dict() == {"epoch": 2, "batches": len(expected)}
    # the position applies to that epoch only: the next one is whole and in its own order
    resumed.sampler.set_epoch(3)
    assert sum(1 for _ in resumed) == len(expected)


# ---------------------------------------------------------------- which checkpoint --ckpt_path names


def _run_dir_of(root: Path, status: str, pid: int) -> Path:
    """A run directory as a run in progress leaves it: its last.ckpt and a run.json that says
    ``status``, with the process ``pid`` on this host."""
    import socket

    run = root / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not read")
    record = {"status": status, "host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00"}
    (run / "run.json").write_text(json.dumps(record))
    return run


@pytest.mark.parametrize("given", ["last", "path"])
def test_resuming_a_run_that_is_still_running_is_refused(tmp_path: Path, capsys, given: str) -> None:
    """`--ckpt_path last` (or the path of its last.ckpt) while the run still runs: both processes
    wrote the same run directory (metrics.csv got its epochs twice, the checkpoints overwritten)."""
    root = tmp_path / "runs"
    run = _run_dir_of(root, "running", os.getpid())  # this process: alive
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    ckpt = "last" if given == "last" else str(run / "checkpoints" / "last.ckpt")
    code, _, err = run_main([*RUN, "--trainer.default_root_dir", str(root), "--ckpt_path", ckpt], capsys)
    assert code == 2 and err.splitlines() == [
        f"zoo: error: --ckpt_path {ckpt}: the run in {run} is still running (pid {os.getpid()} on this host, "
        "run.json: status running); resuming it now would write the same run directory twice. Wait for it "
        f"to end, or stop it (kill {os.getpid()}) and then resume; or give another checkpoint."
    ], err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing written
    # a run that ended (or was killed, its run.json still `running`) is resumed: here the checkpoint
    # is read next, and refused as no checkpoint
    (run / "run.json").write_text(
        json.dumps({**json.loads((run / "run.json").read_text()), "pid": 2**22 + 7})
    )
    code, _, err = run_main([*RUN, "--trainer.default_root_dir", str(root), "--ckpt_path", ckpt], capsys)
    assert code == 2 and "is not a readable PyTorch checkpoint" in err and "still running" not in err, err


@pytest.mark.parametrize(
    ("command", "given", "wanted"),
    [
        (
            "test",
            "Last",
            "--ckpt_path: Last is neither a checkpoint file nor a name it takes. Did you mean last? It takes "
            "last (the newest run's last.ckpt), best (the newest run's best checkpoint), a .ckpt path, or "
            "pretrained:NAME.",
        ),
        (
            "train",
            "LAST",
            "--ckpt_path: LAST is neither a checkpoint file nor a name it takes. Did you mean last? It takes "
            "last (the newest last.ckpt under trainer.default_root_dir) or a .ckpt path.",
        ),
        (
            "train",
            "best",
            "--ckpt_path best: a run resumes from its last checkpoint, where it stopped; use --ckpt_path "
            "last (the newest run's last.ckpt) or a .ckpt path. best is for validate, test and predict; to "
            "start a new run from the best weights: --model.init_from PATH.",
        ),
    ],
    ids=["Last", "LAST to train", "best to train"],
)
def test_a_ckpt_path_word_it_does_not_take_lists_the_ones_it_does(
    tmp_path: Path, capsys, command: str, given: str, wanted: str
) -> None:
    """`--ckpt_path best` and `Last` were `--ckpt_path: best does not exist.`"""
    root = tmp_path / "runs"
    argv = [command, "-c", "mlp_digits", "--trainer.default_root_dir", str(root), "--ckpt_path", given]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and err.splitlines() == [f"zoo: error: {wanted}"], err
    assert not root.exists()


def test_ckpt_path_best_is_the_best_checkpoint_of_the_newest_run(
    digits_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """The checkpoint the newest run's checkpoint callback named best, not its other top-k files."""
    root = tmp_path / "runs"
    state = torch.load(digits_checkpoint, map_location="cpu", weights_only=True)
    for version in ("version_0", "version_1"):  # version_1 is written last: the newest
        folder = root / version / "checkpoints"
        folder.mkdir(parents=True)
        for name in ("best-epoch=000.ckpt", "best-epoch=001.ckpt"):
            torch.save(state, folder / name)
        named = {"ModelCheckpoint{'monitor': 'val/loss'}": {"best_model_path": f"elsewhere/{name}"}}
        torch.save({**state, "callbacks": named}, folder / "last.ckpt")
    argv = ["test", "-c", "mlp_digits", *QUIET, "--trainer.limit_test_batches", "1", "--ckpt_path", "best"]
    code, out, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
    assert code == 0, err[-3000:]
    assert f"zoo: using {root / 'version_1' / 'checkpoints' / 'best-epoch=001.ckpt'}\n" in err
    assert "test/acc" in out
