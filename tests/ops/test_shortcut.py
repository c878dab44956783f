"""``identity_if_same``, timm's ``has_skip``: an inverted residual adds its input only where the
block keeps the input's shape (stride 1, channels kept), and is a plain stack elsewhere. The
checker decides it per instance from the shapes; build_model, the generated module (a
``has_skip`` attribute) and ONNX all follow that decision."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import resdsl
from resdsl.backends.codegen import generate
from resdsl.ops.shortcut import realise_shortcut
from tests.backends.codegen.test_codegen_random import assert_same_network
from tests.conftest import FLOAT32_TOL

SPEC = """
block inverted(c, cin, stride = 1, expand = 6) {
    mid = cin * expand
    conv_pw = conv(mid, k=1)
    bn1 = batchnorm()
    relu6
    conv_dw = conv(mid, k=3, s=stride, p=1, groups=mid)
    bn2 = batchnorm()
    relu6
    conv_pwl = conv(c, k=1)
    bn3 = batchnorm()
    residual(identity_if_same)
}

network mb(depths = [2, 3]) {
    input 3 x 32 x 32
    conv_stem = conv(16, k=3, s=2, p=1)
    s1 = stage(inverted(24, in_channels), repeat=depths[0], stride=2)
    s2 = stage(inverted(24, in_channels), repeat=depths[1])
    s3 = stage(inverted(32, in_channels, expand=4), repeat=1)
    pool = global_avgpool()
    fc = linear(10)
}
"""


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "mb.arch"
    path.write_text(SPEC)
    return path


def test_the_rule() -> None:
    assert realise_shortcut("identity_if_same", (8, 4, 4), (8, 4, 4)).kind == "identity"
    for main, src in (((8, 2, 2), (8, 4, 4)), ((16, 4, 4), (8, 4, 4))):  # a stride, new channels
        s = realise_shortcut("identity_if_same", main, src)
        assert (s.kind, s.adds, s.steps(), s.params) == ("none", False, (), 0)


def test_it_adds_only_where_the_block_keeps_the_shape(tmp_path: Path) -> None:
    net = resdsl.compile(str(_spec(tmp_path)))
    kinds = {layer.scope.path: layer.shortcut.kind for layer in net.layers() if layer.shortcut is not None}  # type: ignore[union-attr]
    assert kinds == {
        "s1.0": "none",  # stride 2 and 16 -> 24 channels
        "s1.1": "identity",
        "s2.0": "identity",
        "s2.1": "identity",
        "s2.2": "identity",
        "s3.0": "none",  # 24 -> 32 channels
    }
    model = resdsl.build_model(net).double().eval()
    block = model.s1[0]
    x = torch.randn(2, 16, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        plain = block.bn3(
            block.conv_pwl(block.relu6(block.bn2(block.conv_dw(block.relu6(block.bn1(block.conv_pw(x)))))))
        )
        assert torch.equal(block(x), plain)  # no addition where the shape changes
        y = torch.randn(2, 24, 8, 8, dtype=torch.float64)
        kept = model.s1[1]
        assert not torch.equal(
            kept(y), kept.bn3(kept.conv_pwl(kept.relu6(kept.bn2(kept.conv_dw(kept.relu6(kept.bn1(kept.conv_pw(y))))))))
        )


def _branch(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    for name in ("conv_pw", "bn1", "relu6", "conv_dw", "bn2", "relu6", "conv_pwl", "bn3"):
        x = getattr(block, name)(x)
    return x


def _zeroed(bn: torch.nn.Module) -> bool:
    return float(bn.weight.detach().abs().sum()) == 0  # type: ignore[operator]


def test_generated_code_writes_has_skip(tmp_path: Path) -> None:
    module = assert_same_network(SPEC, tmp_path)  # state_dict and float64 outputs equal build_model's
    code = Path(module.__file__ or "").read_text()
    assert "self.has_skip = " in code and "if self.has_skip:" in code
    made = module.mb(depths=(1, 2))
    assert not made.s1[0].has_skip and made.s2[0].has_skip and not made.s3[0].has_skip


def test_zero_init_only_where_it_adds(tmp_path: Path) -> None:
    model = resdsl.build_model(str(_spec(tmp_path)), zero_init_residual=True)
    assert (
        float(model.s1[0].bn3.weight.detach().abs().sum()) > 0
        and float(model.s1[1].bn3.weight.detach().abs().sum()) == 0
    )
    path = tmp_path / "gen.py"
    path.write_text(generate(resdsl.compile(str(_spec(tmp_path)))))
    spec = importlib.util.spec_from_file_location("gen_if_same", path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    made = gen.mb(zero_init_residual=True)
    assert (
        float(made.s1[0].bn3.weight.detach().abs().sum()) > 0 and float(made.s1[1].bn3.weight.detach().abs().sum()) == 0
    )


def test_onnx_follows_the_checker(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    spec = str(_spec(tmp_path))
    model = resdsl.build_model(spec).eval()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model.double()(x.double()).numpy()
    exported = resdsl.export_onnx(spec, weights=state, batch=2)
    assert sum(node.op_type == "Add" for node in exported.graph.node) == 4  # the four that add
    session = ort.InferenceSession(exported.SerializeToString())
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - want).max() / np.abs(want).max() < FLOAT32_TOL  # float32 under test: onnxruntime


def test_a_kind_parameter_that_varies_cannot_carry_it_into_generated_code(tmp_path: Path) -> None:
    """Where every instance passes identity_if_same the class writes has_skip as for the kind
    written out; where instances pass other kinds too, the class would choose at run time,
    where no shapes are known: E507 at the residual (make_shortcut does not know the kind)."""
    from resdsl.diagnostics import ResdslError
    from resdsl.runtime.shortcuts import make_shortcut

    header = "block inverted(c, cin, stride = 1, expand = 6) {"
    text = SPEC.replace(header, header.replace(") {", ", kind = identity_if_same) {"))
    text = text.replace("residual(identity_if_same)", "residual(kind)")
    assert_same_network(text, tmp_path)  # one kind in every instance: has_skip, as above
    varied = text.replace(
        "s3 = stage(inverted(32, in_channels, expand=4)",
        "s3 = stage(inverted(32, in_channels, expand=4, kind=projection)",
    )
    net = resdsl.compile(varied)
    resdsl.build_model(net)  # build_model decides block by block
    with pytest.raises(ResdslError) as caught:
        generate(net)
    assert caught.value.code == "E507" and caught.value.span.line == 12
    with pytest.raises(ValueError, match="unknown shortcut kind 'identity_if_same'"):
        make_shortcut("identity_if_same", 8, 8, 1)


NAMED = """
block unit(c, stride = 1, kind = projection) {
    conv1 = conv(c, k=3, s=stride, p=1)
    bn1 = batchnorm()
    residual(kind, step_names=["conv", "bn"])
    relu
}

network named() {
    input 3 x 16 x 16
    stem = conv(8, k=3, p=1)
    b1 = unit(16, stride=2)
    b2 = unit(16)
}
"""


def test_step_names_name_the_shortcuts_parts(tmp_path: Path) -> None:
    """timm's RegNet keys its projection downsample.conv and downsample.bn (a ConvNormAct), not
    downsample.0 and .1: build_model, generated code, ONNX and the inference fold follow the names."""
    net = resdsl.compile(NAMED)
    keys = list(resdsl.build_model(net).state_dict())
    assert "b1.downsample.conv.weight" in keys and "b1.downsample.bn.running_var" in keys
    assert not any(k.startswith("b2.downsample") for k in keys)  # the shape is kept: no module
    module = assert_same_network(NAMED, tmp_path)
    code = " ".join(Path(module.__file__ or "").read_text().split())  # ruff format's layout aside
    assert 'OrderedDict( [ ( "conv", nn.Conv2d(' in code and '("bn", nn.BatchNorm2d(c))' in code
    onnx_names = {init.name for init in resdsl.export_onnx(NAMED).graph.initializer}
    assert "b1.downsample.conv.weight" in onnx_names
    inference = resdsl.build_model(net, mode="inference")
    assert "b1.downsample.conv.bias" in inference.state_dict()  # its batchnorm folded into the conv


@pytest.mark.parametrize(
    ("kind", "names", "words"),
    [
        ("projection", '["conv"]', "gives 1 names, its projection shortcut has 2 parts (conv, batchnorm)"),
        ("avgpool_projection", '["conv", "bn"]', "has 3 parts (avgpool, conv, batchnorm)"),
        ("projection", '["conv", "conv"]', "distinct names"),
    ],
)
def test_step_names_must_name_every_part_once(kind: str, names: str, words: str) -> None:
    text = NAMED.replace('residual(kind, step_names=["conv", "bn"])', f"residual({kind}, step_names={names})")
    (d,) = resdsl.check(text).diagnostics
    assert d.code == "E213" and words in d.message


def test_step_names_with_a_kind_chosen_at_run_time_is_e508() -> None:
    from resdsl.diagnostics import ResdslError

    text = NAMED.replace("b2 = unit(16)", "b2 = unit(16, kind=projection_all)")
    net = resdsl.compile(text)
    resdsl.build_model(net)
    with pytest.raises(ResdslError) as caught:
        generate(net)
    assert caught.value.code == "E508"
