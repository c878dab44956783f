"""The package's layering holds: import-linter's contracts (pyproject.toml) and no import cycle.

Function-local imports count: grimp reads every import statement of every module, so a cycle
hidden inside a function body is found too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def _graph() -> nx.DiGraph:
    imports = grimp.build_graph("resdsl", cache_dir=None)
    graph = nx.DiGraph()
    for module in imports.modules:
        graph.add_node(module)
        for imported in imports.find_modules_directly_imported_by(module):
            graph.add_edge(module, imported)
    return graph


def test_no_import_cycles() -> None:
    cycles = [c for c in nx.simple_cycles(_graph()) if len(c) > 1]
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_composite_op_has_a_realiser() -> None:
    from resdsl.checks.realise import REALISERS
    from resdsl.ops import OPS

    assert {name for name, op in OPS.items() if op.composite} == set(REALISERS)


# tests of the whole project rather than of one package: they stay at the top of tests/
PROJECT_TESTS = {
    "test_benchmarks",
    "test_conftest",
    "test_family",
    "test_family_sizes",
    "test_layers",
    "test_packaging",
    "test_readme",
}


def test_the_tests_mirror_the_packages() -> None:
    """tests/<package path>/test_*.py for resdsl/<package path>/ (tests/backends/codegen/ for
    resdsl/backends/codegen/), so a package's tests are found where the package is."""
    tests = ROOT / "tests"
    misplaced = []
    for path in sorted(tests.rglob("test_*.py")):
        folder = path.parent.relative_to(tests)
        if folder.parts and folder.parts[0] in ("fixtures", "golden", "broken", "fuzz_regressions"):
            continue
        if folder == Path("."):
            if path.stem not in PROJECT_TESTS:
                misplaced.append(f"{path.name}: a package's tests go in its folder")
        elif not (ROOT / "resdsl" / folder / "__init__.py").is_file():
            misplaced.append(f"{path.relative_to(tests)}: resdsl/{folder.as_posix()}/ is no package")
        elif not (path.parent / "__init__.py").is_file():
            misplaced.append(f"{path.relative_to(tests)}: its folder needs an __init__.py")
    assert misplaced == []
