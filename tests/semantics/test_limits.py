"""Limits: input that would exhaust time or memory is refused fast, with its own code, and
specs just under each default limit still check."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import resdsl
from resdsl.semantics.limits import Limits
from resdsl.syntax.parser import MAX_EXPR_DEPTH

DEFAULT = Limits()
T = TypeVar("T")


def cpu_seconds(*runs: Callable[[], object], repeats: int = 2) -> list[float]:
    """The CPU time of the fastest of ``repeats`` runs of each of ``runs``.

    CPU time, not wall time: other processes on a busy machine do not inflate it the way they
    inflate wall time (though a slower processor does). The runs are interleaved, so a burst of
    load on a shared machine slows all of them alike rather than the one it happens to fall on."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.process_time()
            run()
            best[i] = min(best[i], time.process_time() - start)
    return best


def cheap(
    run: Callable[[], T], seconds: float = 1.0, megabytes: int = 200, *, linear_from: Callable[[], object] | None = None
) -> T:
    """``run()`` takes little CPU and grows Python's memory by under ``megabytes`` (measured once
    under tracemalloc, which slows it down severalfold).

    A guard against unrolling or hanging, not a speed target. Without ``linear_from`` the bound is
    ``seconds`` of CPU: 1 s is over a hundred times what each guarded input needs here (a few
    milliseconds, measured on a busy two-core machine), so a slow processor does not fail it. An
    input whose work is real but must stay proportional to its size (a parse of 20,000 terms) is
    held instead against ``linear_from``, the same input ten times smaller, timed alongside and
    interleaved with it: at most ``LINEAR_BOUND`` times its CPU. The ratio does not depend on the
    processor; linear work gives about 10, quadratic about 100."""
    results: list[T] = []

    def kept() -> None:
        results.append(run())

    if linear_from is None:
        (elapsed,) = cpu_seconds(kept)
        assert elapsed < seconds, f"took {elapsed:.2f} s of CPU"
    else:
        elapsed, small = cpu_seconds(kept, linear_from, repeats=3)
        ratio = elapsed / max(small, 1e-3)
        assert ratio < LINEAR_BOUND, f"took {elapsed:.2f} s of CPU, {ratio:.0f} times the tenfold smaller input"
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < megabytes * 2**20, f"peak {peak / 2**20:.0f} MB"
    return results[0]


LINEAR_BOUND = 30  # 3x what linear work takes, a third of what quadratic work would


def test_cheap_holds_a_slow_machine_to_the_ratio_not_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a clock that each run advances by a set amount, as a processor of any speed would: a
    linear input held against its tenth passes at 2 s of CPU, a quadratic one fails at any speed."""
    clock = [0.0]
    monkeypatch.setattr(time, "process_time", lambda: clock[0])

    def work(seconds: float) -> Callable[[], float]:
        def run() -> float:
            clock[0] += seconds
            return seconds

        return run

    assert cheap(work(2.0), linear_from=work(0.2)) == 2.0
    with pytest.raises(AssertionError, match="100 times the tenfold smaller input"):
        cheap(work(0.2), linear_from=work(0.002))
    with pytest.raises(AssertionError, match=r"took 2\.00 s of CPU"):
        cheap(work(2.0))


def codes(result: resdsl.CheckResult) -> list[str]:
    return [d.code for d in result.diagnostics]


REPEAT = 'import "std/blocks.arch"\nnetwork n(n = {n}) {{\n input 3 x 32 x 32\n c = conv(16, k=3, p=1)\n' \
    " layer1 = stage(basic(16), repeat=n)\n}}\n"  # fmt: skip


def doubling(levels: int) -> str:
    """``levels`` blocks, each using the one before twice: 2**levels convs in a few lines."""
    text = "block b0(c) {\n conv1 = conv(c, k=3, p=1)\n}\n"
    text += "".join(f"block b{i}(c) {{\n a = b{i - 1}(c)\n b = b{i - 1}(c)\n}}\n" for i in range(1, levels + 1))
    return text + f"network n() {{\n input 3 x 8 x 8\n x = b{levels}(4)\n}}\n"


def test_a_billion_blocks_are_counted_not_unrolled() -> None:
    result = cheap(lambda: resdsl.check(REPEAT.format(n=10**9)))
    assert codes(result) == ["E601"]
    message = result.diagnostics[0].message
    assert "7,000,000,002 layers" in message and "limit is 100,000" in message
    assert "--max-layers" in (result.diagnostics[0].help or "")


def test_two_to_the_forty_layers_in_forty_lines() -> None:
    result = cheap(lambda: resdsl.check(doubling(40)))
    assert codes(result) == ["E601"]
    assert f"{2**40 + 1:,} layers" in result.diagnostics[0].message


@pytest.mark.parametrize("limit", [1_000, pytest.param(None, marks=pytest.mark.slow, id="default")])
def test_just_under_the_layer_limit_still_checks(limit: int | None) -> None:
    """At a limit of 1,000 layers, and at the default (100,000 layers take seconds to check: slow)."""
    options = {} if limit is None else {"max_layers": limit}
    # 1 input + 1 conv + 7 nodes per basic block (conv, bn, relu, conv, bn, residual, relu)
    repeat = ((limit or DEFAULT.max_layers) - 2) // 7
    result = resdsl.check(REPEAT.format(n=repeat), **options)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert len(result.networks[0].order) <= (limit or DEFAULT.max_layers)
    assert codes(resdsl.check(REPEAT.format(n=repeat + 1), **options)) == ["E601"]


def test_the_layer_limit_can_be_raised() -> None:
    assert resdsl.check(REPEAT.format(n=20), max_layers=100).ok is False
    assert resdsl.check(REPEAT.format(n=20), max_layers=200).ok


def sum_of_ones(terms: int) -> str:
    return "network n(a = " + "+".join(["1"] * terms) + ") {\n input 3 x 8 x 8\n relu\n}\n"


def test_a_twenty_thousand_term_expression_is_refused_not_a_recursion_error() -> None:
    spec, tenth = sum_of_ones(20_000), sum_of_ones(2_000)
    result = cheap(lambda: resdsl.check(spec), linear_from=lambda: resdsl.check(tenth))
    assert codes(result) == ["E602"]
    assert f"more than {MAX_EXPR_DEPTH} levels" in result.diagnostics[0].message


def test_expressions_just_under_the_depth_limit_evaluate() -> None:
    spec = "network n(a = " + "+".join(["1"] * MAX_EXPR_DEPTH) + ") {\n input 3 x 8 x 8\n c = conv(a)\n}\n"
    result = resdsl.check(spec)
    assert result.ok and result.networks[0].output_shape == (MAX_EXPR_DEPTH, 8, 8)


def chain(depth: int) -> str:
    text = "block b0(c) {\n conv1 = conv(c)\n}\n"
    text += "".join(f"block b{i}(c) {{\n a = b{i - 1}(c)\n}}\n" for i in range(1, depth))
    return text + f"network n() {{\n input 3 x 8 x 8\n x = b{depth - 1}(4)\n}}\n"


def test_blocks_nested_too_deep() -> None:
    result = cheap(lambda: resdsl.check(chain(500)))
    assert codes(result) == ["E602"] and "blocks nested more than 50" in result.diagnostics[0].message
    assert resdsl.check(chain(50)).ok


def test_imports_nested_too_deep(tmp_path: Path) -> None:
    for i in range(200):
        body = f'import "f{i + 1}.arch"\n' if i < 199 else ""
        (tmp_path / f"f{i}.arch").write_text(body + f"block k{i}() {{\n relu\n}}\n")
    result = cheap(lambda: resdsl.check(tmp_path / "f0.arch"), seconds=2)
    assert "E602" in codes(result) and "RecursionError" not in str(result.diagnostics)


def test_a_network_with_too_many_parameters_is_refused_before_any_allocation() -> None:
    spec = "network n() {\n input 3 x 8 x 8\n a = conv(100000000)\n b = conv(100000000)\n}\n"
    result = cheap(lambda: resdsl.check(spec))
    assert codes(result) == ["E603"]
    assert "10,000,000,300,000,000 parameters" in result.diagnostics[0].message
    with pytest.raises(resdsl.ResdslError) as caught:
        resdsl.build_model(spec)
    assert caught.value.code == "E603"


def test_just_under_the_parameter_limit_still_checks() -> None:
    # 3 -> 40,000 -> 49,000 channels of 1x1 convs: 1.96e9 parameters, nothing allocated
    spec = "network n() {\n input 3 x 1 x 1\n a = conv(40000)\n b = conv(49000)\n}\n"
    result = resdsl.check(spec)
    assert result.ok and result.networks[0].num_params == 3 * 40_000 + 40_000 * 49_000 < DEFAULT.max_params
    assert resdsl.check(spec, max_params=10**9).ok is False


def test_too_much_activation_memory_is_refused() -> None:
    result = cheap(lambda: resdsl.check("network n() {\n input 3 x 1000000 x 1000000\n a = conv(64, k=3, p=1)\n}\n"))
    assert codes(result) == ["E604"] and "--max-activation-gb" in (result.diagnostics[0].help or "")


def test_just_under_the_activation_limit_still_checks() -> None:
    spec = "network n() {\n input 1 x 90000 x 90000\n relu\n}\n"  # two 30 GiB maps
    assert resdsl.check(spec).ok
    assert resdsl.check(spec, max_activation_gb=32).ok is False


def test_huge_number_literals() -> None:
    result = cheap(lambda: resdsl.check("network n() {\n input 3 x 8 x 8\n c = conv(" + "9" * 5000 + ")\n}\n"))
    assert codes(result) == ["E605"]
    shape = resdsl.check("network n() {\n input 3 x " + "9" * 5000 + " x 8\n relu\n}\n")
    assert codes(shape) == ["E605"]


POSITIONAL = (
    'import "std/blocks.arch"\nnetwork n(n = {n}, rate = 0.1) {{\n input 3 x 32 x 32\n c = conv(16, k=3, p=1)\n'
    " layer1 = stage(basic(16), repeat=n)\n"
    " layer2 = stage(conv(16, k=3, p=1, bias=net_index * rate / net_count > 0.5), repeat=n)\n}}\n"
)


def test_a_huge_stage_whose_blocks_read_their_position_is_refused_at_once() -> None:
    """Blocks that read ``net_index`` (a drop-path schedule) cannot stand for each other, so the
    counter walks them; each still holds a module, so 10**30 of them are over the limit before
    the counter walks 10**5 (the fuzzer found convnext_pico with depth 10**30 taking seconds)."""
    result = cheap(lambda: resdsl.check(POSITIONAL.format(n=10**30)))
    assert codes(result) == ["E601"]
    assert "more than 100,000 layers" in result.diagnostics[0].message
