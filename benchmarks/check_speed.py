"""How fast is `resdsl check`? Side by side with `python -c "import torch"`, in one run.

Each command runs as a fresh process (that is what a user waits for), several times; the
median is reported. Targets (issue 2): checking the 1,202-layer CIFAR ResNet costs less
than a third of importing torch, and time grows no worse than linearly with depth.

    python benchmarks/check_speed.py [--repeat 7] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, print_rows, process_samples, ratios, row, write_json

TITLE = '`resdsl check` against `python -c "import torch"` (fresh processes)'


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    check = [py, "-m", "resdsl", "check"]
    cmds = {
        'python -c "import torch"': [py, "-c", "import torch"],
        "python -c pass (interpreter start)": [py, "-c", "pass"],
        "resdsl check resnet18": [*check, "resnet18"],
        "resdsl check resnet20 (20 layers)": [*check, "resnet20"],
        "resdsl check resnet110 (110 layers)": [*check, "resnet110"],
        "resdsl check resnet1202 (1,202 layers)": [*check, "resnet1202"],
        "resdsl check resnet1202 --set n=400 (2,402 layers)": [*check, "resnet1202", "--set", "n=400"],
    }
    if args.quick:  # the two commands of the target ratio, once each after a warm-up
        cmds = {k: v for k, v in cmds.items() if "import torch" in k or "(1,202" in k}
    runs = process_samples(cmds, 2 if args.quick else args.repeat)
    times = {name: statistics.median(values) for name, values in runs.items()}
    torch_runs = runs['python -c "import torch"']
    torch_time = times['python -c "import torch"']
    for name, seconds in times.items():
        print(f"{name:<52} {seconds * 1000:8.1f} ms   {seconds / torch_time:5.2f}x import torch")
    big = "resdsl check resnet1202 (1,202 layers)"
    rows = [
        row(
            "resdsl check resnet1202",
            "time / import torch",
            ratios(runs[big], torch_runs),
            "< 0.33",
            lambda r: r < 1 / 3,
            f"median {times[big] * 1e3:.0f} ms against {torch_time * 1e3:.0f} ms",
        )
    ]
    if not args.quick:
        base = times["resdsl check resnet20 (20 layers)"]
        per_layer_1202 = (times[big] - base) / (1202 - 20)
        per_layer_2402 = (times["resdsl check resnet1202 --set n=400 (2,402 layers)"] - base) / (2402 - 20)
        print(
            f"marginal cost per layer: {per_layer_1202 * 1e6:.0f} us up to 1,202 layers, "
            f"{per_layer_2402 * 1e6:.0f} us up to 2,402 (ratio {per_layer_2402 / per_layer_1202:.2f}; "
            "about 1 means linear)"
        )
        scale = per_layer_2402 / per_layer_1202
        rows.append(
            row(
                "per-layer cost, 2,402 against 1,202 layers",
                "marginal cost ratio (medians)",
                [scale],
                "about 1 (linear)",
                None,
                f"{per_layer_1202 * 1e6:.0f} us and {per_layer_2402 * 1e6:.0f} us a layer; one figure, no spread",
            )
        )
    print()
    print_rows(rows)
    write_json(args.json, "check_speed", TITLE, rows)


if __name__ == "__main__":
    main()
