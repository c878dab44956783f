"""What does generating code cost on top of checking? ResNet-1202 and ResNet-152, one run.

Whole commands, as a user runs them (fresh processes, median of several):
`resdsl check SPEC` against `resdsl build SPEC -o FILE`, and in-process: compile (parse,
elaborate, check) against generating code from the compiled network. Target: generation adds less than 50% to the
check time.

    python benchmarks/codegen_speed.py [--repeat 5] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, print_rows, process_samples, ratios, row, samples, write_json

import resdsl
from resdsl.backends.codegen import generate
from resdsl.syntax.loader import parse_file

TITLE = "`resdsl build` against `resdsl check`"


def first_compile(spec: str) -> object:
    """``resdsl.compile`` as a new process runs it: parsing included (the loader caches parsed
    files, which would leave only elaboration and checking to compare generation against)."""
    parse_file.cache_clear()
    return resdsl.compile(spec)


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    specs = ("resnet152",) if args.quick else ("resnet1202", "resnet152")
    out = Path(tempfile.mkdtemp(prefix="resdsl-codegen-"))
    py = [sys.executable, "-m", "resdsl"]
    rows = []
    print(f"{'spec':<12} {'check':>10} {'build':>10} {'added':>8}   (whole commands)")
    for spec in specs:
        runs = process_samples(
            {
                "check": [*py, "check", spec],
                "build": [*py, "build", spec, "-o", str(out / f"{spec}.py"), "--force"],
            },
            repeat,
        )
        check, build = statistics.median(runs["check"]), statistics.median(runs["build"])
        print(f"{spec:<12} {check * 1e3:7.1f} ms {build * 1e3:7.1f} ms {(build - check) / check:7.0%}")
        rows.append(
            row(
                f"{spec}, whole commands",
                "`build` / `check`",
                ratios(runs["build"], runs["check"]),
                "< 1.5",
                lambda r: r < 1.5,
            )
        )
    print()
    print(f"{'spec':<12} {'compile':>10} {'generate':>10} {'added':>8}   (in process; generate from the IR)")
    for spec in specs:
        net = resdsl.compile(spec)
        runs = samples(
            {"compile": lambda s=spec: first_compile(s), "generate": lambda n=net, s=spec: generate(n, spec_arg=s)},
            repeat * 2,
        )
        compile_time, generate_time = statistics.median(runs["compile"]), statistics.median(runs["generate"])
        print(
            f"{spec:<12} {compile_time * 1e3:7.1f} ms {generate_time * 1e3:7.1f} ms {generate_time / compile_time:7.0%}"
        )
        rows.append(
            row(
                f"{spec}, in process",
                "generate / compile",
                ratios(runs["generate"], runs["compile"]),
                "< 0.5",
                lambda r: r < 0.5,
            )
        )
    print("\ntarget: generation adds less than 50% to the check time")
    print_rows(rows)
    write_json(args.json, "codegen_speed", TITLE, rows)


if __name__ == "__main__":
    main()
