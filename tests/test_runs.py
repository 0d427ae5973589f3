"""`zoo runs`: run.json through a run's life (finished, interrupted, failed, killed) and the table."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import signal
import socket
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.test_cli import run_main
from zoo.data import SklearnDataModule
from zoo.errors import ZooError
from zoo.loggers import CSVLogger
from zoo.models import MLP
from zoo.runs import collect, format_runs, sort_runs
from zoo.trainer import ZooTrainer


class StopAt(pl.Callback):
    """Raises ``error`` as training step ``step`` begins."""

    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise self.error


def _train(
    root: Path,
    name: str,
    epochs: int = 2,
    callbacks: list | None = None,
    lr: float = 0.01,
    progress: bool = False,
) -> dict:
    torch.manual_seed(0)
    data = SklearnDataModule("digits", batch_size=64)
    model = MLP(
        hidden_sizes=[32],
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        optimizer=lambda p: torch.optim.Adam(p, lr=lr),
    )
    trainer = ZooTrainer(
        max_epochs=epochs,
        limit_train_batches=4,
        limit_val_batches=2,
        logger=CSVLogger(save_dir=str(root), name=name),
        callbacks=callbacks or [],
        enable_progress_bar=progress,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
    )
    return trainer.train(model, data)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _train(root, "good", epochs=3, lr=0.01)
    _train(root, "worse", epochs=2, lr=0.0005)
    # Lightning answers Ctrl-C with sys.exit(1) and leaves SIGINT ignored; ZooTrainer raises the
    # KeyboardInterrupt again after Lightning's shutdown, with Python's handler back
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            _train(root, "stopped", callbacks=[StopAt(3, KeyboardInterrupt())])
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGINT, sigint)
    with pytest.raises(RuntimeError, match="the disk fell off"):
        _train(root, "broken", callbacks=[StopAt(2, RuntimeError("the disk fell off\nsecond line"))])
    return root


def _record(root: Path, name: str) -> dict:
    return json.loads((root / name / "version_0" / "run.json").read_text())


def test_run_json_follows_the_run(root: Path) -> None:
    good = _record(root, "good")
    assert good["status"] == "finished" and good["model"] == "zoo.models.mlp.MLP" and good["data"] == "digits"
    assert good["pid"] == os.getpid() and good["host"] == socket.gethostname()
    assert good["monitor"] is None  # no checkpoint callback in these runs
    assert good["wall_s"] > 0 and good["ended"] >= good["started"]
    assert good["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    # what it ran on, for a run recorded elsewhere (python -m zoo.pretrained NAME --from-run DIR)
    assert (
        good["versions"]["torch"] == torch.__version__
        and good["versions"]["python"] == platform.python_version()
    )
    assert good["hardware"].endswith("cpu, strategy SingleDevice, precision 32-true, 1 process")
    # the learning rates, as zoo train logs them (ZooTrainer.train adds the callback itself)
    with (root / "good" / "version_0" / "metrics.csv").open() as handle:
        rates = [float(r["lr-Adam/decay"]) for r in csv.DictReader(handle) if r.get("lr-Adam/decay")]
    assert rates and set(rates) == {0.01}
    assert _record(root, "stopped")["status"] == "interrupted"
    broken = _record(root, "broken")
    assert broken["status"] == "failed" and broken["error"] == "RuntimeError: the disk fell off"


def test_a_killed_run_reads_as_interrupted_and_a_live_one_as_running(root: Path, tmp_path: Path) -> None:
    for name, pid in (("killed", 2**22 + 12345), ("alive", os.getpid())):
        run_dir = tmp_path / name / "version_0"
        run_dir.mkdir(parents=True)
        record = {**_record(root, "good"), "status": "running", "pid": pid}
        (run_dir / "run.json").write_text(json.dumps(record))
    status = {run.name.split("/")[0]: run.status for run in collect(tmp_path)}
    assert status == {"killed": "interrupted", "alive": "running"}


class InterruptedAtStep3(MLP):
    """Ctrl-C during the fourth training step (Python raises KeyboardInterrupt there)."""

    def training_step(self, batch, batch_idx):
        if self.trainer.global_step == 3:
            raise KeyboardInterrupt
        return super().training_step(batch, batch_idx)


class TerminatedAtStep3(MLP):
    """A scheduler's SIGTERM (SLURM, Kubernetes, `timeout`) during the fourth training step."""

    def training_step(self, batch, batch_idx):
        if self.trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler is installed during fit
        return super().training_step(batch, batch_idx)


def _train_interrupted(model: str, root: Path, capsys, *more: str) -> tuple[int, str]:
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    argv = ["train", "-c", "mlp_digits", *quiet, "--model.class_path", f"tests.test_runs.{model}", *more]
    sigint = signal.getsignal(signal.SIGINT)
    try:
        status, _, err = run_main([*argv, "--trainer.default_root_dir", str(root)], capsys)
        assert signal.getsignal(signal.SIGINT) is sigint  # Lightning's SIG_IGN undone
    finally:
        signal.signal(signal.SIGINT, sigint)
    return status, err


def test_ctrl_c_exits_130_and_says_where_the_run_is(tmp_path: Path, capsys) -> None:
    """Lightning ends a run stopped by Ctrl-C with exit status 1, as for any failure."""
    status, err = _train_interrupted("InterruptedAtStep3", tmp_path, capsys)
    run = tmp_path / "version_0"
    assert status == 130
    assert err.strip().splitlines()[-1] == (
        "zoo: interrupted by SIGINT in epoch 1, at step 3, before its first checkpoint; "
        f"the run is in {run}. Run the command again to start over."
    )
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def test_sigterm_saves_the_step_exits_143_and_the_run_goes_on_from_there(tmp_path: Path, capsys) -> None:
    """A scheduler's SIGTERM (preemption): Lightning ended the run with exit status 0, which
    schedulers read as success, and kept only the last save point's checkpoint. ``zoo`` writes
    ``last.ckpt`` at the step where it stopped (Lightning finishes that step first), exits 143, and
    says how to go on; the resumed run finishes the epoch from there."""
    status, err = _train_interrupted("TerminatedAtStep3", tmp_path, capsys, "--trainer.max_epochs", "1")
    run = tmp_path / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    assert status == 143
    assert err.strip().splitlines()[-1] == (
        f"zoo: interrupted by SIGTERM in epoch 1, at step 4; the run is in {run}. To go on from its last "
        f"checkpoint, run the same command with --ckpt_path last (or --ckpt_path {last})."
    )
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4
    code, _, err = run_main(
        ["train", "-c", "mlp_digits", "--trainer.enable_progress_bar", "false", "--trainer.max_epochs", "1",
         "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 20  # 1257 rows / 64


def test_collect_reads_epochs_best_val_and_test(root: Path) -> None:
    runs = {run.name: run for run in collect(root)}
    assert list(runs) == ["good/version_0", "worse/version_0", "stopped/version_0", "broken/version_0"]
    good = runs["good/version_0"]
    assert good.epochs == 3 and good.status == "finished"
    with (root / "good" / "version_0" / "metrics.csv").open(newline="") as handle:
        val = [float(r["val/loss"]) for r in csv.DictReader(handle) if r.get("val/loss")]
    assert good.best["val/loss"] == pytest.approx(min(val))
    test = json.loads((root / "good" / "version_0" / "test_metrics.json").read_text())
    assert good.test["test/acc"] == pytest.approx(test["test/acc"])
    assert runs["broken/version_0"].test == {} and runs["stopped/version_0"].epochs is None


def test_sort_best_first_and_runs_without_the_metric_last(root: Path) -> None:
    runs = collect(root)
    by_acc = [r.name.split("/")[0] for r in sort_runs(runs, "test/acc")]
    accs = {r.name.split("/")[0]: r.test.get("test/acc") for r in runs}
    assert accs["good"] > accs["worse"]
    assert by_acc[:2] == ["good", "worse"] and set(by_acc[2:]) == {"stopped", "broken"}
    by_loss = [r.name.split("/")[0] for r in sort_runs(runs, "val/loss")]
    assert by_loss[0] == "good"  # lower is better for losses
    assert [r.name for r in sort_runs(runs, "started", reverse=True)] == [r.name for r in runs][::-1]
    with pytest.raises(ZooError, match=r"--sort 'accuracy': sort by a test metric \(test/acc\)"):
        sort_runs(runs, "accuracy")
    with pytest.raises(ZooError, match=r"--sort 'val/nope': none of these runs has it; they have test/acc, "):
        sort_runs(runs, "val/nope")


def test_formats(root: Path) -> None:
    runs = collect(root)
    table = format_runs(runs).splitlines()
    header = ["run", "started", "model", "data", "epochs", "best", "val", "test", "wall", "status"]
    assert table[0].split() == header
    good = next(line for line in table if line.startswith("good/"))
    assert good.split()[-1] == "finished" and " MLP " in good and " digits " in good
    assert next(line for line in table if line.startswith("broken/")).endswith("failed")
    rows = list(csv.DictReader(io.StringIO(format_runs(runs, "csv"))))
    assert [r["status"] for r in rows] == ["finished", "finished", "interrupted", "failed"]
    assert float(rows[0]["test/acc"]) == pytest.approx(runs[0].test["test/acc"])
    assert json.loads(format_runs(runs, "json"))[3]["error"] == "RuntimeError: the disk fell off"


def test_zoo_runs_command(root: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = run_main(["runs", str(root), "--sort", "test/acc"], capsys)
    assert code == 0 and out.splitlines()[1].startswith("good/version_0")
    code, out, _ = run_main(["runs", str(tmp_path)], capsys)
    assert code == 0 and out.strip() == f"no runs under {tmp_path}"
    # a metrics.csv that is not text (a disk error, a stray binary file) costs its run its metrics only
    garbage = tmp_path / "copy"
    shutil.copytree(root, garbage)
    (garbage / "good" / "version_0" / "metrics.csv").write_bytes(b"\x00\xff garbage,,\n")
    code, out, err = run_main(["runs", str(garbage)], capsys)
    assert code == 0 and "Traceback" not in err and out.splitlines()[1].startswith("good/version_0")
    code, _, err = run_main(["runs", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and err.strip().startswith(f"zoo: error: {tmp_path / 'nowhere'}: no such folder")
    code, _, err = run_main(["runs", str(root), "--format", "xml"], capsys)
    assert code == 2 and err.startswith("zoo: error: argument --format: invalid choice: 'xml'")
    assert err.splitlines()[1:] == ["Run `zoo runs --help` to see every option."]


def test_piped_output_is_one_line_per_epoch(tmp_path: Path, capsys) -> None:
    """Under pytest stdout is not a terminal: the trainer reports one line per epoch with the
    epoch's own values (train/loss: the epoch mean in metrics.csv), instead of a redrawn bar."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    from zoo.callbacks import EpochLines

    capsys.readouterr()
    _train(tmp_path, "piped", epochs=3, progress=True)
    lines = capsys.readouterr().out.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[:2] for line in epochs] == [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    assert not any("it/s" in line for line in lines)  # no tqdm redraws
    with (tmp_path / "piped" / "version_0" / "metrics.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/acc")]
    for line, row in zip(epochs, rows, strict=True):
        fields = line.split()
        shown = float(fields[fields.index("train/loss") + 1])
        assert shown == pytest.approx(float(row["train/loss"]), rel=1e-3)
    assert any(isinstance(cb, EpochLines) for cb in ZooTrainer(logger=False).callbacks)
    quiet = ZooTrainer(logger=False, enable_progress_bar=False).callbacks
    assert not any(isinstance(cb, EpochLines) for cb in quiet)
    chosen = ZooTrainer(logger=False, callbacks=[TQDMProgressBar()]).callbacks
    assert not any(isinstance(cb, EpochLines) for cb in chosen)


def test_the_first_epoch_line_of_a_resumed_fit_counts_from_the_resume(monkeypatch, capsys) -> None:
    """A fit resumed from a checkpoint written at a validation finishes that epoch without
    Lightning calling on_train_epoch_start: its line said "(529.1 s)", the seconds since boot."""
    import time
    from types import SimpleNamespace

    import torch

    from zoo.callbacks import EpochLines

    clock = iter([1000.0, 1002.5])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    trainer = SimpleNamespace(
        current_epoch=5, global_step=60, max_epochs=60, is_global_zero=True,
        callback_metrics={"val/loss": torch.tensor(0.6145)},
    )  # fmt: skip
    lines = EpochLines()
    lines.on_train_start(trainer, None)  # the resumed fit: no on_train_epoch_start before the epoch ends
    lines.on_train_epoch_end(trainer, None)
    lines.on_train_end(trainer, None)
    assert capsys.readouterr().out == "epoch 6/60  step 60  val/loss 0.6145  (2.5 s)\n"


def test_a_zoo_trainer_prints_no_cloud_adverts(tmp_path: Path, caplog) -> None:
    import logging

    from zoo.trainer import ZooTrainer

    with caplog.at_level(logging.INFO):
        ZooTrainer(default_root_dir=tmp_path, accelerator="cpu", enable_progress_bar=False)
    assert "GPU available" in caplog.text  # Lightning's own lines still come
    assert "Tip:" not in caplog.text


def test_without_nvml_cuda_is_not_probed_through_it_at_every_step() -> None:
    import ctypes

    import zoo.trainer  # noqa: F401  (after lightning, which asks for the NVML check)

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:  # no NVIDIA driver: the check would dlopen at every optimizer step for nothing
        assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") is None
    else:  # with one, Lightning's fork-safe check stays
        assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1"


def test_a_zoo_trainer_refuses_a_run_root_that_is_a_file(tmp_path: Path) -> None:
    # Lightning's CSV logger failed later with FileExistsError
    (tmp_path / "afile").write_text("x")
    with pytest.raises(
        ZooError, match=r"trainer.default_root_dir: .*afile is a file; name a folder for the runs"
    ):
        ZooTrainer(default_root_dir=tmp_path / "afile")
    with pytest.raises(ZooError, match=r"lies under the file .*afile"):
        ZooTrainer(default_root_dir=tmp_path / "afile" / "runs")


def test_a_killed_run_counts_its_wall_time_to_its_last_sign_of_life(root: Path, tmp_path: Path) -> None:
    """SIGKILL leaves run.json as the run (or its resumed part) began: `zoo runs` said 0.0 s. The
    time from that write to the newest metrics row or checkpoint is added to the recorded wall time
    (the earlier parts of a resumed run)."""
    from zoo.runs import wall_time

    run_dir = tmp_path / "killed" / "version_0"
    (run_dir / "checkpoints").mkdir(parents=True)
    record = {**_record(root, "good"), "status": "running", "pid": 2**22 + 12345, "wall_s": 10.0}
    record.pop("ended")
    (run_dir / "run.json").write_text(json.dumps(record))
    shutil.copy(root / "good" / "version_0" / "metrics.csv", run_dir / "metrics.csv")
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    began = 1_700_000_000
    for name, seconds in (("run.json", 0), ("metrics.csv", 75), ("checkpoints/last.ckpt", 60)):
        os.utime(run_dir / name, (began + seconds, began + seconds))
    (run,) = collect(tmp_path)
    assert run.status == "interrupted" and run.wall_s == pytest.approx(85.0)
    assert "1m25s" in format_runs([run])
    # what RunRecord records stays as it is once the run said how it ended (SIGTERM, Ctrl-C, an error)
    assert wall_time({**record, "status": "interrupted"}, run_dir) == 10.0
    assert wall_time({**record, "status": "finished", "wall_s": None}, run_dir) is None


def test_a_resumed_run_keeps_the_time_of_its_metrics_for_the_killed_part(tmp_path: Path) -> None:
    """The resumed logger rewrites metrics.csv without the rows after the checkpoint before
    RunRecord reads the killed part's last sign of life: the file keeps its time."""
    log_dir = tmp_path / "version_0"
    log_dir.mkdir()
    rows = "epoch,step,train/loss\n0,4,1.0\n0,9,0.9\n1,14,0.8\n"
    (log_dir / "metrics.csv").write_text(rows)
    os.utime(log_dir / "metrics.csv", (1_700_000_000, 1_700_000_000))
    logger = CSVLogger(save_dir=str(tmp_path), version=0)
    logger.continue_after(0, 9)
    logger.experiment  # noqa: B018 - Lightning makes it as setup begins
    assert (log_dir / "metrics.csv").read_text() == "epoch,step,train/loss\n0,4,1.0\n0,9,0.9\n"
    assert (log_dir / "metrics.csv").stat().st_mtime == 1_700_000_000


@pytest.mark.parametrize("kind", ["file", "dangling link"])
def test_a_stray_version_n_that_is_no_folder_is_skipped(tmp_path: Path, kind: str) -> None:
    """Lightning counted folders only, then could not make version_0 (FileExistsError)."""
    from zoo.loggers import next_version

    folder = tmp_path / "digits"
    folder.mkdir()
    if kind == "file":
        (folder / "version_0").write_text("")
    else:
        (folder / "version_0").symlink_to(tmp_path / "nowhere")
    assert next_version(folder) == 1
    logger = CSVLogger(save_dir=str(tmp_path), name="digits")
    assert logger.version == 1 and logger.log_dir == str(folder / "version_1")


def test_a_full_disk_under_the_metrics_is_one_error_naming_the_folder(tmp_path: Path, monkeypatch) -> None:
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    from zoo.files import DiskError

    def full(self) -> None:
        raise OSError(28, "No space left on device")

    logger = CSVLogger(save_dir=str(tmp_path))
    monkeypatch.setattr(ExperimentWriter, "save", full)
    with pytest.raises(
        DiskError, match=rf"^cannot write {tmp_path / 'version_0'}/metrics.csv: the disk holding "
    ):
        logger.log_metrics({"train/loss": 1.0}, step=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "--format", "xml"], "argument --format: invalid choice: 'xml' (choose from"),
        (["export", "x.ckpt", "-f", "tflite"], "argument --format/-f: invalid choice: 'tflite'"),
        (
            ["sweep", "-c", "mlp_digits", "--space", "mlp_digits"],
            "the following arguments are required: --trials",
        ),
        (["plot"], "the following arguments are required: RUN"),
        (["generate"], "the following arguments are required: checkpoint"),
        (["models", "--bad"], "unrecognized arguments: --bad"),
        (
            ["recipes", "validate", "x"],
            "zoo recipes validate: no such action; valid actions: list, show, copy, path.",
        ),
        (["recipes"], "zoo recipes needs an action: list, show, copy, path."),
        (["recipes", "copy"], "the following arguments are required: name"),
    ],
    ids=["runs", "export", "sweep", "plot", "generate", "models", "recipes", "recipes bare", "recipes copy"],
)
def test_the_argparse_commands_say_what_is_wrong_in_one_line(argv: list[str], message: str, capsys) -> None:
    """They printed argparse's usage text, then `zoo runs: error: ...`."""
    code, out, err = run_main(argv, capsys)
    command = " ".join(argv[:2]) if argv[:2] == ["recipes", "copy"] else argv[0]
    assert code == 2 and out == ""
    first, hint = err.splitlines()
    assert first.startswith("zoo: error: ") and message in first, err
    assert hint == f"Run `zoo {command} --help` to see every option."
