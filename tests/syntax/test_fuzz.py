"""Fuzzing the whole front end: every input ends in a result or in diagnostics inside the file.

Two fixed-seed streams of cases (see tests/fuzz_gen.py): grammar-aware random programs, and
byte/token/line/encoding/layout/truncation mutations of every shipped spec. Each case runs in a
worker process under a hard time limit (a hang fails the case, it does not stall the suite)
and a memory limit, and is judged by ``tests.fuzz_gen.judge``: ``resdsl.check`` returns,
every diagnostic has a documented code and lies inside its file, nothing mentions an internal
error, and now and then ``resdsl check`` on the command line exits 0 or 1.

Knobs (environment variables):
  RESDSL_FUZZ_CASES         total cases, split between the two streams (default 3000)
  RESDSL_FUZZ_SEED          the seed (default tests.fuzz_gen.DEFAULT_SEED)
  RESDSL_FUZZ_WORKERS       worker processes (default: 2, or 1 on a 1-CPU machine)
  RESDSL_FUZZ_TIMEOUT       seconds one case may take (default 5)
  RESDSL_FUZZ_MAX_FAILURES  stop feeding cases after this many have failed (default 25, 0: never)
  RESDSL_FUZZ_SAVE          folder to save failing cases in (default: a temporary folder)

A failing case is reported with its class, its index and the folder it was saved in; rebuild it
with ``python -m tests.fuzz_gen show KIND INDEX``. tests/fuzz_regressions/ holds one minimal
spec per failure class found so far; each is judged by the same oracle.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import TESTS
from tests.fuzz_gen import DEFAULT_SEED, Case, Pool, Verdict, cases, save_case

CASES = int(os.environ.get("RESDSL_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("RESDSL_FUZZ_SEED", str(DEFAULT_SEED)))
WORKERS = int(os.environ.get("RESDSL_FUZZ_WORKERS", str(min(2, os.cpu_count() or 1))))
TIMEOUT = float(os.environ.get("RESDSL_FUZZ_TIMEOUT", "5"))
MAX_FAILURES = int(os.environ.get("RESDSL_FUZZ_MAX_FAILURES", "25"))
REGRESSIONS = sorted((TESTS / "fuzz_regressions").glob("*.arch"))


@dataclass
class Tally:
    """Counts for one stream, printed in pytest's terminal summary."""

    kind: str
    planned: int
    outcomes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "diagnostics": 0, "failed": 0})
    seconds: float = 0.0
    cpu: float = 0.0
    codes: set[str] = field(default_factory=set)
    slowest: tuple[float, str] = (0.0, "")

    def line(self) -> str:
        done = sum(self.outcomes.values())
        o = self.outcomes
        text = (
            f"fuzz: {done} {self.kind} cases, {o['ok']} ok, {o['diagnostics']} with diagnostics, {o['failed']} failed"
            f", {len(self.codes)} distinct codes ({self.seconds:.1f} s wall, {self.cpu:.1f} s worker CPU,"
            f" {WORKERS} workers, seed {SEED}; slowest case {self.slowest[0]:.2f} s)"
        )
        return text if done == self.planned else f"{text}; stopped early, {self.planned} planned"


class _Reporter:
    """A plugin registered at run time, so the counts show in the terminal summary under -q."""

    def __init__(self) -> None:
        self.tallies: list[Tally] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.tallies:
            return
        terminalreporter.write_sep("-", "fuzz")
        for tally in self.tallies:
            terminalreporter.write_line(tally.line())
        total = Tally("", 0)
        for tally in self.tallies:
            for k, n in tally.outcomes.items():
                total.outcomes[k] += n
        o = total.outcomes
        terminalreporter.write_line(
            f"fuzz: {sum(o.values())} cases, {o['ok']} ok, {o['diagnostics']} with diagnostics, {o['failed']} failed"
        )


@pytest.fixture(scope="module")
def reporter(request: pytest.FixtureRequest) -> _Reporter:
    plugin = _Reporter()
    request.config.pluginmanager.register(plugin, f"resdsl-fuzz-{id(plugin)}")
    return plugin


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with Pool(WORKERS, TIMEOUT) as p:
        yield p


def _save_folder() -> Path:
    folder = os.environ.get("RESDSL_FUZZ_SAVE")
    return Path(folder) if folder else Path(tempfile.mkdtemp(prefix="resdsl-fuzz-failures-"))


def _report(failures: list[tuple[Case, Verdict]]) -> str:
    """Failures grouped by class: the first case of each, with where it was saved."""
    folder = _save_folder()
    classes: dict[str, list[tuple[Case, str]]] = {}
    for case, verdict in failures:
        for sig, detail in verdict.problems:
            classes.setdefault(sig, []).append((case, detail))
    out = [f"{len(failures)} failing cases in {len(classes)} classes (saved under {folder}):"]
    for sig, hits in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        case, detail = hits[0]
        saved = save_case(case, folder)
        out.append(f"- {sig}  [{len(hits)} cases]")
        out.append(f"    first: {case.name} ({case.label[:160]}) -> {saved}")
        out.append(f"    {detail[:400]}")
    return "\n".join(out)


def _fuzz(kind: str, count: int, pool: Pool, reporter: _Reporter) -> None:
    tally = Tally(kind, count)
    reporter.tallies.append(tally)
    failures: list[tuple[Case, Verdict]] = []
    start = time.monotonic()
    stop = (lambda: len(failures) >= MAX_FAILURES) if MAX_FAILURES > 0 else (lambda: False)
    for case, verdict in pool.run(cases(kind, 0, count, SEED), stop=stop):
        tally.outcomes[verdict.outcome] += 1
        tally.slowest = max(tally.slowest, (verdict.seconds, case.name))
        tally.cpu += verdict.cpu
        tally.codes |= verdict.codes
        if verdict.problems:
            failures.append((case, verdict))
    tally.seconds = time.monotonic() - start
    if failures:
        pytest.fail(_report(failures), pytrace=False)


@pytest.mark.slow
def test_generated_programs(pool: Pool, reporter: _Reporter) -> None:
    _fuzz("generated", CASES - CASES // 2, pool, reporter)


@pytest.mark.slow
def test_mutated_shipped_specs(pool: Pool, reporter: _Reporter) -> None:
    _fuzz("mutated", CASES // 2, pool, reporter)


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_fuzz_regression(path: Path, pool: Pool) -> None:
    """A minimal spec for a failure class the fuzzer found, judged by the same oracle (and CLI).

    A file that says ``# expect: clean`` must also check without errors (as the layout-only
    mutations of clean specs must)."""
    rel = f"specs/fz_{path.name}"  # next to the shipped specs, as generated programs are
    data = path.read_bytes()
    case = Case("regression", 0, path.name, {rel: data}, [rel], cli=True)
    if b"# expect: clean" in data:
        case.must_stay_clean = "the regression spec says '# expect: clean'"
    ((_, verdict),) = pool.run([case])
    if verdict.problems:
        pytest.fail("\n".join(f"{sig}: {detail}" for sig, detail in verdict.problems), pytrace=False)
