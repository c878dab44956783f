"""Vision transformers written the way timm writes them import as specs that read like
std/vit.arch (one block, one stage, the token ops), with timm's keys and float64 outputs in eval
and train mode (:mod:`tests.importing.models_vit`); timm's Linear subclass is ``linear``; an
attention module the op does not express is refused saying what it has (E903)."""

from __future__ import annotations

import pytest
import torch

import resdsl
from resdsl.diagnostics import ResdslError
from tests.importing.models_vit import LinearHead, VisionTransformer, deit3_like
from tests.importing.roundtrip import import_and_check

SHAPE = (3, 32, 32)  # 4 x 4 patches of 8: 16 tokens, 17 with the class token


def test_vit_reads_as_patch_embed_class_token_pos_embed_a_stage_and_token_pool() -> None:
    torch.manual_seed(0)
    source = import_and_check(VisionTransformer(), SHAPE, "vit")
    body = source.split("network vit() {")[1]
    for line in (
        "patch_embed = patch_embed(dim=16, patch=8)",
        "cls_token = class_token()",
        "pos_embed = pos_embed(length=17)",
        "blocks = stage(block_(), repeat=3)",
        "norm = layernorm(eps=1e-06)",
        "token_pool\n",
        "head = linear(10)",
    ):
        assert line in body
    assert body.index("cls_token") < body.index("pos_embed =") < body.index("blocks")
    block = source.split("block block_() {")[1].split("}")[0]
    assert "attn = attention(heads=2)" in block and block.count("residual(identity)") == 2
    assert source.count("\nblock ") == 2 and len(source.splitlines()) < 60  # block_ and mlp


def test_deit3_layer_scale_and_a_class_token_without_position() -> None:
    torch.manual_seed(0)
    source = import_and_check(deit3_like(), SHAPE, "deit3")
    # timm adds the 16 positions before it puts the class token first: the same sums after it
    assert "pos_embed = pos_embed(length=16, skip=1)" in source
    assert source.index("cls_token = class_token()") < source.index("pos_embed = pos_embed(")
    assert "ls1 = layer_scale_()" in source and "ls2 = layer_scale_()" in source
    assert "block layer_scale_() {\n    gamma = layer_scale()\n}" in source  # keys blocks.i.ls1.gamma


def test_an_average_pool_over_the_patch_tokens_and_a_qkv_without_bias() -> None:
    torch.manual_seed(0)
    source = import_and_check(VisionTransformer(global_pool="avg", qkv_bias=False), SHAPE, "vit_avg")
    assert 'token_pool(pool="avg")' in source and "fc_norm = layernorm(eps=1e-06)" in source
    assert "attention(heads=2, qkv_bias=false)" in source


def test_no_class_token_averages_every_token() -> None:
    # timm's class_token=False: x[:, 0:].mean(dim=1), a position for each of the 16 patches
    torch.manual_seed(0)
    source = import_and_check(VisionTransformer(class_token=False, global_pool="avg"), SHAPE, "vit_gap")
    assert "class_token" not in source and "pos_embed = pos_embed(length=16)" in source
    assert 'token_pool(pool="avg", prefix=0)' in source


@pytest.mark.slow
def test_drop_path_that_grows_over_the_blocks_keeps_the_first_blocks_identity() -> None:
    # timm's dpr: 0 in the first block (an nn.Identity there), then DropPath modules; the
    # importer's own train-mode comparison seeds both models alike
    source = resdsl.import_model(VisionTransformer(drop_path_rate=0.1), "vit_dpr", SHAPE)
    assert "drop_path1 = drop_path(p=drop_path1_p) if has_drop_path1 else identity" in source
    assert "has_drop_path1=false if index == 0 else true" in source


def test_timm_linear_subclass_is_linear() -> None:
    source = import_and_check(LinearHead(), (3, 8, 8))
    assert "classifier = linear(10)" in source


def test_attention_with_a_query_key_norm_is_refused_saying_so() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(VisionTransformer(qk_norm=True), "vit", SHAPE)
    d = info.value.diagnostics[0]
    assert d.code == "E903" and "`blocks.0.attn` is attention that the `attention` op does not express" in d.message
    assert "`q_norm` is a LayerNorm" in d.message and any("models_vit.py" in n for n in d.notes)


def test_attention_with_dropout_is_refused_saying_so() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(VisionTransformer(attn_drop=0.1), "vit", SHAPE)
    d = info.value.diagnostics[0]
    assert d.code == "E903" and "`attn_drop` drops with p=0.1 (the op has no dropout)" in d.message


def test_a_patch_embed_that_overlaps_is_no_patch_embed() -> None:
    # a conv whose stride is not its kernel is no patch_embed: traced as a block, its
    # flatten(2).transpose(1, 2) has no op
    model = VisionTransformer()
    model.patch_embed.proj = torch.nn.Conv2d(3, 16, 8, stride=8, padding=1)
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(model, "vit", SHAPE)
    d = info.value.diagnostics[0]
    assert d.code == "E903" and "in `patch_embed.forward` has no op" in d.message


def test_a_model_changed_after_an_import_is_read_as_it_is_now() -> None:
    model = VisionTransformer()
    resdsl.import_model(model, "vit", SHAPE)
    model.blocks[1].attn.proj_drop = torch.nn.Dropout(0.2)
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(model, "vit", SHAPE)
    d = info.value.diagnostics[0]
    assert d.code == "E903" and "`blocks.1.attn`" in d.message and "`proj_drop` drops with p=0.2" in d.message
