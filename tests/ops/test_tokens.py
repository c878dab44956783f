"""The token ops (resdsl/ops/tokens.py) and the ops that take tokens: shapes N x C checked
statically with their costs, attention and pooling against their formulas in float64, the
generated module equal to build_model in float64 (eval and train), onnxruntime equal to build_model
(float32 under test, FLOAT32_TOL), and the attention, patch and position diagnostics with both
numbers. The shipped ViTs' exactness against timm is in tests/test_family.py."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import resdsl
from resdsl.backends.codegen import generate
from resdsl.ops import channels_of, is_tokens
from resdsl.runtime.layers import Attention, TokenPool
from tests.conftest import FLOAT32_TOL, SAME_MACHINE_TOL, deterministic_fill, rel_error, state_listing

# a two-block transformer on 4 x 4 patches of 8 pixels: 16 patch tokens and a class token of 32
# channels, 4 heads, layer scale and the mean of the patch tokens as its features
SPEC = """
block mlp(hidden, out_features) {
    fc1 = linear(hidden)
    act = gelu
    fc2 = linear(out_features)
}

block enc(dim, heads, drop = 0.0) {
    norm1 = layernorm(eps=1e-6)
    attn  = attention(heads)
    gamma1 = layer_scale(0.5)
    drop_path(drop)
    residual(identity)
    norm2 = layernorm(eps=1e-6)
    mlp   = mlp(dim * 4, dim)
    gamma2 = layer_scale(0.5)
    drop_path(drop)
    residual(identity)
}

network toy(dim = 32, heads = 4, pool = "avg") {
    input 3 x 32 x 32
    patch_embed = patch_embed(dim, 8)
    cls_token   = class_token()
    pos_embed   = pos_embed(17)
    blocks      = stage(enc(dim, heads, drop=0.25 * index), repeat=2)
    norm        = layernorm(eps=1e-6)
    token_pool(pool)
    head        = linear(10)
}
"""


@pytest.fixture()
def spec(tmp_path: Path) -> str:
    path = tmp_path / "toy.arch"
    path.write_text(SPEC)
    return str(path)


def _layers(spec: str, **overrides: Any) -> dict[str, Any]:
    return {layer.path or layer.op: layer for layer in resdsl.compile(spec, **overrides).layers()}


def test_tokens_are_n_by_c_with_the_channels_last() -> None:
    assert is_tokens((197, 192)) and not is_tokens((192, 14, 14)) and not is_tokens((192,))
    assert channels_of((197, 192)) == 192 and channels_of((64, 8, 8)) == 64 and channels_of((10,)) == 10


def test_token_shapes_and_costs_are_checked_statically(spec: str) -> None:
    layers = _layers(spec)
    embed = layers["patch_embed"]
    assert embed.shape == (16, 32) and embed.params == 32 * 3 * 8 * 8 + 32 and embed.macs == 16 * 32 * 3 * 64
    assert layers["cls_token"].shape == (17, 32) and layers["cls_token"].params == 32
    assert layers["pos_embed"].shape == (17, 32) and layers["pos_embed"].params == 17 * 32
    attn = layers["blocks.0.attn"]
    assert attn.shape == (17, 32)
    assert attn.params == 4 * 32 * 32 + 3 * 32 + 32  # qkv and proj, with their biases
    # qkv and proj as linears over 17 tokens, and the two products of attention over all heads
    assert attn.macs == 4 * 17 * 32 * 32 + 2 * 17 * 17 * 32
    fc1 = layers["blocks.0.mlp.fc1"]
    assert fc1.shape == (17, 128) and fc1.params == 32 * 128 + 128 and fc1.macs == 17 * 32 * 128
    assert layers["blocks.0.norm1"].params == 64 and layers["blocks.0.gamma1"].params == 32
    assert layers["token_pool"].shape == (32,) and layers["head"].shape == (10,)


def test_attention_is_the_softmax_of_scaled_products() -> None:
    torch.manual_seed(0)
    attn = Attention(32, 4).double()
    x = torch.randn(2, 17, 32, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = (attn.qkv(x).reshape(2, 17, 3, 4, 8).permute(2, 0, 3, 1, 4)).unbind(0)
        weights = (q @ k.transpose(-2, -1) / math.sqrt(8)).softmax(-1)
        want = attn.proj((weights @ v).transpose(1, 2).reshape(2, 17, 32))
        assert rel_error(attn(x), want) < SAME_MACHINE_TOL


def test_token_pool_takes_the_class_token_or_the_mean_of_the_others() -> None:
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert torch.equal(TokenPool("token")(x), x[:, 0])
    assert torch.equal(TokenPool("avg", 1)(x), x[:, 1:].mean(1))


def test_build_model_keys_are_timms(spec: str) -> None:
    keys = list(resdsl.build_model(spec).state_dict())
    assert keys[:4] == ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    assert "blocks.1.attn.qkv.weight" in keys and "blocks.1.attn.proj.bias" in keys
    assert "blocks.0.gamma1" in keys and keys[-2:] == ["head.weight", "head.bias"]


def test_generated_code_equals_build_model_in_float64(spec: str, tmp_path: Path) -> None:
    net = resdsl.compile(spec)
    path = tmp_path / "toy_gen.py"
    path.write_text(generate(net))
    loader = importlib.util.spec_from_file_location("toy_gen", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    built, made = resdsl.build_model(net).double(), module.toy().double()
    state = deterministic_fill(state_listing(built))
    built.load_state_dict(state)
    made.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(built.eval()(x), made.eval()(x))
        torch.manual_seed(3)  # drop_path draws: the same seed gives the same masks
        want = built.train()(x)
        torch.manual_seed(3)
        assert torch.equal(made.train()(x), want)
    source = path.read_text()
    assert "F.scaled_dot_product_attention(q, k, v)" in source
    assert "torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)" in source


def test_torchscript_runs_the_built_transformer(spec: str) -> None:
    model = resdsl.build_model(spec).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert rel_error(torch.jit.script(model)(x), model(x)) < SAME_MACHINE_TOL


@pytest.mark.parametrize("pool", ["avg", "token"])
def test_onnx_equals_build_model(spec: str, pool: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from resdsl.backends.onnx import onnx_model

    net = resdsl.compile(spec, params={"pool": f'"{pool}"'})  # a value as the language writes it
    model = resdsl.build_model(net).eval()
    model.load_state_dict(deterministic_fill(state_listing(model)))
    weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(onnx_model(net, weights).SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model.double()(x.double()).numpy()
    assert float(np.abs(got - want).max() / np.abs(want).max()) < FLOAT32_TOL  # float32: onnxruntime


def _diagnostics(tmp_path: Path, body: str) -> list[Any]:
    path = tmp_path / "bad.arch"
    path.write_text(f"network n() {{\n    input 3 x 32 x 32\n{body}}}\n")
    return list(resdsl.check(str(path)).diagnostics)


@pytest.mark.parametrize(
    ("body", "code", "numbers"),
    [
        ("    e = patch_embed(192, 8)\n    a = attention(5)\n", "E311", ["192", "num_heads=5", "38.4"]),
        ("    e = patch_embed(64, 5)\n", "E312", ["32", "patch size 5", "6 * 5 + 2"]),
        (
            "    e = patch_embed(64, 8)\n    c = class_token()\n    p = pos_embed(16)\n",
            "E313",
            ["16 positions", "17 tokens"],
        ),
        ("    c = conv(8)\n    a = attention(2)\n", "E307", ["8 x 32 x 32"]),
        ("    e = patch_embed(64, 8)\n    c = conv(8)\n", "E307", ["16 x 64"]),
    ],
)
def test_token_rules_are_diagnostics_with_both_numbers(
    tmp_path: Path, body: str, code: str, numbers: list[str]
) -> None:
    (found,) = _diagnostics(tmp_path, body)
    assert found.code == code and found.span.line == 2 + body.count("\n")
    assert all(n in found.message for n in numbers), found.message
