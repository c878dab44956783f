"""The op table (resdsl/ops/): each op is one definition that check, build_model, generated
code and ONNX all read. The ops added as single definitions (layernorm, drop_path,
layer_scale, concat, relu6, hardswish, hardsigmoid) are checked in each: against torch's own
functions or timm's formulas in float64, generated code equal to build_model in float64 (eval
and train), and onnxruntime equal to build_model (float32 under test, within FLOAT32_TOL)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resdsl
from resdsl.backends.codegen import generate
from resdsl.diagnostics import ResdslError
from resdsl.ops import OPS, ShapeError
from resdsl.ops.shortcut import ShortcutStep
from resdsl.runtime.layers import DropPath, LayerNorm2d, ZeroPadShortcut
from resdsl.runtime.shortcuts import ZeroPadShortcut as RuntimeZeroPad
from tests.conftest import FLOAT32_TOL

NEW_OPS = ("layernorm", "drop_path", "layer_scale", "concat", "relu6", "hardswish", "hardsigmoid", "pointwise_linear")

SPEC = """
block cnx(dim, drop = 0.0) {
    conv_dw = conv(dim, k=7, p=3, groups=dim, bias=true)
    norm    = layernorm(eps=1e-6)
    fc1     = conv(dim * 4, k=1, bias=true)
    gelu
    fc2     = conv(dim, k=1, bias=true)
    gamma   = layer_scale(1e-6)
    drop_path(drop)
    residual(identity)
}

block dense(growth) {
    norm1 = batchnorm()
    relu1 = relu()
    conv1 = conv(growth, k=3, p=1)
    concat()
}

network newops(num_classes = 10, growth = 4) {
    input 3 x 32 x 32
    stem      = conv(16, k=4, s=4, bias=true)
    stem_norm = layernorm(eps=1e-6)
    stage1    = stage(cnx(16, drop=0.25), repeat=2)
    d1        = dense(8)
    dstage    = stage(dense(growth), repeat=3)
    act       = relu6()
    hs        = hardswish()
    hsig      = hardsigmoid()
    pool      = global_avgpool()
    flatten
    head_norm = layernorm(over="last")
    fc        = linear(num_classes)
}
"""
_names = itertools.count()


def _spec(tmp_path: Path, text: str = SPEC) -> str:
    path = tmp_path / f"ops{next(_names)}.arch"
    path.write_text(text)
    return str(path)


def _generated(net: Any, tmp_path: Path) -> Any:
    path = tmp_path / f"gen{next(_names)}.py"
    path.write_text(generate(net))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fill(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Distinct values everywhere (a layer scale of 1e-6 would hide its branch), variances > 0."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.5
    return state


def test_every_op_is_one_definition_with_every_form() -> None:
    """Each op of the table carries its module (or its tensor, its modules of its block, or its
    merge) and its ONNX form."""
    for name, op in OPS.items():
        assert op.onnx is not None, name
        forms = [op.torch is not None, op.merge is not None, op.own_param is not None, op.own_modules is not None]
        assert sum(forms) == 1, f"{name}: exactly one of a module, a merge, a tensor or modules of its block"
    assert set(NEW_OPS) <= set(OPS)


def test_the_new_ops_check_with_their_shapes_and_costs(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path))
    layers = {layer.path: layer for layer in net.layers()}
    assert layers["stem_norm"].params == 32  # weight and bias over 16 channels
    assert layers["stage1.0.gamma"].params == 16 and layers["stage1.0.gamma"].shape == (16, 8, 8)
    assert layers["d1.concat"].shape == (24, 8, 8)  # 16 input channels + 8 new ones
    assert [layers[f"dstage.{i}.concat"].shape[0] for i in range(3)] == [28, 32, 36]
    assert layers["head_norm"].params == 2 * 36  # over the last dimension of a 36-vector


def test_build_model_keys_follow_timm(tmp_path: Path) -> None:
    model = resdsl.build_model(_spec(tmp_path))
    keys = list(model.state_dict())
    # layer_scale's tensor is the block's own parameter, named as the layer: timm's gamma
    assert "stage1.0.gamma" in keys and not any(k.startswith("stage1.0.gamma.") for k in keys)
    # a module's own parameters come before its children's, as in timm's ConvNeXt blocks
    assert keys.index("stage1.0.gamma") < keys.index("stage1.0.conv_dw.weight")
    assert isinstance(model.stem_norm, LayerNorm2d) and isinstance(model.stage1[0].drop_path, DropPath)
    assert torch.equal(model.stage1[0].gamma, torch.full((16,), 1e-6))
    assert isinstance(model.head_norm, torch.nn.LayerNorm) and model.head_norm.normalized_shape == (36,)


def test_generated_code_equals_build_model_in_float64(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    net = resdsl.compile(spec)
    built = resdsl.build_model(net).double()
    module = _generated(net, tmp_path)
    made = module.newops().double()
    assert [(k, v.shape) for k, v in built.state_dict().items()] == [(k, v.shape) for k, v in made.state_dict().items()]
    state = _fill(built)
    built.load_state_dict(state)
    made.load_state_dict(state)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    built.eval(), made.eval()
    assert torch.equal(built(x), made(x))
    built.train(), made.train()  # drop_path draws: the same seed gives the same masks
    torch.manual_seed(7)
    want = built(x)
    torch.manual_seed(7)
    assert torch.equal(made(x), want)
    source = Path(module.__file__).read_text()
    assert "class LayerNorm2d(nn.LayerNorm)" in source and "class DropPath(nn.Module)" in source
    assert "torch.cat([x, out], 1)" in source and "for i in range(2)" in source  # dense: c + i * growth


def test_generated_code_copies_only_the_runtime_layers_it_uses(tmp_path: Path) -> None:
    plain = _spec(tmp_path, "network p() {\n    input 3 x 8 x 8\n    c = conv(4, k=3)\n    relu6\n}\n")
    source = generate(resdsl.compile(plain))
    assert "LayerNorm2d" not in source and "DropPath" not in source and "nn.ReLU6(inplace=True)" in source


def onnx_equals_build_model(spec: str, x: torch.Tensor, **export: Any) -> Any:
    """Exports ``spec`` with filled weights, unfolded and folded, and checks onnxruntime against
    build_model in float64 on ``x``; returns the folded ONNX model."""
    ort = pytest.importorskip("onnxruntime")
    model = resdsl.build_model(spec)
    state = _fill(model)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        want = model.double()(x.double()).numpy()
    for fold in (False, True):
        onnx_model = resdsl.export_onnx(spec, weights={k: v.numpy() for k, v in state.items()}, fold=fold, **export)
        session = ort.InferenceSession(onnx_model.SerializeToString())
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(got - want).max() / np.abs(want).max() < FLOAT32_TOL  # float32 under test: onnxruntime
    return onnx_model


def test_onnx_equals_build_model(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    onnx_model = onnx_equals_build_model(_spec(tmp_path), x, batch=2)
    names = {init.name for init in onnx_model.graph.initializer}
    assert "stage1.0.gamma" in names  # the layer scale's initializer is named by its state_dict key


def test_activations_are_torchs(tmp_path: Path) -> None:
    spec = "network a(act = relu6) {\n    input 4 x 5 x 5\n    a = act\n}\n"
    x = torch.linspace(-8, 8, 100, dtype=torch.float64).reshape(1, 4, 5, 5)
    for name, reference in (("relu6", F.relu6), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid)):
        model = resdsl.build_model(_spec(tmp_path, spec.replace("act = relu6", f"act = {name}"))).double()
        assert torch.equal(model(x), reference(x)), name


def test_layernorm_over_channels_is_timms_layernorm2d() -> None:
    norm = LayerNorm2d(6, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2, 6)), norm.bias.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    want = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight[:, None, None] + norm.bias[:, None, None]
    assert torch.allclose(norm(x), want, rtol=0, atol=1e-12)  # float64: the same formula, rounded differently


def test_drop_path_is_timms_stochastic_depth() -> None:
    drop = DropPath(0.25).double()
    x = torch.randn(64, 3, 2, 2, dtype=torch.float64)
    drop.eval()
    assert drop(x) is x  # identity in eval mode
    drop.train()
    torch.manual_seed(3)
    got = drop(x)
    torch.manual_seed(3)
    mask = x.new_empty((64, 1, 1, 1)).bernoulli_(0.75)
    assert torch.equal(got, x * (mask / 0.75))  # timm: x.div(keep_prob) * mask, one draw per sample
    kept = (got != 0).flatten(1).all(1)
    assert 0 < int(kept.sum()) < 64 and torch.equal(got[kept], x[kept] * (1 / 0.75))  # kept ones scaled
    assert DropPath(0.0).train()(x) is x


def test_concat_refuses_maps_that_differ(tmp_path: Path) -> None:
    text = "block d(g) {\n    c = conv(g, k=3, s=2, p=1)\n    concat()\n}\n"
    text += "network n() {\n    input 3 x 8 x 8\n    b = d(4)\n}\n"
    result = resdsl.check(_spec(tmp_path, text))
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("E309", 3)]


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("s = sequential(conv(4, k=1), layer_scale(0.5))", "E217"),
        ("s = sequential(conv(4, k=1), concat())", "E217"),
        ('n = layernorm(over="rows")', "E213"),
        ("m = mul()", "E217"),
    ],
)
def test_misused_ops_are_clear_errors(tmp_path: Path, statement: str, code: str) -> None:
    text = f"network n() {{\n    input 3 x 8 x 8\n    {statement}\n}}\n"
    result = resdsl.check(_spec(tmp_path, text))
    assert [d.code for d in result.diagnostics] == [code]
    assert result.diagnostics[0].span.line == 3
    with pytest.raises(ResdslError):
        resdsl.compile(_spec(tmp_path, text))


def test_concat_is_a_layer_not_a_shortcut_kind(tmp_path: Path) -> None:
    text = "block b(c) {\n    conv1 = conv(c, k=3, p=1)\n    residual(concat)\n}\n"
    text += "network n() {\n    input 3 x 8 x 8\n    x = b(3)\n}\n"
    (d,) = resdsl.check(_spec(tmp_path, text)).diagnostics
    assert d.code == "E205" and d.span.line == 3 and "zero_pad, projection" in d.message  # the kinds, listed


# -- pad_channels: option A's shortcut as an op of the table (residual(zero_pad) makes it; the
# code generator does not use its form yet: generated files run make_shortcut)

ZERO_PAD = """
import "std/blocks.arch"
network a() {
    input 3 x 15 x 15
    stem = conv(8, k=3, p=1)
    b1   = basic(16, stride=2, shortcut=zero_pad)
    b2   = basic(24, shortcut=zero_pad)
}
"""


def test_pad_channels_shape_rule_and_counts() -> None:
    op = OPS["pad_channels"]
    args = {"s": 2, "extra": 8}
    assert op.shape([(8, 15, 15)], args) == (16, 8, 8)  # x[:, :, ::2, ::2] keeps ceil(15 / 2) rows
    assert op.shape([(8, 15, 15)], {"s": 1, "extra": 0}) == (8, 15, 15)
    assert op.param_count((8, 15, 15), (16, 8, 8), args) == 0 and op.macs((8, 15, 15), (16, 8, 8), args) == 0
    assert op.channels(args, 8) == 16 and op.stride(args) == 2 and not op.called
    with pytest.raises(ShapeError) as refused:
        op.shape([(8,)], args)
    assert refused.value.code == "E307"


def test_zero_pad_is_realised_as_pad_channels(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, ZERO_PAD))
    residuals = {layer.path: layer for layer in net.layers() if layer.shortcut is not None}
    (step,) = residuals["b1.downsample"].shortcut.steps()  # type: ignore[union-attr]
    assert step == ShortcutStep("pad_channels", {"s": 2, "extra": 8}, (8, 15, 15), (16, 8, 8), None)
    (step,) = residuals["b2.downsample"].shortcut.steps()  # type: ignore[union-attr]
    assert (step.args, step.out_shape) == ({"s": 1, "extra": 8}, (24, 8, 8))
    assert residuals["b1.downsample"].params == 0 and residuals["b1.downsample"].macs == 0


def test_build_model_makes_pad_channels_through_the_op_table(tmp_path: Path) -> None:
    model = resdsl.build_model(_spec(tmp_path, ZERO_PAD)).double()
    shortcut = model.b1.downsample
    assert type(shortcut) is ZeroPadShortcut and ZeroPadShortcut is RuntimeZeroPad  # one class, named twice
    assert (shortcut.stride, shortcut.extra_channels) == (2, 8) and not list(shortcut.parameters())
    x = torch.randn(2, 8, 15, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    want = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 8, 8, 8, dtype=torch.float64)], 1)
    assert torch.equal(shortcut(x), want)
    assert model(torch.randn(1, 3, 15, 15, dtype=torch.float64)).shape == (1, 24, 8, 8)


def test_pad_channels_onnx_is_a_strided_slice_and_a_channel_pad(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    spec = _spec(tmp_path, ZERO_PAD)
    model = resdsl.build_model(spec)
    state = _fill(model)
    model.load_state_dict(state)
    graph = resdsl.export_onnx(spec, weights={k: v.numpy() for k, v in state.items()}, fold=False, batch=2)
    nodes = {node.name: node for node in graph.graph.node}
    slice_, pad = nodes["b1.downsample"], nodes["b1.downsample/Pad"]  # named by the shortcut's module
    assert (slice_.op_type, pad.op_type, pad.input[0]) == ("Slice", "Pad", slice_.output[0])
    assert list(slice_.input[1:]) == [f"b1.downsample.{n}" for n in ("starts", "ends", "axes", "steps")]
    consts = {init.name: list(np.frombuffer(init.raw_data, np.int64)) for init in graph.graph.initializer}
    assert consts["b1.downsample.pads"] == [0, 0, 0, 0, 0, 8, 0, 0] and consts["b1.downsample.steps"] == [2, 2]
    assert nodes["b2.downsample"].op_type == "Pad"  # stride 1: no Slice
    x = torch.randn(2, 3, 15, 15, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model.eval().double()(x.double()).numpy()
    session = ort.InferenceSession(graph.SerializeToString())
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - want).max() / np.abs(want).max() < FLOAT32_TOL  # float32 under test: onnxruntime


def test_pad_channels_is_made_by_residual_not_called(tmp_path: Path) -> None:
    text = "network n() {\n    input 3 x 8 x 8\n    p = pad_channels(2, 3)\n}\n"
    (d,) = resdsl.check(_spec(tmp_path, text)).diagnostics
    assert d.code == "E217" and d.span.line == 3


POINTWISE = """
network pw() {
    input 6 x 5 x 4
    fc1 = pointwise_linear(10)
    gelu
    fc2 = pointwise_linear(6, bias=false)
}
"""


def test_pointwise_linear_maps_channels_at_every_position(tmp_path: Path) -> None:
    """ConvNeXt's MLP as timm writes it for tiny and up: nn.Linear weights [out, in] applied
    channels-last, the function of a 1x1 conv with those weights."""
    spec = _spec(tmp_path, POINTWISE)
    net = resdsl.compile(spec)
    layers = {layer.path: layer for layer in net.layers()}
    assert layers["fc1"].shape == (10, 5, 4) and layers["fc1"].params == 6 * 10 + 10
    assert layers["fc2"].params == 10 * 6 and layers["fc1"].macs == 6 * 10 * 5 * 4
    model = resdsl.build_model(net).double()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [
        ("fc1.weight", (10, 6)),
        ("fc1.bias", (10,)),
        ("fc2.weight", (6, 10)),
    ]
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    w1, b1, w2 = model.fc1.weight, model.fc1.bias, model.fc2.weight
    want = F.conv2d(F.gelu(F.conv2d(x, w1[:, :, None, None], b1)), w2[:, :, None, None])
    with torch.no_grad():
        assert torch.allclose(model(x), want, rtol=0, atol=1e-12)  # float64: the same sums, another order
        made = _generated(net, tmp_path).pw().double()
        made.load_state_dict(model.state_dict())
        assert torch.equal(made(x), model(x))


def test_pointwise_linear_needs_a_map(tmp_path: Path) -> None:
    text = "network n() {\n    input 3 x 8 x 8\n    flatten\n    fc = pointwise_linear(4)\n}\n"
    (d,) = resdsl.check(_spec(tmp_path, text)).diagnostics
    assert (d.code, d.span.line) == ("E307", 4) and "C x H x W" in d.message


def test_drop_path_rate_builds_timms_schedule_at_timms_paths() -> None:
    """convnext_tiny's drop_path_rate=0.1: block i of the 18 carries timm's
    torch.linspace(0, 0.1, 18)[i] (float32 values) as drop_prob, timm's attribute, at timm's
    module path (stages.2.blocks.5.drop_path)."""
    model = resdsl.build_model("convnext_tiny", params={"drop_path_rate": 0.1})
    paths = [p for p, m in model.named_modules() if isinstance(m, DropPath)]
    assert len(paths) == 18 and "stages.2.blocks.5.drop_path" in paths
    rates = [model.get_submodule(p).drop_prob for p in paths]
    assert rates == torch.linspace(0, 0.1, 18).tolist()
    assert rates == pytest.approx([0.1 * i / 17 for i in range(18)], rel=0, abs=1e-8)
    assert f"drop_prob={torch.tensor(0.1).item()}" in repr(model.get_submodule(paths[-1]))


# timm's EfficientNetBuilder blocks (EfficientNet, MobileNetV2/V3): each stage's repeats, and whether
# its first block adds its input (has_skip: stride 1, as many channels out as in; the later blocks
# of a stage always do). MobileNetV3's last stage is a ConvBnAct, which never adds.
BUILDER_STAGES = {
    "efficientnet_b0": ([1, 2, 2, 3, 3, 4, 1], [False] * 7),  # ds 32 -> 16, then a new width per stage
    "mobilenetv2_100": ([1, 2, 3, 4, 3, 3, 1], [False] * 7),
    "mobilenetv3_large_100": ([1, 2, 3, 4, 2, 3, 1], [True] + [False] * 6),  # ds 16 -> 16, stride 1
}


@pytest.mark.parametrize("name", sorted(BUILDER_STAGES))
def test_drop_path_rate_follows_timms_efficientnet_builder(name: str) -> None:
    """timm's _make_block: block i of the network's n carries drop_path_rate * i / n at
    blocks.s.j.drop_path where the block adds its input; elsewhere timm's DropPath is never called,
    and this one has rate 0, so no schedule that rewrites drop_prob can drop a block that does not add."""
    repeats, first_skips = BUILDER_STAGES[name]
    model = resdsl.build_model(name, params={"drop_path_rate": 0.2})
    total, i = sum(repeats), 0
    for s, (n, first_skip) in enumerate(zip(repeats, first_skips, strict=True)):
        for j in range(n):
            path = f"blocks.{s}.{j}.drop_path"
            conv_bn_act = name.startswith("mobilenetv3") and s == len(repeats) - 1
            if conv_bn_act:
                assert path not in dict(model.named_modules())
            else:
                module = model.get_submodule(path)
                want = 0.2 * i / total if j > 0 or first_skip else 0.0
                assert isinstance(module, DropPath) and module.drop_prob == pytest.approx(want, rel=0, abs=1e-15), path
            i += 1


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        # timm's regnet.py: calculate_drop_path_rates(rate, stage_depths, stagewise=True), a linspace
        # over the 13 blocks split by stage (s1.b1 ... s4.b7), on the branch before the addition
        ("regnetx_002", [f"s{s + 1}.b{j + 1}" for s, n in enumerate([1, 1, 4, 7]) for j in range(n)]),
        # timm's resnet.py make_blocks: drop_path_rate * net_block_idx / (net_num_blocks - 1)
        ("resnetrs50", [f"layer{s + 1}.{j}" for s, n in enumerate([3, 4, 6, 3]) for j in range(n)]),
    ],
)
def test_drop_path_rate_rises_linearly_over_regnet_and_resnet_rs(name: str, paths: list[str]) -> None:
    """Block i of n carries drop_path_rate * i / (n - 1): timm's RegNet as torch.linspace's float32
    values, its ResNet in float64; its ResNet has none at block 0, where the rate is 0 and this one
    is a DropPath of 0 (no state either way: the state_dict is timm's)."""
    model = resdsl.build_model(name, params={"drop_path_rate": 0.3})
    rates = [model.get_submodule(f"{p}.drop_path").drop_prob for p in paths]
    n = len(paths)
    if name.startswith("regnet"):
        assert rates == torch.linspace(0, 0.3, n).tolist()
    else:
        assert rates == [0.3 * i / (n - 1) for i in range(n)]


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenetv3_large_100", "regnetx_002", "resnetrs50"])
def test_drop_path_rate_changes_nothing_in_eval_mode_nor_the_state_dict(name: str) -> None:
    plain, dropped = resdsl.build_model(name), resdsl.build_model(name, params={"drop_path_rate": 0.5})
    assert list(dropped.state_dict()) == list(plain.state_dict())
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plain, dropped = plain.double().eval(), dropped.double().eval()
    with torch.no_grad():
        assert torch.equal(dropped(x), plain(x))


SCALE_3D = """
block cn(c) {
    dw = conv(c, k=3, p=1, groups=c, bias=true)
    layer_scale = layer_scale(0.5, dims=3)
    residual(identity)
}
network scale3d() {
    input 3 x 16 x 16
    stem = conv(8, k=3, p=1)
    s = stage(cn(8), repeat=2)
    pool = global_avgpool()
    flatten
    fc = linear(10)
}
"""


def test_a_layer_scale_of_dims_3_is_a_c_1_1_tensor_in_every_form(tmp_path: Path) -> None:
    """torchvision's ConvNeXt multiplies by a (C, 1, 1) ``layer_scale``: ``dims=3`` keeps that
    shape in build_model, generated code and ONNX, and computes what ``dims=1`` computes."""
    spec = _spec(tmp_path, SCALE_3D)
    built = resdsl.build_model(spec).double()
    assert torch.equal(built.s[0].layer_scale, torch.full((8, 1, 1), 0.5, dtype=torch.float64))
    made = _generated(resdsl.compile(spec), tmp_path).scale3d().double()
    assert [(k, v.shape) for k, v in built.state_dict().items()] == [(k, v.shape) for k, v in made.state_dict().items()]
    state = _fill(built)
    built.load_state_dict(state)
    made.load_state_dict(state)
    flat = resdsl.build_model(_spec(tmp_path, SCALE_3D.replace(", dims=3", ""))).double()
    flat.load_state_dict({k: v.flatten() if k.endswith("layer_scale") else v for k, v in state.items()})
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(built.eval()(x), made.eval()(x)) and torch.equal(built(x), flat.eval()(x))
    onnx_equals_build_model(spec, x.float(), batch=2)


def test_a_layer_scale_of_dims_3_takes_a_map() -> None:
    tokens = "network t() {\n    input 3 x 16 x 16\n    p = patch_embed(8, 4)\n    ls = layer_scale(dims=3)\n}\n"
    assert [d.code for d in resdsl.check(tokens).diagnostics] == ["E307"]
    two = "network t() {\n    input 3 x 4 x 4\n    ls = layer_scale(dims=2)\n}\n"
    assert [d.code for d in resdsl.check(two).diagnostics] == ["E213"]
