"""How much does `resdsl summary` cost on top of `resdsl check`? Side by side, in one run.

Whole commands, as a user runs them (fresh processes, output piped, median of several,
interleaved): `resdsl check SPEC` against `resdsl summary SPEC` (the full per-layer table),
`--depth 1` and `--json`, on ResNet-1001 and on a 52,500-layer CIFAR ResNet (n=2500).
Target (the "whole family" issue): a summary takes about as long as a check (ratio near 1;
it was 14 for the big network when the table was a rich Table).

    python benchmarks/summary_speed.py [--repeat 5] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, print_rows, process_samples, ratios, row, write_json

TITLE = "`resdsl summary` against `resdsl check` (fresh processes)"


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = [sys.executable, "-m", "resdsl"]
    cases = {
        "preact_resnet1001 (3,336 layers)": ["preact_resnet1001"],
        "resnet1202 --set n=2500 (52,500 layers)": ["resnet1202", "--set", "n=2500"],
    }
    if args.quick:
        cases = {"preact_resnet1001 (3,336 layers)": ["preact_resnet1001"]}
    rows = []
    for title, spec in cases.items():
        runs = process_samples(
            {
                "check": [*py, "check", *spec],
                "summary": [*py, "summary", *spec],
                "summary --depth 1": [*py, "summary", *spec, "--depth", "1"],
                "summary --json": [*py, "summary", *spec, "--json"],
            },
            2 if args.quick else args.repeat,
        )
        check = statistics.median(runs["check"])
        print(title)
        for name, values in runs.items():
            seconds = statistics.median(values)
            print(f"  {name:<20} {seconds * 1e3:8.1f} ms   {seconds / check:5.2f}x check")
            if name != "check":
                rows.append(
                    row(
                        title,
                        f"`{name}` / `check`",
                        ratios(values, runs["check"]),
                        "about 1 (<= 1.3)",
                        lambda r: r <= 1.3,
                    )
                )
    print("\ntarget: summary / check about 1 (every variant)")
    print_rows(rows)
    write_json(args.json, "summary_speed", TITLE, rows)


if __name__ == "__main__":
    main()
