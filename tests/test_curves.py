"""Learning curves: the learning rates in metrics.csv, `zoo plot` and the curves.png of `zoo train`."""

from __future__ import annotations

import csv
import json
import shutil
import struct
from pathlib import Path

import pytest

from tests.test_cli import run_main
from zoo.curves import draw, find_runs, plot_runs, read_curves
from zoo.errors import ZooError

SHORT = ("-c", "mlp_digits", "-c", "trainer/debug", "--trainer.max_epochs", "3")
SHORT += ("--trainer.log_every_n_steps", "2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished runs of mlp_digits: one with its warmup-cosine schedule, one at a constant rate."""
    root = tmp_path_factory.mktemp("runs")

    class _Capture:  # run_main reads the output back through capsys, which a module fixture lacks
        def readouterr(self):
            return type("Out", (), {"out": "", "err": ""})()

    capsys = _Capture()
    for extra in ([], ["--model.lr_scheduler", "null"]):
        code, _, _ = run_main(["train", *SHORT, "--trainer.default_root_dir", str(root), *extra], capsys)
        assert code == 0
    return root


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", header[16:24])


def test_learning_rates_are_logged_every_epoch_and_every_log_step(runs: Path) -> None:
    rows = _rows(runs / "version_1")  # constant rate: every logged value is the optimizer's lr
    lr_rows = [r for r in rows if r.get("lr-AdamW/decay")]
    # 5 steps an epoch (limit_train_batches), a log every 2 steps: epoch starts 0, 5, 10 and steps 1, 3, ...
    steps = sorted({int(r["step"]) for r in lr_rows})
    assert {0, 5, 10} <= set(steps) and {1, 3, 7, 9} <= set(steps), steps
    assert {float(r["lr-AdamW/decay"]) for r in lr_rows} == {0.003}
    assert {float(r["lr-AdamW/no_decay"]) for r in lr_rows} == {0.003}
    scheduled = [float(r["lr-AdamW/decay"]) for r in _rows(runs / "version_0") if r.get("lr-AdamW/decay")]
    assert len(set(scheduled)) > 3 and max(scheduled) <= 0.003  # warmup then cosine decay


def test_train_writes_curves_png_and_its_figure_has_a_line_per_metric(runs: Path) -> None:
    run = runs / "version_0"
    width, height = _png_size(run / "curves.png")
    assert 800 <= width <= 2500 and 400 <= height <= 1600
    figure = plot_runs([run], run / "again.png")
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert list(panels) == ["loss", "acc", "f1", "learning rate"]
    labels = {title: [line.get_label() for line in ax.get_lines()] for title, ax in panels.items()}
    assert labels == {
        "loss": ["train/loss (steps)", "train/loss (epoch mean)", "val/loss"],
        "acc": ["train/acc", "val/acc"],
        "f1": ["val/f1"],
        "learning rate": ["lr-AdamW"],  # decay and no_decay share every value: drawn once
    }
    rows = _rows(run)
    val_loss = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    line = panels["loss"].get_lines()[2]
    assert list(line.get_ydata()) == pytest.approx(val_loss) and len(val_loss) == 3
    test = json.loads((run / "test_metrics.json").read_text())
    headline = f"test/acc {test['test/acc']:.4g}, test/loss {test['test/loss']:.4g}"
    assert figure._suptitle.get_text() == f"{runs.name}/version_0 (test: {headline})"


def test_epoch_axis_places_validation_at_epoch_ends(runs: Path) -> None:
    figure = draw([read_curves(runs / "version_0")], x="epoch")
    val = next(line for line in figure.axes[0].get_lines() if line.get_label() == "val/loss")
    assert list(val.get_xdata()) == [1.0, 2.0, 3.0]
    assert figure.axes[0].get_xlabel() == "epochs"


def test_zoo_plot_overlays_runs_with_one_legend_entry_each(runs: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "both.png"
    code, stdout, _ = run_main(["plot", str(runs), "-o", str(out), "--x", "epoch"], capsys)
    assert code == 0 and stdout.strip() == f"wrote {out}: the curves of 2 runs"
    assert _png_size(out)[0] >= 800
    figure = plot_runs(find_runs([runs]), tmp_path / "again.png")
    entries = [text.get_text() for text in figure.legends[0].get_texts()]
    assert [e.split(" (")[0] for e in entries] == ["version_0", "version_1"]
    loss = figure.axes[0]
    assert sum(line.get_label().endswith("val/loss") for line in loss.get_lines()) == 2
    assert {line.get_color() for line in loss.get_lines()} == {"C0", "C1"}


def test_zoo_plot_errors(runs: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_main(["plot", str(tmp_path / "nothing")], capsys)
    assert code == 2 and err.strip() == f"zoo: error: {tmp_path / 'nothing'}: no such file or directory."
    code, _, err = run_main(["plot", str(tmp_path)], capsys)
    assert err.strip() == f"zoo: error: {tmp_path}: no run directory (a folder with metrics.csv) in it."
    code, _, err = run_main(["plot", str(runs), "--x", "time"], capsys)
    assert code == 2 and "argument --x: invalid choice: 'time'" in err
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (only_test / "metrics.csv").write_text("epoch,step,test/acc\n0,10,0.9\n")
    with pytest.raises(ZooError, match="no training or validation curves to draw"):
        draw([read_curves(only_test)])
    (only_test / "metrics.csv").write_text("epoch,step,val/acc\n")
    with pytest.raises(ZooError, match="no metric values in this file"):
        read_curves(only_test)
    (only_test / "metrics.csv").write_bytes(b"\x00\xff garbage,,\n")  # not text: one line, not a traceback
    code, _, err = run_main(["plot", str(only_test)], capsys)
    assert code == 2 and err.startswith(
        f"zoo: error: {only_test / 'metrics.csv'}: not a metrics file a run writes"
    )
    for output, wanted in (
        (tmp_path, f"--output {tmp_path} is a folder; give a file name such as {tmp_path / 'curves.png'}."),
        (
            tmp_path / "x.txt",
            f"--output {tmp_path / 'x.txt'}: the extension names the image format ('.txt' is",
        ),
        (tmp_path / "x", f"--output {tmp_path / 'x'}: the extension names the image format (none is not"),
    ):
        code, _, err = run_main(["plot", str(runs), "-o", str(output)], capsys)
        assert code == 2 and err.startswith(f"zoo: error: {wanted}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only_test"]  # nothing written
    code, _, err = run_main(["plot", str(runs / "version_0"), "-o", str(tmp_path / "c.svg")], capsys)
    assert code == 0 and (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")  # the format asked for
    many = [runs / "version_0"] * 11
    with pytest.raises(ZooError, match="11 runs: too many to tell apart in one figure; name at most 10"):
        plot_runs(many, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_failed_plot_warns_and_keeps_the_run(runs: Path, tmp_path: Path) -> None:
    from zoo.trainer import draw_curves

    broken = tmp_path / "broken"
    shutil.copytree(runs / "version_0", broken)
    (broken / "metrics.csv").write_text("epoch,step,test/acc\n0,1,0.5\n")
    with pytest.warns(UserWarning, match="could not draw .*curves.png: no training or validation curves"):
        draw_curves(broken)


def test_zoo_plot_into_a_read_only_working_folder_is_one_error(tmp_path: Path, monkeypatch, capsys) -> None:
    """The default --output, curves.png, goes into the working folder: a read-only one was an
    OSError traceback after the runs were read and drawn."""
    from tests.test_files import make_read_only

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,train/loss,val/loss\n0,4,1.0,\n0,4,,0.9\n")
    here = make_read_only(tmp_path / "ro", monkeypatch)
    monkeypatch.chdir(here)
    try:
        code, out, err = run_main(["plot", str(run)], capsys)
        assert code == 2 and out == "" and "Traceback" not in err
        assert len(err.splitlines()) == 1, err
        assert err.startswith(f"zoo: error: --output curves.png: cannot write in {here} ("), err
        assert list(here.iterdir()) == []
    finally:
        here.chmod(0o755)
