"""The README's promises: its commands are what CI runs, its example runs, the wheel ships recipes."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = bash_blocks(README.split("## Run the tests", 1)[1])[0].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_runs_the_digits_recipe():
    main_command = bash_blocks(README.split("## Set up and run the main job", 1)[1])[0].strip()
    assert main_command.startswith("python3 -m venv .venv")
    assert main_command.endswith("zoo train -c mlp_digits")


def test_readme_python_example_runs(tmp_path: Path, monkeypatch):
    examples = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    example = next(e for e in examples if "trainer.train(model, data)" in e)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example.replace("max_epochs=50", "max_epochs=15"), "README.md", "exec"), namespace)
    assert namespace["metrics"]["test/acc"] >= 0.9
    assert Path(namespace["metrics"]["best_checkpoint"]).is_file()
    # the same run directory as `zoo train` makes: runs/wine/version_0 with every file of a CLI run
    run = tmp_path / "runs" / "wine" / "version_0"
    assert Path(namespace["metrics"]["best_checkpoint"]).resolve().parent == (run / "checkpoints").resolve()
    for name in ("metrics.csv", "test_metrics.json", "README.md", "curves.png", "run.json"):
        assert (run / name).is_file(), name
    assert not (tmp_path / "lightning_logs").exists()


def test_wheel_ships_the_recipes(tmp_path: Path):
    pytest.importorskip("hatchling")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("lightning_zoo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "recipes").rglob("*.yaml")}
    assert shipped and {f"zoo/{name}" for name in shipped} <= names
    assert "zoo/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    weights = {p.relative_to(ROOT).as_posix() for p in (ROOT / "zoo" / "weights").iterdir()}
    assert "zoo/weights/manifest.json" in weights and weights <= names  # the pretrained models ship


def test_every_top_level_export_resolves():
    import zoo

    for name in zoo.__all__:
        assert getattr(zoo, name).__name__ == name
