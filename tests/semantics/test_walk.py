"""One walk of the language (resdsl/semantics/walk.py, its stage rule in stage_rule.py): the placer
and the layer counter read bodies, blocks, sequential groups, gates and stages by the same rules,
so the counter's figures are the placer's, and a change to a rule (the stage rule first) reaches both at once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import resdsl
from resdsl.ir import Network, ScopeKind
from resdsl.semantics import stage_rule
from resdsl.semantics.count import Count, LayerCounter
from resdsl.semantics.evaluate import first_block
from resdsl.semantics.values import SHORTCUTS, LayerCall
from resdsl.syntax.loader import Program
from tests.conftest import shipped_spec_files
from tests.semantics.test_instance_values import DENSE, DOUBLING, FLAT, INVERTED, NESTED

# a network using every way of making layers: sequential groups, gates, stages nested in the
# blocks of stages, instance values in nested stages, first blocks that differ, concat
EVERYTHING = """
import "std/blocks.arch"

block unit(c, stride = 1, drop = 0.0, shortcut = projection) {
    conv1 = conv(c, k=3, s=stride, p=1)
    bn1   = batchnorm()
    relu
    drop_path(drop)
    residual(shortcut)
}

block group(c, n, stride = 1, shortcut = projection) {
    blocks = stage(unit(c, drop=0.2 * net_index / net_count, shortcut=shortcut), repeat=n, stride=stride)
    se     = gate(sequential(global_avgpool(), conv(c // 4, k=1), relu, conv(c, k=1), sigmoid()))
    tail   = sequential(conv(c, k=1), batchnorm())
}

block widen(c, stride = 1, shortcut = projection) {
    conv1 = conv(c, k=1, s=stride)
    mixed = stage(unit(c, drop=0.1 * index), repeat=2)
    gate(sigmoid)
}

network everything(depths = [1, 2, 3], num_classes = 10) {
    input 3 x 32 x 32
    stem   = sequential(conv(16, k=3, p=1), batchnorm(), relu)
    layer1 = stage(group(16 * (index + 1), n=depths[index]), repeat=3, stride=2)
    layer2 = stage(widen(64, stride=1), repeat=3, stride=2)
    layer3 = stage(basic(64), repeat=4)
    layer4 = stage(bottleneck(32, stride=1), repeat=1)
    pool   = global_avgpool()
    fc     = linear(num_classes)
}
"""


def _placed_stage_blocks(network: Network) -> dict[int, int]:
    """The stage blocks the placer placed, per depth of stage nesting (what net_count counts)."""
    found: dict[int, int] = {}
    for scope in network.root.scopes():
        if scope.kind == ScopeKind.STAGE:
            found[scope.depth] = found.get(scope.depth, 0) + sum(1 for s in scope.items if hasattr(s, "items"))
    return found


def _count(network: Network, program: Program) -> Count:
    definitions = program.definitions(network.definition.span.file)
    return LayerCounter(program).network(network.definition.body, network.params, definitions)


def _networks(spec: str | Path, tmp_path: Path | None = None) -> list[tuple[Network, Program]]:
    if tmp_path is not None:
        path = tmp_path / "spec.arch"
        path.write_text(str(spec))
        spec = path
    result = resdsl.check(spec)
    assert result.ok, [str(d) for d in result.errors]
    assert result.program is not None
    return [(n, result.program) for n in result.networks]


def _agree(network: Network, program: Program) -> None:
    counted = _count(network, program)
    assert counted.unsure is None and not counted.partial
    assert counted.nodes == len(network.order), network.name
    assert counted.stage_blocks == _placed_stage_blocks(network), network.name


@pytest.mark.parametrize("spec", shipped_spec_files(), ids=lambda p: p.stem)
def test_the_counter_counts_what_the_placer_places_in_every_shipped_spec(spec: Path) -> None:
    """Exactly, except where blocks read their input channels (MobileNet, EfficientNet, RegNet
    pass in_channels to their blocks): those are sized while placing, and the counter says so."""
    for network, program in _networks(spec):
        reads = {name for s in network.root.scopes() for name in s.instance_names}
        if "in_channels" in reads:
            counted = _count(network, program)
            assert counted.unsure == 1 and counted.nodes < len(network.order)
            continue
        _agree(network, program)


@pytest.mark.parametrize("text", [EVERYTHING, FLAT, NESTED], ids=["everything", "flat", "nested"])
def test_the_counter_counts_what_the_placer_places_with_instance_values(text: str, tmp_path: Path) -> None:
    networks = _networks(text, tmp_path)
    assert networks
    for network, program in networks:
        _agree(network, program)


@pytest.mark.parametrize("text", [DENSE, INVERTED, DOUBLING], ids=["dense", "inverted", "doubling"])
def test_in_channels_leaves_the_deeper_totals_unsure_but_the_shallower_exact(text: str, tmp_path: Path) -> None:
    """Block arguments that read in_channels are sized while placing: the counter says which
    depths it cannot total, and the totals above them are the placer's."""
    for network, program in _networks(text, tmp_path):
        counted = _count(network, program)
        assert counted.unsure is not None
        placed = _placed_stage_blocks(network)
        assert {d: n for d, n in counted.stage_blocks.items() if d < counted.unsure} == {
            d: n for d, n in placed.items() if d < counted.unsure
        }


def test_the_stage_rule_is_one_function_both_walkers_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the stage rule in its one place (here: every stage's first block becomes a plain
    unit, shortcut none): the placer places other layers, and the counter counts exactly those."""
    [(before, _)] = _networks("resnet50")

    def first_block_plain(stage: LayerCall, block: LayerCall) -> LayerCall:
        first = first_block(stage, block)
        return replace(first, args={**first.args, "shortcut": SHORTCUTS["none"]})

    monkeypatch.setattr(stage_rule, "first_block", first_block_plain)
    [(after, program)] = _networks("resnet50")
    assert len(after.order) == len(before.order) - 4  # layer1.0 ... layer4.0 add nothing
    assert not any(layer.path.endswith(".0.downsample") for layer in after.layers())
    _agree(after, program)


def test_a_failing_statement_is_one_node_for_both(tmp_path: Path) -> None:
    """Statements that fail count as their error node, also where a stage sets a stride its block lacks."""
    text = (
        "block plain(c) {\n    conv1 = conv(c, k=3, p=1)\n    relu\n}\n"
        "network n() {\n    input 3 x 8 x 8\n    layer1 = stage(plain(8), repeat=3, stride=2)\n    relu\n}\n"
    )
    path = tmp_path / "spec.arch"
    path.write_text(text)
    result = resdsl.check(path)
    assert [d.code for d in result.errors] == ["E203"]
    [network] = result.networks
    assert result.program is not None
    assert _count(network, result.program).nodes == len(network.order) == 3  # input, error, relu


def test_anonymous_gates_and_groups_are_named_after_their_kind(tmp_path: Path) -> None:
    """Regression: an anonymous gate(...) or sequential(...) statement raised AttributeError
    (their layer call has no target to be named after)."""
    text = "network n() {\n    input 3 x 8 x 8\n    conv(8, k=1)\n    gate(sigmoid)\n"
    text += "    sequential(relu, conv(8, k=1))\n}\n"
    [(network, program)] = _networks(text, tmp_path)
    assert [layer.path for layer in network.layers()] == [
        "",
        "conv",
        "gate.0",
        "gate_mul",
        "sequential.0",
        "sequential.1",
    ]
    _agree(network, program)


def test_a_merge_without_its_tap_reads_the_block_input(tmp_path: Path) -> None:
    """radix_combine(2) without splits= weighs the block input, as concat() reads it; with
    splits=act0 it weighs act0's output (what the placer connects as its other operand)."""
    spec = tmp_path / "taps.arch"
    spec.write_text(
        "block attend(c) {\n    pool = global_avgpool()\n    fc = conv(c * 2, k=1)\n    radix_softmax(2)\n"
        "    radix_combine(2)\n}\n\n"
        "block splat(c) {\n    conv = conv(c * 2, k=3, p=1)\n    act0 = relu\n    radix_sum(2)\n"
        "    pool = global_avgpool()\n    fc = conv(c * 2, k=1)\n    radix_softmax(2)\n"
        "    radix_combine(2, splits=act0)\n}\n\n"
        "network n() {\n    input 3 x 8 x 8\n    stem = conv(8, k=3, p=1)\n    a = attend(4)\n    s = splat(4)\n}\n"
    )
    net = resdsl.compile(str(spec))
    layers = {layer.path: layer for layer in net.layers()}
    assert [net.layer(n).path for n in net.inputs(layers["a.radix_combine"].id)] == ["a.radix_softmax", "stem"]
    assert [net.layer(n).path for n in net.inputs(layers["s.radix_combine"].id)] == ["s.radix_softmax", "s.act0"]
    assert layers["a.radix_combine"].shape == (4, 8, 8) and layers["s.radix_combine"].shape == (4, 8, 8)
