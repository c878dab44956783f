"""The one description of a forward pass (resdsl.ir.forward): its steps, its renderer, the
feature/checkpoint plan applied to steps, and a scope of the IR as build_model runs it; and
that both back ends write every forward they make through that renderer."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, seed, settings

import resdsl
from resdsl.ir import Layer, Network, Scope
from resdsl.ir import forward as ir_forward
from resdsl.ir import steps as ir_steps
from resdsl.ir.features import Plan, plan
from resdsl.ir.forward import render, scope_forward, step_lines
from resdsl.ir.planning import Segment, group_runs, planned
from resdsl.ir.steps import (
    Assign,
    Call,
    Capture,
    CheckpointGroup,
    Choice,
    Flatten,
    Forward,
    NewFeatures,
    Present,
    Residual,
    Save,
    Update,
)
from tests.conftest import shipped_spec_files, slow_if_heavy
from tests.random_nets import programs

ROOT = Path(__file__).resolve().parents[2]

# -- the renderer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "lines"),
    [
        (Call("x", "conv1", "x"), ["x = self.conv1(x)"]),
        (Call("out", "bn1", "out", "c x H x W"), ["out = self.bn1(out)  # c x H x W"]),
        (Call("x", "layer1", "x", checkpointed="self.layer1"), ["x = self.layer1(x)"]),  # outside a group: plain
        (Flatten("x", "s0"), ["x = torch.flatten(s0, 1)"]),
        (Save("s0", "x"), ["s0 = x"]),
        (Assign("x", "s1 * x"), ["x = s1 * x"]),
        (Update("x[:, :64]", "+", "s0[:, :, ::2, ::2]"), ["x[:, :64] += s0[:, :, ::2, ::2]"]),
        (NewFeatures("features"), ["features: dict[str, Tensor] = {}"]),
        (Capture("features", "layer1", "x.clone()"), ['features["layer1"] = x.clone()']),
        (Residual("out", "x"), ["identity = x", "out = out + identity"]),
        (Residual("x", "s0", "s0", "downsample", inplace=True), ["identity = self.downsample(s0)", "x += identity"]),
        (
            Residual("out", "x", "x", "downsample", optional=True, guard="add_shortcut"),
            [
                "if self.add_shortcut:",
                "    identity = x",
                "    if self.downsample is not None:",
                "        identity = self.downsample(x)",
                "    out = out + identity",
            ],
        ),
        (Residual("x", "s0", operator="*", inplace=True), ["identity = s0", "x *= identity"]),
        (
            Choice("choose_mid", (Assign("out", "out * self.mid"),), (Call("out", "mid", "out"),)),
            ["if self.choose_mid:", "    out = out * self.mid", "else:", "    out = self.mid(out)"],
        ),
        (Present("down", (Call("out", "down", "out"),)), ["if self.down is not None:", "    out = self.down(out)"]),
        (
            Present("down", (Call("out", "down", "out"),), (Save("out", "x"),)),
            ["if self.down is not None:", "    out = self.down(out)", "else:", "    out = x"],
        ),
    ],
)
def test_each_step_renders_as_its_lines(step: ir_steps.Step, lines: list[str]) -> None:
    assert step_lines(step) == lines


def test_a_checkpoint_group_writes_both_branches() -> None:
    group = CheckpointGroup(
        (Call("x", "layer1", "x", checkpointed="self.layer1"), Save("s0", "x"), Call("x", "b", "x", "c", "[self.b]"))
    )
    assert step_lines(group) == [
        "if self.grad_checkpointing and not torch.jit.is_scripting():",
        "    x = checkpoint_seq(self.layer1, x, self.checkpoint_reentrant)",
        "    s0 = x",
        "    x = checkpoint_seq([self.b], x, self.checkpoint_reentrant)",
        "else:",
        "    x = self.layer1(x)",
        "    s0 = x",
        "    x = self.b(x)  # c",
    ]


def test_render_writes_the_whole_function_nesting_by_four_spaces() -> None:
    inner = Choice("flag", (Call("out", "a", "out"),), (Residual("out", "x", guard="add"),))
    source = render(Forward((Present("p", (inner,)), Flatten("out", "out")), "Tensor", "out"))
    assert source == (
        "def forward(self, x: Tensor) -> Tensor:\n"
        "    if self.p is not None:\n"
        "        if self.flag:\n"
        "            out = self.a(out)\n"
        "        else:\n"
        "            if self.add:\n"
        "                identity = x\n"
        "                out = out + identity\n"
        "    out = torch.flatten(out, 1)\n"
        "    return out\n"
    )
    compile(source, "<test>", "exec")  # valid Python


def test_steps_are_frozen_and_compare_by_value() -> None:
    step = Call("x", "conv1", "x")
    with pytest.raises(AttributeError):
        step.module = "conv2"  # type: ignore[misc]
    assert step == Call("x", "conv1", "x") and hash(step) == hash(Call("x", "conv1", "x"))


# -- feature outputs and checkpointing -----------------------------------------------------


def test_group_runs() -> None:
    kinds = ["other", "checkpoint", "passive", "checkpoint", "passive", "other", "checkpoint"]
    assert group_runs(kinds) == [(1, 4), (6, 7)]


def _segments(network: Network) -> tuple[list[ir_steps.Step], list[Segment]]:
    forward = scope_forward(network, network.root)
    steps = list(forward.steps)
    segments, at = [], 0
    for item in network.root.items:  # the network bodies here call one step per item
        n = 2 if isinstance(item, Layer) and ir_steps.flattens(item) else 1
        segments.append(Segment.of(item, steps[at : at + n]))
        at += n
    assert at == len(steps)
    return [], segments


def test_planned_without_a_plan_is_the_steps_in_order() -> None:
    network = resdsl.compile("resnet20")
    head, segments = _segments(network)
    forward = planned(head, segments, None, "x")
    assert forward == scope_forward(network, network.root)
    assert forward.returns == "Tensor" and forward.result == "x"
    assert [s.module for s in forward.steps if isinstance(s, Call)] == [
        "conv1",
        "bn1",
        "relu",
        "layer1",
        "layer2",
        "layer3",
        "avgpool",
        "fc",
    ]


def test_planned_captures_features_and_groups_checkpointed_stages() -> None:
    network = resdsl.compile("resnet20")
    wanted = plan(network, ["bn1", "layer1", "layer2"], ["layer1", "layer2"])
    head, segments = _segments(wanted.network)
    forward = planned(head, segments, wanted, "x", "feats")
    assert forward.returns == "dict[str, Tensor]" and forward.result == "feats"
    first, *rest = forward.steps
    assert first == NewFeatures("feats")
    # bn1's output is overwritten by the in-place relu after it: the feature keeps a copy
    assert rest[:4] == [
        Call("x", "conv1", "x"),
        Call("x", "bn1", "x"),
        Capture("feats", "bn1", "x.clone()"),
        Call("x", "relu", "x"),
    ]
    # layer1 and layer2 (with the capture between them) run under one checkpointing branch
    assert rest[4:] == [
        CheckpointGroup(
            (
                Call("x", "layer1", "x", checkpointed="self.layer1"),
                Capture("feats", "layer1", "x"),
                Call("x", "layer2", "x", checkpointed="self.layer2"),
            )
        ),
        Capture("feats", "layer2", "x"),
    ]


def test_planned_checkpoints_a_block_as_a_list_and_refuses_a_name_it_has_no_call_for() -> None:
    segment = Segment("b0", "b0", "n1", False, (Call("x", "b0", "s0"),))
    network = resdsl.compile("resnet20")
    forward = planned([Save("s0", "x")], [segment], Plan(network, (), ("b0",)), "x")
    assert forward.steps == (Save("s0", "x"), CheckpointGroup((Call("x", "b0", "s0", checkpointed="[self.b0]"),)))
    with pytest.raises(AssertionError, match="layer9"):
        planned([], [segment], Plan(network, (), ("layer9",)), "x")


# -- a scope of the IR ---------------------------------------------------------------------


def _block(network: Network, path: str) -> Scope:
    return next(s for s in network.root.scopes() if s.path == path)


def test_a_block_keeps_its_input_for_the_projection() -> None:
    network = resdsl.compile("resnet20")
    forward = scope_forward(network, _block(network, "layer2.0"))
    assert forward.steps[0] == Save("s0", "x")
    assert forward.steps[-2:] == (Residual("x", "s0", "s0", "downsample", inplace=True), Call("x", "relu", "x"))
    assert ir_forward.shortcuts(forward.steps) == {"downsample"}
    identity = scope_forward(network, _block(network, "layer1.0"))
    assert Residual("x", "s0", "s0", None, inplace=True) in identity.steps
    assert ir_forward.shortcuts(identity.steps) == set()


def test_a_gate_keeps_the_value_it_scales() -> None:
    network = resdsl.compile("seresnet50")
    steps = scope_forward(network, _block(network, "layer1.0")).steps
    at = steps.index(Call("x", "se", "x"))
    assert steps[at - 1] == Save("s1", "x") and steps[at + 1] == Assign("x", "s1 * x")


def test_reads_are_the_one_rule_of_what_a_forward_keeps_with_a_gates_branch_held_apart() -> None:
    """build_model runs a gate's branch in x and keeps its input; generated code holds the
    branch in a variable of its own (apart), so only the residual's block input is kept."""
    network = resdsl.compile("seresnet50")
    block = _block(network, "layer1.0")
    gate = next(item for item in block.items if isinstance(item, Scope) and item.side)
    multiply = block.items[block.items.index(gate) + 1]
    assert isinstance(multiply, Layer)
    residual = next(item for item in block.items if isinstance(item, Layer) and item.op == "residual")
    in_x = ir_forward.reads(network, block)
    assert (multiply, 0, gate.input) in in_x and (residual, 1, block.input) in in_x
    assert ir_forward.kept(network, block) == {gate.input, block.input}
    assert ir_forward.reads(network, block, apart=True) == [(residual, 1, block.input)]
    assert ir_forward.kept(network, block, apart=True) == {block.input}


def test_the_network_flattens_before_its_linear_and_layer_scale_is_a_parameter() -> None:
    network = resdsl.compile("resnet18")
    assert scope_forward(network, network.root).steps[-2:] == (Flatten("x", "x"), Call("x", "fc", "x"))
    text = "network ls() {\n  input 3 x 8 x 8\n  conv1 = conv(4, k=3, p=1)\n  gamma = layer_scale(0.5)\n}\n"
    scaled = resdsl.compile(text)
    assert scope_forward(scaled, scaled.root).steps[-1] == Assign("x", "x * self.gamma.reshape(-1, 1, 1)")


# -- both back ends write every forward through the renderer ------------------------------


class Spy:
    """Records every forward the renderer writes (``monkeypatch`` puts it in place)."""

    def __init__(self) -> None:
        self.written: list[tuple[Forward, str]] = []
        self._render = ir_forward.render

    def __call__(self, forward: Forward) -> str:
        source = self._render(forward)
        self.written.append((forward, source))
        return source

    def dumps(self) -> dict[str, Forward]:
        return {ast.dump(ast.parse(source).body[0]): forward for forward, source in self.written}


def _runtime_forwards() -> set[str]:
    """The forwards of the runtime's classes, which generated files copy as they are."""
    found = set()
    for path in (ROOT / "resdsl" / "runtime").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "forward":
                found.add(ast.dump(node))
    return found


def _class_forwards(code: str) -> Iterator[tuple[str, bool, str]]:
    """``(class, exported, dump of its forward)`` for each class of a generated module."""
    tree = ast.parse(code)
    exports = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "__all__"
    )
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "forward":
                    yield node.name, node.name in exports, ast.dump(fn)


def _shape(forward: Forward) -> list[tuple[str, str]]:
    """What a network class's steps do, whatever they call their variables."""
    return [(type(s).__name__, getattr(s, "module", "")) for s in forward.steps if not isinstance(s, Save)]


def assert_one_renderer(monkeypatch: pytest.MonkeyPatch, network: Network, same_network_steps: bool = True) -> None:
    """build_model's forwards and the generated module's are the renderer's output, and for
    the network class the two back ends' steps do the same things in the same order."""
    built_spy, generated_spy = Spy(), Spy()
    monkeypatch.setattr(ir_forward, "render", built_spy)
    with torch.device("meta"):  # the modules, not their weights
        model = resdsl.build_model(network)
    monkeypatch.setattr(ir_forward, "render", generated_spy)
    code = resdsl.generate(network)
    monkeypatch.undo()
    sources = {source: forward for forward, source in built_spy.written}
    scopes = [m for m in model.modules() if hasattr(type(m), "resdsl_source")]
    assert scopes and all(type(m).resdsl_source in sources for m in scopes)
    rendered, runtime = generated_spy.dumps(), _runtime_forwards()
    classes = list(_class_forwards(code))
    assert any(exported for _, exported, _ in classes)
    for name, exported, dump in classes:
        assert dump in (rendered if exported else runtime), f"{name}.forward was not written by the renderer"
    if same_network_steps:
        network_class = classes[-1][2]  # the template writes the network's class last
        assert _shape(rendered[network_class]) == _shape(sources[type(model).resdsl_source])


@pytest.mark.parametrize("spec", slow_if_heavy((p.stem for p in shipped_spec_files()), half=1))
def test_every_shipped_spec_is_rendered_by_the_one_renderer(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    assert_one_renderer(monkeypatch, resdsl.compile(spec))


def test_features_and_checkpointing_are_rendered_by_the_one_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    network = resdsl.compile("resnet50")
    wanted = {"features": ["layer1", "layer2"], "checkpoint": True}
    built_spy, generated_spy = Spy(), Spy()
    monkeypatch.setattr(ir_forward, "render", built_spy)
    with torch.device("meta"):
        model = resdsl.build_model(network, **wanted)  # type: ignore[arg-type]
    monkeypatch.setattr(ir_forward, "render", generated_spy)
    resdsl.generate(network, **wanted)  # type: ignore[arg-type]
    monkeypatch.undo()
    built = next(f for f, s in built_spy.written if s == type(model).resdsl_source)
    generated = generated_spy.written[-1][0]  # the network class is written last
    assert _shape(built) == _shape(generated)
    assert built.result == "features" and generated.returns == built.returns == "dict[str, Tensor]"
    assert [type(s).__name__ for s in built.steps][-2:] == ["CheckpointGroup", "Capture"]


@seed(20260517)
@settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_random_networks_are_rendered_by_the_one_renderer(program: tuple[str, str]) -> None:
    text, name = program
    result = resdsl.check(text)
    assume(result.ok)
    network = next(n for n in result.networks if n.name == name)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_one_renderer(monkeypatch, network, same_network_steps=False)


def test_the_renderer_is_the_only_writer_of_def_forward() -> None:
    """No other module of the back ends or the IR spells out ``def forward(`` (the runtime's
    hand-written modules have their own, which generated files copy)."""
    writers = []
    for folder in ("backends", "ir", "weights", "api"):
        for path in (ROOT / "resdsl" / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".j2") and "def forward(" in path.read_text():
                writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["resdsl/ir/forward.py"], json.dumps(writers)
