"""Learning curves: a run's ``metrics.csv`` read back and drawn (``zoo plot``, ``curves.png``).

A run directory's ``metrics.csv`` (written by :class:`zoo.loggers.CSVLogger`) holds one row per
logging event: ``train/loss`` every ``log_every_n_steps`` (the mean since the last one) and per
epoch (the epoch's mean, in the row that also holds the epoch's other ``train/`` metrics), the
``val/`` metrics per epoch, the learning rate of each parameter group (``lr-AdamW``,
``lr-AdamW/pg2``, ... from :class:`zoo.callbacks.LearningRates`) and the ``test/`` metrics once.

:func:`draw` puts them in one figure: a panel for the loss, one per task metric (``acc``,
``f1``, ``mse``, ...) with the training and validation curves, and one for the learning rates;
several runs are overlaid in different colours, the training curves solid and the validation
curves dashed, each run's test metrics in its legend entry. matplotlib is imported only here,
with its non-interactive Agg canvas (no display needed).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoo.errors import ZooError

METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"

XAxis = Literal["step", "epoch"]
#: the most runs one figure overlays (ten colours, each run's entry in the legend)
MAX_RUNS = 10
STAGES = ("train", "val")
#: the test metrics shown in a run's legend entry, in this order of preference
HEADLINE = ("test/acc", "test/mse", "test/loss")


@dataclass
class Curves:
    """The logged values of one run.

    ``points[key]`` lists ``(step, epoch, value)`` in logging order (``epoch`` is ``None`` for rows
    a callback logged without one, e.g. learning rates); ``epoch_rows`` marks the ``train/loss``
    values that are epoch means rather than windows of ``log_every_n_steps``.
    """

    name: str
    points: dict[str, list[tuple[int, int | None, float]]] = field(default_factory=dict)
    epoch_means: list[tuple[int, int | None, float]] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)
    #: the only run of its figure: legend entries name the curves without the run
    single: bool = True

    def epoch_axis(self) -> tuple[list[float], list[float]]:
        """``(steps, epochs)`` to interpolate a step into epochs completed: epoch ``e`` ends at the
        largest step of any row of epoch ``e``."""
        ends: dict[int, int] = {}
        for rows in self.points.values():
            for step, epoch, _ in rows:
                if epoch is not None:
                    ends[epoch] = max(step, ends.get(epoch, step))
        steps, epochs = [0.0], [0.0]
        for epoch in sorted(ends):
            if ends[epoch] > steps[-1]:
                steps.append(float(ends[epoch]))
                epochs.append(float(epoch + 1))
        return steps, epochs


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_curves(run_dir: str | Path, name: str | None = None) -> Curves:
    """The curves of the run in ``run_dir`` (the folder holding its ``metrics.csv``)."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_CSV
    if not path.is_file():
        raise ZooError(
            f"{run_dir}: no {METRICS_CSV} in this folder; give a run directory (runs/NAME/version_N)."
        )
    curves = Curves(name or str(run_dir))
    try:
        _read_rows(path, curves)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ZooError(f"{path}: not a metrics file a run writes ({err}).") from err
    if not curves.points and not curves.test:
        raise ZooError(f"{path}: no metric values in this file (did the run log anything?).")
    return curves


def _read_rows(path: Path, curves: Curves) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            step = _number(row.get("step"))
            epoch = _number(row.get("epoch"))
            if step is None:
                continue
            values = {
                k: v
                for k, raw in row.items()
                if k not in ("step", "epoch") and (v := _number(raw)) is not None
            }
            point_epoch = None if epoch is None else int(epoch)
            for key, value in values.items():
                if key.startswith("test/"):
                    curves.test[key] = value
                    continue
                curves.points.setdefault(key, []).append((int(step), point_epoch, value))
            # the epoch's train/loss shares its row with the epoch's other training metrics
            if "train/loss" in values and any(k.startswith("train/") and k != "train/loss" for k in values):
                curves.epoch_means.append((int(step), point_epoch, values["train/loss"]))


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: each is a run directory, or a folder searched for them
    (every folder below it holding a ``metrics.csv``), in name order."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ZooError(f"{path}: no such file or directory.")
        if path.is_file():
            path = path.parent if path.name == METRICS_CSV else path
        if (path / METRICS_CSV).is_file():
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob(METRICS_CSV))
        if not below:
            raise ZooError(f"{path}: no run directory (a folder with {METRICS_CSV}) in it.")
        found.extend(below)
    return list(dict.fromkeys(found))


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Short, distinct names: the path below the runs' common folder (``mlp_digits/version_0``)."""
    if len(run_dirs) == 1:
        return [str(Path(*run_dirs[0].parts[-2:]))]
    resolved = [p.resolve() for p in run_dirs]
    common = Path(os.path.commonpath(resolved))
    return [str(p.relative_to(common)) if p != common else p.name for p in resolved]


def _panels(runs: list[Curves]) -> list[str]:
    """The figure's panels: ``loss``, the task metrics in the order first logged, then ``lr``."""
    names: list[str] = []
    for run in runs:
        for key in run.points:
            stage, _, metric = key.partition("/")
            if stage in STAGES and metric and metric not in names:
                names.append(metric)
    names.sort(key=lambda n: n != "loss")
    if any(key.startswith("lr-") for run in runs for key in run.points):
        names.append("lr")
    return names


def draw(runs: list[Curves], x: XAxis = "step") -> Any:
    """One matplotlib ``Figure`` of the runs' curves (see the module description)."""
    from matplotlib.figure import Figure

    if x not in ("step", "epoch"):
        raise ZooError(f"--x must be step or epoch; got {x!r}.")
    panels = _panels(runs)
    if not panels:
        raise ZooError("no training or validation curves to draw (only test metrics were logged).")
    columns = 2 if len(panels) == 4 else min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(5.2 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, panel in zip(axes, panels, strict=False):
        for run, colour in zip(runs, colours, strict=False):
            steps, epochs = run.epoch_axis()

            def position(step: int, epoch: int | None, steps=steps, epochs=epochs) -> float:
                if x == "step":
                    return float(step)
                return float(_interp(step, steps, epochs))

            keys = (
                _distinct_rates(run)
                if panel == "lr"
                else [f"{stage}/{panel}" for stage in STAGES if f"{stage}/{panel}" in run.points]
            )
            for key in keys:
                points = run.points[key]
                if key == "train/loss" and run.epoch_means:
                    means = {(s, e) for s, e, _ in run.epoch_means}
                    window = [p for p in points if (p[0], p[1]) not in means]
                    if window:
                        ax.plot(
                            *_xy(window, position),
                            color=colour,
                            lw=1,
                            alpha=0.6,
                            label=_label(run, key, "steps"),
                        )
                    ax.plot(*_xy(run.epoch_means, position), color=colour, marker="o", ms=3, lw=1.5,
                            label=_label(run, key, "epoch mean"))  # fmt: skip
                    continue
                dashed = key.startswith("val/") or (panel == "lr" and keys.index(key) > 0)
                ax.plot(*_xy(points, position), color=colour, ls="--" if dashed else "-",
                        marker="o" if len(points) < 30 else None, ms=3, label=_label(run, key))  # fmt: skip
        ax.set_title("learning rate" if panel == "lr" else panel)
        ax.set_xlabel("epochs" if x == "epoch" else "step")
        if panel == "lr" or (panel == "loss" and _spans_decades(ax)):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in axes[len(panels) :]:
        ax.remove()
    if len(runs) == 1:
        figure.suptitle(_headline(runs[0]), fontsize="medium")
    else:  # one entry per run (its colour and test metrics); the panels' legends name the curves
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=colour, lw=2) for colour in colours]
        figure.legend(
            handles,
            [_headline(run) for run in runs],
            loc="outside upper center",
            ncols=min(len(runs), 3),
            fontsize="small",
        )
    return figure


def _distinct_rates(run: Curves) -> list[str]:
    """The run's learning-rate keys, one per distinct curve (parameter groups that share their
    rates throughout, such as ``decay`` and ``no_decay`` without a per-group rate, draw once)."""
    keys: list[str] = []
    for key in sorted(k for k in run.points if k.startswith("lr-")):
        if not any(run.points[key] == run.points[kept] for kept in keys):
            keys.append(key)
    return keys


def _interp(step: int, steps: list[float], epochs: list[float]) -> float:
    import numpy as np

    if len(steps) < 2:
        return 0.0
    # beyond the last known epoch end: extend at the last epoch's pace
    if step > steps[-1]:
        pace = (epochs[-1] - epochs[-2]) / (steps[-1] - steps[-2])
        return epochs[-1] + (step - steps[-1]) * pace
    return float(np.interp(step, steps, epochs))


def _xy(points: list[tuple[int, int | None, float]], position: Any) -> tuple[list[float], list[float]]:
    return [position(s, e) for s, e, _ in points], [v for _, _, v in points]


def _label(run: Curves, key: str, detail: str = "") -> str:
    what = f"{key} ({detail})" if detail else key
    if key.startswith("lr-") and len(_distinct_rates(run)) == 1:
        what = key.split("/")[0]  # every group at the same rate: name the optimizer only
    return what if run.single else f"{run.name}: {what}"


def _headline(run: Curves) -> str:
    shown = [f"{k} {run.test[k]:.4g}" for k in HEADLINE if k in run.test][:2]
    return run.name + (f" (test: {', '.join(shown)})" if shown else "")


def _spans_decades(ax: Any) -> bool:
    values = [v for line in ax.get_lines() for v in line.get_ydata() if v > 0]
    return bool(values) and max(values) / min(values) > 30


def image_formats() -> dict[str, str]:
    """The file formats :func:`plot_runs` can write: extension (no dot) -> description."""
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def check_image_path(out: str | Path, option: str = "output") -> str:
    """The format ``out``'s extension names (``png``, ``pdf``, ``svg``, ...), or a :class:`ZooError`
    naming ``option`` for a folder or an extension matplotlib cannot write."""
    out = Path(out)
    if out.is_dir():
        raise ZooError(f"{option} {out} is a folder; give a file name such as {out / 'curves.png'}.")
    kind = out.suffix.lower().lstrip(".")
    formats = image_formats()
    if kind not in formats:
        shown = f"'{out.suffix}'" if out.suffix else "none"
        raise ZooError(
            f"{option} {out}: the extension names the image format ({shown} is not one); use "
            f"{', '.join('.' + k for k in sorted(formats))}."
        )
    return kind


def plot_runs(run_dirs: list[str | Path], out: str | Path, x: XAxis = "step") -> Any:
    """Draw the curves of ``run_dirs`` into the image file ``out`` (the format its extension
    names: ``.png``, ``.pdf``, ``.svg``, ...); returns the figure. Runs are named by their path
    below their common folder (:func:`run_labels`)."""
    kind = check_image_path(out)
    dirs = [Path(p) for p in run_dirs]
    if len(dirs) > MAX_RUNS:
        raise ZooError(
            f"{len(dirs)} runs: too many to tell apart in one figure; name at most {MAX_RUNS} run "
            "directories (`zoo runs` lists them)."
        )
    runs = [read_curves(d, name) for d, name in zip(dirs, run_labels(dirs), strict=True)]
    for run in runs:
        run.single = len(runs) == 1
    figure = draw(runs, x=x)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(
            f"output {out}: cannot make the folder {out.parent} ({err.strerror or err})."
        ) from None
    from zoo.files import atomic_write

    atomic_write(out, lambda handle: figure.savefig(handle, format=kind, dpi=110), binary=True)
    return figure
