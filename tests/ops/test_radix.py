"""The radix ops of split attention (resdsl/ops/radix.py): shape rules and E398, their runtime
modules against timm's formulas (written out here), and every back end on a split attention of
radix 4 over 2 groups (channels that the group-major to radix-major reordering moves) and one
of radix 1 (a sigmoid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import resdsl
from resdsl.diagnostics import ResdslError
from resdsl.ops import OPS, ShapeError
from resdsl.runtime.layers import RadixSoftmax, RadixSum
from tests.ops.test_ops import _fill, _generated, _spec, onnx_equals_build_model

SPEC = """
block splat(c, radix = 2, groups = 1) {
    conv     = conv(c * radix, k=3, p=1, groups=groups * radix)
    bn0      = batchnorm()
    act0     = relu
    radix_sum(radix)
    pool     = global_avgpool()
    fc1      = conv(16, k=1, groups=groups, bias=true)
    act1     = relu
    fc2      = conv(c * radix, k=1, groups=groups, bias=true)
    rsoftmax = radix_softmax(radix, groups=groups)
    radix_combine(radix, splits=act0)
}

network splats(num_classes = 10) {
    input 3 x 13 x 11
    stem = conv(8, k=3, p=1)
    s4   = splat(8, radix=4, groups=2)
    s1   = splat(12, radix=1, groups=4)
    pool = global_avgpool()
    fc   = linear(num_classes)
}
"""


def _timm_rsoftmax(x: torch.Tensor, radix: int, groups: int) -> torch.Tensor:
    """timm's RadixSoftmax on N x RC x 1 x 1 weights, as split_attn.py computes it."""
    batch = x.size(0)
    if radix == 1:
        return torch.sigmoid(x)
    y = F.softmax(x.view(batch, groups, radix, -1).transpose(1, 2), dim=1)
    return y.reshape(batch, -1).view(batch, -1, 1, 1)


def test_radix_softmax_is_timms_over_the_groups() -> None:
    x = torch.randn(3, 4 * 2 * 5, 1, 1, dtype=torch.float64)
    assert torch.equal(RadixSoftmax(4, groups=2)(x), _timm_rsoftmax(x, 4, 2))
    assert torch.equal(RadixSoftmax(1, groups=3)(x), torch.sigmoid(x))
    # each group's weights of one channel sum to one over the radix, in radix-major order
    sums = RadixSoftmax(4, groups=2)(x).view(3, 4, 2, 5).sum(1)
    assert torch.allclose(sums, torch.ones_like(sums))


def test_radix_sum_adds_the_splits() -> None:
    x = torch.randn(2, 3 * 4, 5, 6, dtype=torch.float64)
    assert torch.equal(RadixSum(3)(x), x[:, :4] + x[:, 4:8] + x[:, 8:])


def test_shape_rules_and_the_radix_that_does_not_divide() -> None:
    assert OPS["radix_sum"].shape([(12, 5, 5)], {"radix": 3}) == (4, 5, 5)
    assert OPS["radix_softmax"].shape([(16, 1, 1)], {"radix": 4, "groups": 2}) == (16, 1, 1)
    assert OPS["radix_combine"].shape([(12, 1, 1), (12, 5, 5)], {"radix": 3}) == (4, 5, 5)
    with pytest.raises(ShapeError) as caught:
        OPS["radix_sum"].shape([(30, 4, 4)], {"radix": 4})
    assert caught.value.code == "E398" and "4" in caught.value.message and "30" in caught.value.message
    with pytest.raises(ShapeError) as caught:
        OPS["radix_softmax"].shape([(12, 1, 1)], {"radix": 4, "groups": 2})
    assert caught.value.code == "E398" and "radix * groups 8" in caught.value.message
    with pytest.raises(ShapeError) as caught:
        OPS["radix_combine"].shape([(10, 1, 1), (10, 5, 5)], {"radix": 4})
    assert caught.value.code == "E398"
    with pytest.raises(ShapeError) as caught:  # weights of other channels than the splits
        OPS["radix_combine"].shape([(8, 1, 1), (12, 5, 5)], {"radix": 2})
    assert caught.value.code == "E308"


def test_a_radix_that_does_not_divide_is_reported_at_its_line(tmp_path: Path) -> None:
    text = SPEC.replace("    radix_sum(radix)", "    radix_sum(3)")  # 32 and 12 channels: 3 divides only 12
    with pytest.raises(ResdslError) as caught:
        resdsl.compile(_spec(tmp_path, text))
    line = text.splitlines().index("    radix_sum(3)") + 1
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E398", line, 5)
    assert "radix 3 does not divide the 32 input channels" in diagnostic.message and diagnostic.help


def test_build_model_has_the_split_attention_keys_and_generated_code_equals_it(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, SPEC))
    layers = {layer.path: layer for layer in net.layers()}
    assert layers["s4.radix_sum"].shape == (8, 13, 11) and layers["s4.radix_combine"].shape == (8, 13, 11)
    built = resdsl.build_model(net).double()
    assert [k for k in built.state_dict() if k.startswith("s4.") and k.endswith("weight")] == [
        "s4.conv.weight",
        "s4.bn0.weight",
        "s4.fc1.weight",
        "s4.fc2.weight",
    ]
    module = _generated(net, tmp_path)
    made: Any = module.splats().double()
    state = _fill(built)
    built.load_state_dict(state)
    made.load_state_dict(state)
    x = torch.randn(2, 3, 13, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        built.train(train), made.train(train)
        with torch.no_grad():
            assert torch.equal(made(x), built(x))
    made.eval(), built.eval()
    with torch.no_grad():
        assert torch.equal(torch.jit.script(made)(x), built(x))
    source = Path(module.__file__).read_text()
    assert "class RadixSoftmax(nn.Module)" in source and "class RadixSum(nn.Module)" in source
    # the merge reads the block's radix through an attribute, so one class serves radix 4 and 1
    assert "self.radix = radix" in source and "act0_out.unflatten(1, (self.radix, -1)) * out.unflatten" in source


def test_onnx_equals_build_model(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    onnx_model = onnx_equals_build_model(_spec(tmp_path, SPEC), x)  # the batch dynamic
    ops = {node.op_type for node in onnx_model.graph.node}
    assert {"ReduceSum", "Softmax", "Transpose", "Reshape", "Sigmoid"} <= ops
