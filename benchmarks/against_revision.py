"""Is this tree as fast as an earlier revision? check, build and forward, side by side in one run.

A redesign must not cost users time. This benchmark extracts a git revision of this repository
(``git archive``, by default the last commit before the core redesign of issue #17) into a
temporary folder and runs the same commands against both trees, in fresh processes with
``PYTHONPATH`` pointing at each, interleaved so machine noise hits both alike:

- ``resdsl check`` of ResNet-1202 and ResNet-50 (what a user waits for, interpreter start
  included);
- ``resdsl build`` of ResNet-50 to a file;
- ``build_model("resnet50")`` in a warm process (spec to initialised module);
- the built ResNet-50's eval forward at batch 8, 224 x 224, in float32 (median of several calls).

Each tree's processes keep their compiled bytecode in a cache of their own under the temporary
folder, written in the warm-up round, as an installed package has its ``.pyc`` files: where
``PYTHONDONTWRITEBYTECODE`` is set (as on the benchmark machine), every command would otherwise
compile every module it imports from source, a cost no installed copy pays, and one that grows
with the size of the source rather than with what the code does. ``--compile-each-run`` measures
that way instead (the environment as it is).

    ratio = this tree's time / the revision's time      (target <= 1.05: no worse than before)

    python benchmarks/against_revision.py [--rev REV] [--repeat 5] [--quick] [--json PATH]
        [--compile-each-run]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, print_rows, ratios, row, samples, write_json

ROOT = Path(__file__).resolve().parent.parent
# the last commit before the layered packages and the ops table of issue #17
BASELINE = "0059b20"
TARGET = 1.05
TITLE = "this tree against an earlier revision: check, build and forward time"

# one measurement inside a fresh process: prints its seconds (the process's own start excluded)
BUILD_MODEL = """
import time, resdsl
start = time.perf_counter(); resdsl.build_model("resnet50"); print(time.perf_counter() - start)
"""
FORWARD = """
import statistics, sys, time, torch, resdsl
torch.manual_seed(0); torch.set_num_threads({threads})
model = resdsl.build_model("resnet50").eval(); x = torch.randn({batch}, 3, {size}, {size})
with torch.inference_mode():
    model(x)
    times = []
    for _ in range({calls}):
        start = time.perf_counter(); model(x); times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def extract(rev: str, into: Path) -> Path:
    """The tree of ``rev`` under ``into``; a clear exit where this is no git checkout or no such revision."""
    archive = into / "rev.tar"
    done = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"against_revision: cannot read revision {rev!r} of {ROOT}: {done.stderr.strip()}")
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


# where each tree's bytecode is cached (None: as the environment says, see the docstring)
CACHES: dict[Path, Path | None] = {}


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cache = CACHES.get(tree)
    if cache is not None:  # the standard library's and the packages' bytecode is cached there too
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _wall(cmd: list[str], tree: Path, cwd: Path) -> Callable[[], object]:
    """A command whose wall time is the measurement."""
    return lambda: subprocess.run(cmd, check=True, capture_output=True, env=_env(tree), cwd=cwd)


def _reported(code: str, tree: Path, cwd: Path) -> Callable[[], float]:
    """A fresh process that times its own work and prints the seconds."""

    def run() -> float:
        done = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=_env(tree), cwd=cwd
        )
        return float(done.stdout.split()[-1])

    return run


def wall_rows(trees: dict[str, Path], work: Path, repeat: int, quick: bool) -> list[dict[str, object]]:
    """check and build as a user runs them: the wall time of the whole command."""
    py = sys.executable
    cases = {
        "resdsl check resnet1202": ["check", "resnet1202"],
        "resdsl build resnet50": ["build", "resnet50", "-o", str(work / "out.py"), "--force"],
    }
    if not quick:
        cases["resdsl check resnet50"] = ["check", "resnet50"]
    rows = []
    for case, args in cases.items():
        fns = {side: _wall([py, "-m", "resdsl", *args], tree, work) for side, tree in trees.items()}
        times = samples(fns, repeat)
        rows.append(_row(case, "wall time, this tree / revision", times["this tree"], times["revision"]))
    return rows


def reported_rows(trees: dict[str, Path], work: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """build_model and forward, timed inside their processes (interpreter and torch import excluded)."""
    forward = FORWARD.format(threads=args.threads, batch=args.batch, size=args.size, calls=3 if args.quick else 10)
    cases = {"build_model('resnet50')": BUILD_MODEL, f"ResNet-50 eval forward, batch {args.batch}": forward}
    rows = []
    for case, code in cases.items():
        measured: dict[str, list[float]] = {side: [] for side in trees}
        fns = {side: _reported(code, tree, work) for side, tree in trees.items()}
        for fn in fns.values():  # a warm-up round, as for the wall times: it fills the bytecode caches
            fn()
        for i in range(args.repeat):
            for side in list(fns) if i % 2 == 0 else list(fns)[::-1]:
                measured[side].append(fns[side]())
        rows.append(_row(case, "seconds, this tree / revision", measured["this tree"], measured["revision"]))
    return rows


def _row(case: str, measure: str, ours: list[float], theirs: list[float]) -> dict[str, object]:
    detail = f"median {statistics.median(ours) * 1000:.0f} ms against {statistics.median(theirs) * 1000:.0f} ms"
    return row(case, measure, ratios(ours, theirs), f"<= {TARGET}", lambda r: r <= TARGET, detail)


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--rev", default=BASELINE, help=f"the revision to compare with (default {BASELINE})")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--compile-each-run",
        action="store_true",
        help="no bytecode cache of the benchmark's own: with PYTHONDONTWRITEBYTECODE set, every command compiles "
        "what it imports",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.batch, args.size = 2, 1, 64
    with tempfile.TemporaryDirectory(prefix="resdsl-rev-") as tmp:
        work = Path(tmp)
        trees = {"this tree": ROOT, "revision": extract(args.rev, work)}
        for side, tree in trees.items():
            CACHES[tree] = None if args.compile_each_run else work / "bytecode" / side.replace(" ", "_")
        rows = wall_rows(trees, work, args.repeat, args.quick) + reported_rows(trees, work, args)
    bytecode = "compiled on every run" if args.compile_each_run else "bytecode cached per tree"
    print(f"this tree ({ROOT}) against revision {args.rev} ({bytecode})")
    print_rows(rows)
    write_json(args.json, "against_revision", f"{TITLE} (revision {args.rev})", rows)


if __name__ == "__main__":
    main()
