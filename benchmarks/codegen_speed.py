"""What does generating code cost on top of checking? ResNet-1202 and ResNet-152, one run.

Whole commands, as a user runs them (fresh processes, median of several):
`resdsl check SPEC` against `resdsl build SPEC -o FILE`, and in-process: compile (parse,
elaborate, check) against generating code from the compiled network. Target: generation adds less than 50% to the
check time.

    python benchmarks/codegen_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, processes

import resdsl
from resdsl.backends.codegen import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="resdsl-codegen-"))
    py = [sys.executable, "-m", "resdsl"]
    print(f"{'spec':<12} {'check':>10} {'build':>10} {'added':>8}   (whole commands)")
    for spec in ("resnet1202", "resnet152"):
        times = processes(
            {
                "check": [*py, "check", spec],
                "build": [*py, "build", spec, "-o", str(out / f"{spec}.py"), "--force"],
            },
            args.repeat,
        )
        check, build = times["check"], times["build"]
        print(f"{spec:<12} {check * 1e3:7.1f} ms {build * 1e3:7.1f} ms {(build - check) / check:7.0%}")
    print()
    print(f"{'spec':<12} {'compile':>10} {'generate':>10} {'added':>8}   (in process, warm; generate from the IR)")
    for spec in ("resnet1202", "resnet152"):
        net = resdsl.compile(spec)
        times = interleaved(
            {"compile": lambda s=spec: resdsl.compile(s), "generate": lambda n=net, s=spec: generate(n, spec_arg=s)},
            args.repeat * 2,
        )
        added = times["generate"] / times["compile"]
        print(f"{spec:<12} {times['compile'] * 1e3:7.1f} ms {times['generate'] * 1e3:7.1f} ms {added:7.0%}")
    print("\ntarget: generation adds less than 50% to the check time")


if __name__ == "__main__":
    main()
