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
