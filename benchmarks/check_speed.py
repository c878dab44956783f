"""How fast is `resdsl check`? Side by side with `python -c "import torch"`, in one run.

Each command runs as a fresh process (that is what a user waits for), several times; the
median is reported. Targets (issue 2): checking the 1,202-layer CIFAR ResNet costs less
than a third of importing torch, and time grows no worse than linearly with depth.

    python benchmarks/check_speed.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    check = [py, "-m", "resdsl", "check"]
    rows = processes(
        {
            'python -c "import torch"': [py, "-c", "import torch"],
            "python -c pass (interpreter start)": [py, "-c", "pass"],
            "resdsl check resnet18": [*check, "resnet18"],
            "resdsl check resnet20 (20 layers)": [*check, "resnet20"],
            "resdsl check resnet110 (110 layers)": [*check, "resnet110"],
            "resdsl check resnet1202 (1,202 layers)": [*check, "resnet1202"],
            "resdsl check resnet1202 --set n=400 (2,402 layers)": [*check, "resnet1202", "--set", "n=400"],
        },
        args.repeat,
    )
    torch_time = rows['python -c "import torch"']
    for name, seconds in rows.items():
        print(f"{name:<52} {seconds * 1000:8.1f} ms   {seconds / torch_time:5.2f}x import torch")
    base = rows["resdsl check resnet20 (20 layers)"]
    per_layer_1202 = (rows["resdsl check resnet1202 (1,202 layers)"] - base) / (1202 - 20)
    per_layer_2402 = (rows["resdsl check resnet1202 --set n=400 (2,402 layers)"] - base) / (2402 - 20)
    ratio = rows["resdsl check resnet1202 (1,202 layers)"] / torch_time
    print()
    print(f"check(resnet1202) / import torch = {ratio:.2f}  (target < 0.33: {'met' if ratio < 1 / 3 else 'NOT met'})")
    print(
        f"marginal cost per layer: {per_layer_1202 * 1e6:.0f} us up to 1,202 layers, "
        f"{per_layer_2402 * 1e6:.0f} us up to 2,402 (ratio {per_layer_2402 / per_layer_1202:.2f}; about 1 means linear)"
    )


if __name__ == "__main__":
    main()
