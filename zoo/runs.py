"""The runs under a folder, one line each (``zoo runs``): what ran, when, how well, how it ended.

Every run directory of ``zoo train`` / ``zoo fit`` holds ``run.json`` (written by
:class:`zoo.callbacks.RunRecord`): the status (``running``, ``finished``, ``interrupted``,
``failed``), start and end times, wall time, host and process, the command, the model and the data,
and the metric the best checkpoint is chosen by. :func:`collect` reads it with ``metrics.csv``
(epochs, the best validation value) and ``test_metrics.json``; run directories from before
``run.json`` are described from ``config.yaml`` and their files. A ``running`` run whose process is
gone from this host (killed, or the machine restarted) is shown as ``interrupted``.

Nothing here imports torch or Lightning, so ``zoo runs`` answers at once.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

RUN_FILE = "run.json"
METRICS_CSV = "metrics.csv"
TEST_FILE = "test_metrics.json"
STATUSES = ("running", "finished", "interrupted", "failed", "pruned")
#: metrics where lower is better (the rest: higher is better)
LOWER_IS_BETTER = ("loss", "mse", "mae", "ppl", "bpc", "rmse")
FORMATS = ("table", "csv", "json")


HIGHER_IS_BETTER = ("acc", "f1", "auroc", "r2", "precision", "recall", "ap", "nn_acc")


def lower_is_better(key: str) -> bool:
    return key.rpartition("/")[2] in LOWER_IS_BETTER or key in ("wall_s",)


def known_mode(metric: str) -> str | None:
    """``min`` for a metric that improves as it falls (losses, errors), ``max`` for one that improves
    as it rises (accuracy, F1, AUROC, R2), ``None`` for a name the zoo does not know."""
    name = str(metric).rpartition("/")[2]
    return "min" if name in LOWER_IS_BETTER else "max" if name in HIGHER_IS_BETTER else None


def monitor_mode(monitor: str, mode: str, option: str) -> str:
    """``min`` or ``max`` for the metric ``monitor``: ``mode`` as given, or for ``auto`` from the
    metric's name (losses and errors fall, accuracy, F1, AUROC and R2 rise). A stated mode that
    contradicts a known metric is refused: early stopping would stop a run as it improves, a
    checkpoint keep its worst epoch, a plateau schedule cut the rate while the metric rises."""
    known = known_mode(monitor)
    if mode == "auto":
        if known is None:
            raise ZooError(
                f"{option}.mode auto cannot tell whether {monitor!r} should fall or rise; set "
                f"{option}.mode min or max."
            )
        return known
    if mode not in ("min", "max"):
        raise ZooError(f"{option}.mode must be auto, min or max; got {mode!r}.")
    if known is not None and mode != known:
        way = "falls" if known == "min" else "rises"
        raise ZooError(
            f"{option}.mode is {mode}, but {monitor} improves as it {way}: set {option}.mode {known} "
            "(or auto, which reads it from the name)."
        )
    return mode


@dataclass
class Run:
    """One run directory's summary (the row of ``zoo runs``)."""

    path: Path
    name: str
    status: str = "unknown"
    started: str | None = None
    wall_s: float | None = None
    model: str = "?"
    data: str = "?"
    epochs: int | None = None
    monitor: str = "val/loss"
    best: dict[str, float] = field(default_factory=dict)  # best value of each val/ metric
    test: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def value(self, key: str) -> float | None:
        """The value sorted by: a test metric, the best of a val metric, ``epochs`` or ``wall_s``."""
        if key.startswith("test/"):
            return self.test.get(key)
        if key.startswith("val/"):
            return self.best.get(key)
        if key in ("epochs", "wall_s"):
            value = getattr(self, key)
            return None if value is None else float(value)
        raise ZooError(
            f"--sort {key!r}: sort by a test metric (test/acc), a validation metric (val/loss: its best "
            "value), epochs, wall_s or started."
        )

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "run": self.name,
            "status": self.status,
            "started": self.started,
            "model": self.model,
            "data": self.data,
            "epochs": self.epochs,
            "monitor": self.monitor,
            "best_val": self.best.get(self.monitor),
            "wall_s": self.wall_s,
        }
        row.update({f"best {k}": v for k, v in sorted(self.best.items())})
        row.update(sorted(self.test.items()))
        if self.error:
            row["error"] = self.error
        return row


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def process_alive(record: dict[str, Any]) -> bool:
    """Whether the process that wrote ``record`` still runs (``True`` where that cannot be told)."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(record.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


CHECKPOINTS = "checkpoints"


def wall_time(record: dict[str, Any], run_dir: str | Path) -> float | None:
    """The wall time of the run ``record`` (its ``run.json``) describes, in seconds.

    ``wall_s`` as recorded, except for a run whose record still says ``running``: it was written as
    the run (or its resumed part) began, so the time from that write to the run's last sign of life
    (its newest ``metrics.csv`` row or checkpoint) is added. A run killed without a word (SIGKILL,
    a power cut) is then not 0.0 s, and counts as long as it ran, as a SIGTERM's run does; a run
    still going counts to its last row. All the times are the file system's (the files' modification
    times), so a run on another host is measured alike. :class:`zoo.callbacks.RunRecord` starts a
    resumed run's count from this."""
    wall = record.get("wall_s")
    wall = float(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) else None
    if record.get("status") != "running":
        return wall
    run_dir = Path(run_dir)
    try:
        written = (run_dir / RUN_FILE).stat().st_mtime
    except OSError:
        return wall
    signs = [run_dir / METRICS_CSV, *sorted((run_dir / CHECKPOINTS).glob("*.ckpt"))]
    last = written
    for path in signs:
        try:
            last = max(last, path.stat().st_mtime)
        except OSError:  # gone meanwhile, or never written
            continue
    return round((wall or 0.0) + (last - written), 3)


def _metrics(run: Run) -> None:
    """Epochs and the best value of each validation metric, from ``metrics.csv`` (read as ``zoo plot``
    reads it: :func:`zoo.curves.read_curves`)."""
    from zoo.curves import read_curves

    if not (run.path / METRICS_CSV).is_file():
        return
    try:
        curves = read_curves(run.path)
    except ZooError:  # a file without values: nothing to report
        return
    epochs = {epoch for _, epoch, _ in curves.epoch_means if epoch is not None}
    for key, points in curves.points.items():
        if key.startswith("val/"):
            values = [value for _, _, value in points]
            run.best[key] = min(values) if lower_is_better(key) else max(values)
            epochs |= {epoch for _, epoch, _ in points if epoch is not None}
    run.epochs = max(epochs) + 1 if epochs else None


def read_run(path: Path, name: str) -> Run:
    run = Run(path, name)
    record = read_json_object(path / RUN_FILE)
    test = read_json_object(path / TEST_FILE)
    run.test = {k: float(v) for k, v in test.items() if isinstance(v, (int, float))}
    if record:
        run.status = str(record.get("status", "unknown"))
        if run.status == "running" and not process_alive(record):
            run.status = "interrupted"
        run.started = record.get("started")
        run.wall_s = wall_time(record, path)
        run.model = str(record.get("model", "?")).rpartition(".")[2]
        run.data = str(record.get("data", "?"))
        run.monitor = str(record.get("monitor") or "val/loss")
        run.error = record.get("error")
    else:  # a run directory from before run.json
        config = _config(path)
        model = config.get("model") or {}
        data = config.get("data") or {}
        if isinstance(model, dict):
            run.model = str(model.get("class_path", "?")).rpartition(".")[2]
        if isinstance(data, dict):
            args = data.get("init_args") or {}
            run.data = str(args.get("dataset") or str(data.get("class_path", "?")).rpartition(".")[2])
        checkpoint = config.get("checkpoint") if isinstance(config.get("checkpoint"), dict) else {}
        run.monitor = str(checkpoint.get("monitor") or "val/loss")
        run.status = "finished" if run.test else "unknown"
        csv_path = path / METRICS_CSV
        if csv_path.is_file():
            run.started = datetime.fromtimestamp(csv_path.stat().st_ctime).isoformat(timespec="seconds")
    _metrics(run)
    return run


def find_run_dirs(root: Path) -> list[Path]:
    """Folders below ``root`` (or ``root`` itself) that are run directories."""
    if not root.exists():
        raise ZooError(f"{root}: no such folder (zoo train writes its runs under runs/ by default).")
    if not root.is_dir():
        raise ZooError(f"{root}: not a folder; give the folder the runs are in (e.g. runs/).")
    markers = (RUN_FILE, METRICS_CSV)
    found = {p.parent for marker in markers for p in root.rglob(marker)}
    found |= {root} if any((root / m).is_file() for m in markers) else set()
    return sorted(found)


def collect(root: str | Path = "runs") -> list[Run]:
    """Every run below ``root``, named by its path relative to ``root``, oldest first."""
    root = Path(root)
    runs = [read_run(p, str(p.relative_to(root)) if p != root else p.name) for p in find_run_dirs(root)]
    return sorted(runs, key=lambda r: (r.started or "", r.name))


def sort_runs(runs: list[Run], key: str | None, reverse: bool = False) -> list[Run]:
    """Best first by ``key`` (lower first for losses and errors, higher first otherwise; runs without
    it last), or by start time (``started``, the default: oldest first). ``reverse`` flips the order."""
    if key in (None, "started"):
        ordered = sorted(runs, key=lambda r: (r.started or "", r.name))
        return ordered[::-1] if reverse else ordered
    for run in runs:
        run.value(key)  # an unknown key: one error, before sorting
    if runs and all(run.value(key) is None for run in runs):
        have = sorted({k for run in runs for k in (*run.test, *run.best)})
        raise ZooError(
            f"--sort {key!r}: none of these runs has it; they have {', '.join(have) or 'no metrics yet'}."
        )
    sign = 1.0 if lower_is_better(key) else -1.0
    have = [r for r in runs if r.value(key) is not None]
    lack = [r for r in runs if r.value(key) is None]
    have.sort(key=lambda r: sign * r.value(key), reverse=reverse)
    return have + lack


def _headline(test: dict[str, float]) -> str:
    for key in ("test/acc", "test/r2", "test/mse", "test/loss"):
        if key in test:
            return f"{key.removeprefix('test/')} {test[key]:.4f}"
    return "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_runs(runs: list[Run], fmt: str = "table") -> str:
    """The runs as an aligned text table, CSV (every metric a column) or JSON (a list of objects)."""
    if fmt not in FORMATS:
        raise ZooError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    rows = [run.as_dict() for run in runs]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        import io

        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    header = ("run", "started", "model", "data", "epochs", "best val", "test", "wall", "status")
    lines = [header]
    for run in runs:
        best = run.best.get(run.monitor)
        started = (run.started or "-").replace("T", " ")[:16]
        lines.append(
            (
                run.name,
                started,
                run.model,
                run.data,
                "-" if run.epochs is None else str(run.epochs),
                "-" if best is None else f"{run.monitor} {best:.4f}",
                _headline(run.test),
                _duration(run.wall_s),
                run.status,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
