"""The checker: inferred shapes, the papers' and torchvision's figures, shortcut realisation, lints."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import resdsl
from resdsl.ops import ShapeError
from resdsl.ops.shortcut import Shortcut, realise_shortcut
from tests.conftest import CIFAR, CIFAR_PARAMS, TORCHVISION_MODELS, shipped_spec_files


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_torchvision_figures(name: str, manifest: dict[str, Any]) -> None:
    net = resdsl.compile(name)
    assert net.num_params == manifest[name]["num_params"]
    assert round(net.macs / 1e9, 3) == manifest[name]["gmacs_224"]
    assert net.output_shape == (1000,)


def test_resnet50_headline_figures() -> None:
    net = resdsl.compile("resnet50")
    assert (net.num_params, round(net.macs / 1e9, 3), net.weighted_layers) == (25_557_032, 4.089, 50)


@pytest.mark.parametrize(("name", "n"), sorted(CIFAR.items()))
def test_cifar_figures(name: str, n: int) -> None:
    net = resdsl.compile(name)
    assert net.num_params == CIFAR_PARAMS[name]
    assert net.weighted_layers == 6 * n + 2
    assert net.params["n"] == n


@pytest.mark.parametrize(
    ("name", "depth"), [("resnet18", 18), ("resnet34", 34), ("resnet101", 101), ("resnet152", 152)]
)
def test_depth_is_the_papers_name(name: str, depth: int) -> None:
    assert resdsl.compile(name).weighted_layers == depth


@pytest.mark.parametrize("path", shipped_spec_files(), ids=lambda p: p.stem)
def test_shipped_specs_are_clean(path: Path) -> None:
    result = resdsl.check(path)
    assert result.diagnostics == [] and result.networks


def test_stage_shapes_follow_table_1() -> None:
    net = resdsl.compile("resnet50")
    shapes = {
        p: net.layer(net_id).shape for p, net_id in [(s.path, s.output) for s in net.root.scopes() if s.kind == "stage"]
    }
    assert shapes == {
        "layer1": (256, 56, 56),
        "layer2": (512, 28, 28),
        "layer3": (1024, 14, 14),
        "layer4": (2048, 7, 7),
    }


def test_input_override_changes_every_shape() -> None:
    net = resdsl.compile("resnet50", input_shape=(3, 320, 320))
    assert net.layer("layer4.2.conv3").shape == (2048, 10, 10)
    assert net.layer("avgpool").shape == (2048, 1, 1)
    assert net.num_params == 25_557_032


def test_shortcut_options_a_b_c() -> None:
    a = resdsl.compile("resnet20")
    b = resdsl.compile("resnet20", shortcut="projection")
    c = resdsl.compile("resnet20", shortcut="projection_all")
    adds = lambda net: [layer.shortcut.kind for layer in net.layers() if layer.op == "residual"]  # noqa: E731
    assert adds(a).count("zero_pad") == 2 and set(adds(a)) == {"identity", "zero_pad"}
    assert adds(b).count("projection") == 2
    assert set(adds(c)) == {"projection"} and len(adds(c)) == 9
    # B adds two projections (16->32 and 32->64, each conv 1x1 + BN); C one per block
    assert b.num_params - a.num_params == (16 * 32 + 64) + (32 * 64 + 128)
    assert c.num_params > b.num_params


def test_realise_shortcut_rules() -> None:
    assert realise_shortcut("projection", (256, 56, 56), (64, 56, 56)).stride == 1
    sc = realise_shortcut("avgpool_projection", (512, 4, 4), (256, 7, 7))  # odd size: ceil
    assert (sc.kind, sc.stride, sc.params) == ("avgpool_projection", 2, 256 * 512 + 2 * 512)
    assert realise_shortcut("zero_pad", (32, 16, 16), (16, 32, 32)).params == 0
    assert realise_shortcut("projection", (64, 8, 8), (64, 8, 8)).kind == "identity"


def _layout(shortcut: Shortcut) -> list[tuple[str, int | None, tuple[int, ...], tuple[int, ...]]]:
    return [(step.op, step.index, step.in_shape, step.out_shape) for step in shortcut.steps()]


def test_a_shortcut_is_described_by_its_steps() -> None:
    """Each step's op, its place in the shortcut's nn.Sequential and its shapes: the state_dict
    keys downsample.0.weight, downsample.1.running_mean; ResNet-D's conv at .1 after its pool."""
    b = realise_shortcut("projection", (128, 28, 28), (64, 56, 56))
    assert _layout(b) == [("conv", 0, (64, 56, 56), (128, 28, 28)), ("batchnorm", 1, (128, 28, 28), (128, 28, 28))]
    conv = {"out": 128, "k": 1, "s": 2, "p": 0, "d": 1, "groups": 1, "bias": False, "in_channels": None}
    assert b.steps()[0].args == conv  # every parameter bound, as the op's hooks read them
    d = realise_shortcut("avgpool_projection", (512, 4, 4), (256, 7, 7))
    assert [(op, i) for op, i, _, _ in _layout(d)] == [("avgpool", 0), ("conv", 1), ("batchnorm", 2)]
    assert d.steps()[0].args == {"k": 2, "s": 2, "p": 0, "ceil": True, "count_include_pad": False}
    assert _layout(d)[1][2] == (256, 4, 4)  # the conv sees the pooled map
    kept = realise_shortcut("avgpool_projection", (128, 8, 8), (64, 8, 8))  # stride 1: identity in the slot
    assert [(op, i) for op, i, _, _ in _layout(kept)] == [("identity", 0), ("conv", 1), ("batchnorm", 2)]
    folded = replace(b, norm=False, bias=True)  # an inference build: the norm folded into a biased conv
    assert _layout(folded) == [("conv", 0, (64, 56, 56), (128, 28, 28))] and folded.steps()[0].args["bias"]
    assert folded.params == 64 * 128 + 128
    gn = realise_shortcut("projection", (128, 28, 28), (64, 56, 56), norm=("groupnorm", {"groups": 32}))
    assert gn.steps()[1].op == "groupnorm" and gn.steps()[1].args == {"groups": 32, "eps": 1e-5, "affine": True}
    assert realise_shortcut("identity", (64, 8, 8), (64, 8, 8)).steps() == ()
    assert realise_shortcut("projection", (64, 8, 8), (64, 8, 8)).steps() == ()  # option B keeps the shape: none


def test_a_shortcut_that_maps_a_vector_is_refused(tmp_path: Path) -> None:
    """A projection or zero_pad over features (after flatten) was an internal error (IndexError
    counting its MACs); its steps' shape rules now refuse it with E307 at the residual."""
    spec = tmp_path / "v.arch"
    spec.write_text(
        "block mlp(n, shortcut = projection) {\n    fc = linear(n)\n    residual(shortcut)\n}\n"
        "network v(shortcut = projection) {\n    input 3 x 8 x 8\n    flatten\n"
        "    b = mlp(256, shortcut=shortcut)\n}\n"
    )
    for kind in ("projection", "zero_pad", "avgpool_projection"):
        (d,) = resdsl.check(spec, {"shortcut": kind}).diagnostics
        assert (d.code, d.span.line) == ("E307", 3) and "C x H x W" in d.message, kind
    with pytest.raises(ShapeError) as refused:
        realise_shortcut("projection", (16,), (192,))
    assert refused.value.code == "E307"


def test_lints(tmp_path: Path) -> None:
    spec = tmp_path / "l.arch"
    spec.write_text(
        'import "std/blocks.arch"\nnetwork n() {\n  input 3 x 2 x 2\n'
        "  c = conv(8, k=2, bias=true)\n  bn = batchnorm()\n"
        "  s = stage(basic(8), repeat=1)\n}\n"
    )
    result = resdsl.check(spec)
    assert result.ok
    assert sorted(d.code for d in result.diagnostics) == ["W401", "W403", "W403", "W403"]


@pytest.mark.parametrize(
    ("name", "params", "depth"), [("preact_resnet164", 1_703_258, 164), ("preact_resnet1001", 10_327_706, 1001)]
)
def test_preactivation_figures(name: str, params: int, depth: int) -> None:
    net = resdsl.compile(name)
    assert (net.num_params, net.weighted_layers) == (params, depth)
    projections = [layer.shortcut for layer in net.layers() if layer.shortcut is not None and layer.shortcut.projects]
    assert len(projections) == 3 and not any(p.norm for p in projections)  # plain 1x1 convs on the pre-activation


# -- the op table's shape rules against torch itself ---------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def windowed_layers(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
    case = {
        "op": op,
        "k": draw(st.integers(1, 7)),
        "s": draw(st.integers(1, 4)),
        "p": draw(st.integers(0, 3)),
        "d": draw(st.integers(1, 3)) if op == "conv" else 1,
        "ceil": draw(st.booleans()) if op != "conv" else False,
        "h": draw(st.integers(1, 12)),
        "w": draw(st.integers(1, 12)),
    }
    return case


def _torch_layer(case: dict[str, Any]) -> Any:
    from torch import nn

    if case["op"] == "conv":
        return nn.Conv2d(2, 4, case["k"], case["s"], case["p"], case["d"], bias=False)
    cls = nn.MaxPool2d if case["op"] == "maxpool" else nn.AvgPool2d
    return cls(case["k"], case["s"], case["p"], ceil_mode=case["ceil"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windowed_layers())
def test_shape_rules_agree_with_torch(case: dict[str, Any]) -> None:
    import torch

    args = f"k={case['k']}, s={case['s']}, p={case['p']}"
    if case["op"] == "conv":
        layer = f"conv(4, {args}, d={case['d']})"
    else:
        layer = f"{case['op']}({args}, ceil={'true' if case['ceil'] else 'false'})"
    text = f"network n() {{\n  input 2 x {case['h']} x {case['w']}\n  l = {layer}\n}}\n"
    result = resdsl.check(text)
    try:
        with torch.no_grad():
            out = _torch_layer(case)(torch.randn(1, 2, case["h"], case["w"]))
        torch_shape: tuple[int, ...] | None = tuple(out.shape[1:])
    except RuntimeError:
        torch_shape = None
    if result.ok:
        assert torch_shape == result.networks[0].output_shape, (layer, case)
    else:
        assert [d.code for d in result.errors] == ["E303"], (layer, case, result.errors)
        assert torch_shape is None or 0 in torch_shape, (layer, case, torch_shape)


INVERTED = """\
block inverted(out, stride = 1, expand = 6, shortcut = projection) {
    expand1 = conv(out * expand, k=1)
    bn1     = batchnorm()
    relu
    dw      = conv(out * expand, k=3, s=stride, p=1, groups=out * expand)
    bn2     = batchnorm()
    relu
    project = conv(out, k=1)
    bn3     = batchnorm()
    residual(shortcut)
}

network mbv2() {
    input 3 x 32 x 32
    stem   = conv(16, k=3, p=1)
    layer1 = stage(inverted(24), repeat=2, stride=2)
    layer2 = stage(inverted(32), repeat=2, stride=2)
}
"""


def test_w402_skips_inverted_residual_stages_and_says_how_to_silence_it() -> None:
    """Regression: W402 fired on every stage of inverted residuals (MobileNetV2: 16 -> 24 -> 32 while
    the map halves), where the paper's doubling rule does not apply; its help did not name --ignore."""
    assert resdsl.check(INVERTED).diagnostics == []
    separable = INVERTED.replace("expand = 6", "expand = 1")  # depthwise-separable (MobileNetV3's first blocks)
    assert resdsl.check(separable).diagnostics == []
    plain = separable.replace("groups=out * expand", "groups=1")  # no wider inside, no depthwise conv: it applies
    found = [d for d in resdsl.check(plain).diagnostics if d.code == "W402"]
    assert [d.span.line for d in found] == [16, 17]
    assert "--ignore W402" in (found[0].help or "")
    assert resdsl.check(plain, ignore=["W402"]).diagnostics == []
