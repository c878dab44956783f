"""res2_hierarchy (resdsl/ops/hierarchy.py), Res2Net's hierarchical split, in every form: its
modules are attributes of the enclosing block with timm's names; build_model equals a
reference written here from the paper's description (float64, eval and train); generated
code, ONNX and the inference fold equal build_model; its counts follow from its convs and
batchnorms; and its mistakes are diagnostics (E310, E213, E206, E217)."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resdsl
from resdsl.backends.codegen import generate
from resdsl.backends.onnx import onnx_model
from resdsl.diagnostics import ResdslError
from tests.conftest import FLOAT32_TOL, rel_error

# two blocks: the first strides and projects (first=true: chunks alone, last chunk pooled), the
# second adds each chunk's predecessor; grouped 3x3 convs as in Res2NeXt
SPEC = """
block b2(planes, width, scale, stride = 1, groups = 1, first = false) {
    conv1 = conv(width * scale, k=1)
    bn1   = batchnorm()
    relu
    res2_hierarchy(width, scale, s=stride, groups=groups, first=first)
    conv3 = conv(planes, k=1)
    bn3   = batchnorm()
    residual(projection)
    relu
}

network h(scale = 3, groups = 2) {
    input 3 x 15 x 15
    stem  = conv(8, k=3, p=1)
    layer = stage(b2(24, 4, scale, groups=groups, first=index == 0), repeat=2, stride=2)
    pool  = global_avgpool()
    fc    = linear(5)
}
"""
_names = itertools.count()


def _spec(tmp_path: Path, text: str = SPEC) -> str:
    path = tmp_path / f"h{next(_names)}.arch"
    path.write_text(text)
    return str(path)


def _filled(model: torch.nn.Module) -> torch.nn.Module:
    """Distinct values everywhere, variances above zero, in float64."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.5
    model.load_state_dict(state)
    return model.double()


def _reference(block: torch.nn.Module, x: torch.Tensor, width: int, first: bool, stride: int, groups: int) -> Any:
    """The hierarchy as the paper describes it, from the block's own weights: chunk i (after
    adding the previous result, except in a first block) through conv-BN-ReLU, the last chunk
    as is or average-pooled (3 x 3, padding counted) to the stride; concatenated."""
    chunks = torch.split(x, width, 1)
    outs, sp = [], chunks[0]
    for i in range(len(chunks) - 1):
        sp = chunks[i] if i == 0 or first else sp + chunks[i]
        bn = block.bns[i]
        sp = F.conv2d(sp, block.convs[i].weight, stride=stride, padding=1, groups=groups)
        sp = F.batch_norm(sp, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias, block.training)
        sp = torch.relu(sp)
        outs.append(sp)
    outs.append(F.avg_pool2d(chunks[-1], 3, stride, 1) if first else chunks[-1])
    return torch.cat(outs, 1)


def test_its_modules_are_the_blocks_with_timms_names(tmp_path: Path) -> None:
    model = resdsl.build_model(_spec(tmp_path))
    keys = [k for k in model.state_dict() if k.startswith("layer.0.")]
    assert keys[:6] == [f"layer.0.{k}" for k in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean")] + [
        "layer.0.bn1.running_var",
        "layer.0.bn1.num_batches_tracked",
    ]
    assert [k for k in keys if ".convs." in k] == ["layer.0.convs.0.weight", "layer.0.convs.1.weight"]
    assert keys.index("layer.0.bns.1.num_batches_tracked") < keys.index("layer.0.conv3.weight")
    first, second = model.layer[0], model.layer[1]
    assert isinstance(first.pool, torch.nn.AvgPool2d) and first.pool.stride == 2 and second.pool is None
    assert first.width == 4 and tuple(first.convs[0].weight.shape) == (4, 2, 3, 3)  # groups=2


@pytest.mark.parametrize("train", [False, True])
def test_build_model_equals_the_papers_hierarchy(tmp_path: Path, train: bool) -> None:
    model = _filled(resdsl.build_model(_spec(tmp_path))).train(train)
    x = torch.randn(2, 8, 15, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for block, stride, first in ((model.layer[0], 2, True), (model.layer[1], 1, False)):
        seen: dict[str, torch.Tensor] = {}
        hook = block.conv3.register_forward_pre_hook(lambda m, i, seen=seen: seen.update(input=i[0].clone()))
        h = torch.relu(block.bn1(block.conv1(x)))
        state = {k: v.clone() for k, v in block.state_dict().items()}
        with torch.no_grad():
            x_next = block(x)
        block.load_state_dict(state)  # train mode moved the running statistics: the reference starts where it did
        with torch.no_grad():
            want = _reference(block, h.detach(), 4, first, stride, 2)
        hook.remove()
        assert rel_error(seen["input"], want) < 1e-12
        x = x_next


@pytest.mark.parametrize("train", [False, True])
def test_generated_code_equals_build_model(tmp_path: Path, train: bool) -> None:
    spec = _spec(tmp_path)
    path = tmp_path / "gen_h.py"
    path.write_text(generate(resdsl.compile(spec)))
    loaded = importlib.util.spec_from_file_location("gen_h", path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    built = _filled(resdsl.build_model(spec))
    gen = module.h().double()
    assert list(gen.state_dict()) == list(built.state_dict())
    gen.load_state_dict(built.state_dict())
    x = torch.randn(2, 3, 15, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert rel_error(gen.train(train)(x), built.train(train)(x)) < 1e-12
    scripted = torch.jit.script(gen.eval())
    with torch.no_grad():
        assert rel_error(scripted(x), built.eval()(x)) < 1e-12


def test_onnx_equals_build_model_and_lowers_to_the_listed_nodes(tmp_path: Path) -> None:
    import onnxruntime as ort

    net = resdsl.compile(_spec(tmp_path))
    model = resdsl.build_model(net).eval()
    weights = {k: v.numpy().copy() for k, v in _filled(model).float().state_dict().items()}
    x = torch.randn(2, 3, 15, 15, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model.double()(x.double()).numpy()
    graph = onnx_model(net, weights, fold=False)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert float(np.abs(got - want).max() / np.abs(want).max()) < FLOAT32_TOL
    ops = {node.op_type for node in graph.graph.node}
    assert {"Split", "Conv", "BatchNormalization", "Relu", "Add", "AveragePool", "Concat"} <= ops
    names = {t.name for t in graph.graph.initializer}
    assert {"layer.0.convs.1.weight", "layer.1.bns.0.running_var"} <= names


def test_the_inference_build_folds_the_bns_into_the_convs(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    trained = _filled(resdsl.build_model(spec)).float().eval()
    folded = resdsl.build_model(spec, mode="inference", weights=trained.state_dict(), channels_last=False)
    keys = list(folded.state_dict())
    assert not any(".bns." in k for k in keys) and "layer.1.convs.0.bias" in keys
    x = torch.randn(2, 3, 15, 15, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert rel_error(folded(x), trained(x)) < FLOAT32_TOL


def test_its_counts_are_its_convs_and_batchnorms(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path))
    layer = next(la for la in net.layers() if la.op == "res2_hierarchy")
    assert layer.shape == (12, 8, 8)  # 15 x 15 at stride 2, padding 1
    assert layer.params == 2 * (4 * 2 * 9 + 2 * 4)  # scale - 1 grouped 3x3 convs and their batchnorms
    assert layer.macs == 2 * 4 * 8 * 8 * 2 * 9
    assert math.prod(layer.shape) == 12 * 64


def _diagnostic(tmp_path: Path, body: str) -> Any:
    text = "network t() {\n    input 3 x 16 x 16\n" + body + "}\n"
    with pytest.raises(ResdslError) as caught:
        resdsl.compile(_spec(tmp_path, text))
    return caught.value.diagnostics[0]


def test_a_split_that_does_not_divide_the_channels_is_e310_with_both_numbers(tmp_path: Path) -> None:
    d = _diagnostic(tmp_path, "    stem = conv(64, k=1)\n    res2_hierarchy(26, 4)\n")
    assert (d.code, d.span.line, d.span.column) == ("E310", 4, 5)
    assert "104" in d.message and "64" in d.message and d.help and "104" in d.help


def test_a_stride_outside_a_first_block_and_a_scale_below_two_are_refused(tmp_path: Path) -> None:
    d = _diagnostic(tmp_path, "    stem = conv(8, k=1)\n    res2_hierarchy(4, 2, s=2)\n")
    assert d.code == "E213" and "first=true" in d.message
    d = _diagnostic(tmp_path, "    stem = conv(8, k=1)\n    res2_hierarchy(8, 1)\n")
    assert d.code == "E213" and "at least 2" in d.message


def test_a_name_its_attributes_take_is_e206_and_sequential_refuses_it(tmp_path: Path) -> None:
    d = _diagnostic(tmp_path, "    stem = conv(8, k=1)\n    res2_hierarchy(4, 2)\n    convs = conv(8)\n")
    assert d.code == "E206" and "convs" in d.message
    d = _diagnostic(tmp_path, "    pool = conv(8, k=1)\n    res2_hierarchy(4, 2)\n")
    assert d.code == "E206" and "'pool'" in d.message and d.span.line == 4
    d = _diagnostic(tmp_path, "    stem = sequential(conv(8, k=1), res2_hierarchy(4, 2))\n")
    assert d.code == "E217"
