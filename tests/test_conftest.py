"""The suite itself: the shipped-network listing that tests parametrise over (read without
elaborating, yet the same as ``resdsl list``'s), the ``slow`` marks, and a collection that stays
cheap and leaves the slow tests to ``pytest -m slow``."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from resdsl.tools.catalog import catalog
from tests.conftest import HEAVY, ROOT, shipped_networks, slow_if_heavy


def test_shipped_networks_are_the_catalogs_names_files_and_inputs() -> None:
    entries, failed = catalog()
    assert not failed
    assert [(n, str(p.resolve()), s) for n, p, s in shipped_networks()] == [(e.name, e.path, e.input) for e in entries]
    assert HEAVY <= {name for name, _, _ in shipped_networks()}  # no stale name


def test_slow_if_heavy_marks_only_the_heavy_networks() -> None:
    values = slow_if_heavy(["resnet18", "resnet152", ("resnet1202", 3), ("resnet20", 1)])
    assert values[0] == "resnet18" and values[3] == ("resnet20", 1)
    for param, args in [(values[1], ("resnet152",)), (values[2], ("resnet1202", 3))]:
        assert param.values == args and [m.name for m in param.marks] == ["slow"]


def test_the_two_halves_share_the_heavy_networks_out() -> None:
    """``half=0`` and ``half=1`` take disjoint halves of HEAVY that together make all of it, and
    leave the quick networks to both."""
    names = ["resnet18", *sorted(HEAVY)]
    halves = [slow_if_heavy(names, half=h) for h in (0, 1)]
    taken = [{p.values[0] for p in half if not isinstance(p, str)} for half in halves]
    assert all(half[0] == "resnet18" for half in halves)
    assert not taken[0] & taken[1] and taken[0] | taken[1] == HEAVY
    assert abs(len(taken[0]) - len(taken[1])) <= 1


# Collection in a process where elaborating any network raises: the test modules may list and parse
# the shipped specs, never check them. One collection of every test (`-m ""` lifts the addopts'
# `not slow`) prints each test's id after "quick" or "slow", which is what plain `pytest` and
# `pytest -m slow` would take.
COLLECT = textwrap.dedent(
    """
    import sys
    import pytest
    from resdsl.semantics.elaborate import Elaborator

    def refuse(*args, **kwargs):
        raise AssertionError("a network was elaborated during collection")

    class Listing:
        def pytest_collection_finish(self, session):
            for item in session.items:
                print("slow" if item.get_closest_marker("slow") else "quick", item.nodeid)

    Elaborator.__init__ = refuse
    sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", ""], plugins=[Listing()]))
    """
)


@pytest.mark.slow
def test_collection_elaborates_nothing_and_leaves_the_slow_tests_out() -> None:
    done = subprocess.run([sys.executable, "-c", COLLECT], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ tests collected in [\d.]+s", summary), summary
    listed = [line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("quick ", "slow "))]
    quick = {test for kind, test in listed if kind == "quick"}
    slow = {test for kind, test in listed if kind == "slow"}
    assert len(quick) > 2000 and len(slow) > 300
    for test in (
        "tests/syntax/test_fuzz.py::test_generated_programs",
        "tests/backends/torch/test_backend_torch.py::test_ddp_two_processes_keep_parameters_identical",
        "tests/weights/test_inference.py::test_inference_matches_eval_training[resnet152]",
        "tests/semantics/test_limits.py::test_just_under_the_layer_limit_still_checks[default]",
    ):
        assert test not in quick and test in slow, test
    assert "tests/weights/test_inference.py::test_inference_matches_eval_training[resnet50]" in quick
