"""The small-data case end to end: `zoo train -c mlp_digits` against scikit-learn's MLPClassifier.

    python benchmarks/sklearn_peer.py [--repeat 3]

Both as whole processes, on the same split: this process makes the zoo's split of digits
(SklearnDataModule, seed 0) and saves it; scikit-learn's process reads it, standardizes with the
training split's statistics (as the zoo does), fits MLPClassifier(256, 128) once and scores the
test split. Prints median wall times, test accuracies, ``import lightning`` alone, and the ratio
(zoo - import lightning) / scikit-learn (issue 12's goal: <= 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SKLEARN = """
import sys, numpy as np
from sklearn.neural_network import MLPClassifier
d = np.load(sys.argv[1])
mean, std = d["x_train"].mean(0), d["x_train"].std(0)
std[std < 1e-8] = 1.0
scale = lambda x: (x - mean) / std
clf = MLPClassifier(hidden_layer_sizes=(256, 128), random_state=0)
clf.fit(scale(d["x_train"]), d["y_train"])
print(clf.score(scale(d["x_test"]), d["y_test"]))
"""


def timed(command: list[str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from zoo.data import SklearnDataModule

    data = SklearnDataModule("digits", val_size=0.15, test_size=0.15, standardize=False)  # mlp_digits' split
    data.prepare()
    parts = {name: data._splits[name] for name in ("train", "test")}
    zoo = str(Path(sys.executable).parent / "zoo")
    times: dict[str, list[float]] = {
        "import lightning": [],
        "zoo train -c mlp_digits": [],
        "scikit-learn": [],
    }
    accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "split.npz"
        np.savez(split, **{f"{k}_{n}": getattr(p, k) for n, p in parts.items() for k in ("x", "y")})
        for i in range(args.repeat):  # interleaved, so a slow moment of the machine hits all three
            times["import lightning"].append(timed([sys.executable, "-c", "import lightning"], tmp)[0])
            root = Path(tmp) / f"runs{i}"
            wall, _ = timed([zoo, "train", "-c", "mlp_digits", "--trainer.default_root_dir", str(root)], tmp)
            times["zoo train -c mlp_digits"].append(wall)
            accuracy["zoo train -c mlp_digits"] = json.loads(
                next(root.rglob("test_metrics.json")).read_text()
            )["test/acc"]
            wall, out = timed([sys.executable, "-c", SKLEARN, str(split)], tmp)
            times["scikit-learn"].append(wall)
            accuracy["scikit-learn"] = float(out.strip())
    print(
        f"digits: {len(parts['train'].y)} training rows, {len(parts['test'].y)} test rows (the zoo's split)"
    )
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        acc = f"test acc {accuracy[name]:.4f}" if name in accuracy else ""
        print(f"{name:26s} median {medians[name]:6.2f} s  {acc:16s} ({', '.join(f'{v:.2f}' for v in t)})")
    zoo_own = medians["zoo train -c mlp_digits"] - medians["import lightning"]
    print(
        f"(zoo - import lightning) / scikit-learn: {zoo_own:.2f} s / {medians['scikit-learn']:.2f} s = "
        f"{zoo_own / medians['scikit-learn']:.2f}"
    )


if __name__ == "__main__":
    main()
