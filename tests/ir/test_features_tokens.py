"""Feature outputs of a transformer: the token sequences of named layers (the class token's
layer, the blocks and one block inside them, the final norm), N x C each with timm's reduction (the
patch size), equal to the built network's own values, in build_model and in generated code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import resdsl
from resdsl.diagnostics import ResdslError
from tests.conftest import deterministic_fill, state_listing

FEATURES = ["cls_token", "blocks.5", "blocks", "norm"]


def _filled() -> torch.nn.Module:
    model = resdsl.build_model("vit_tiny_patch16_224")
    model.load_state_dict(deterministic_fill(state_listing(model)))
    return model.double().eval()


def test_transformer_features_are_token_sequences() -> None:
    full = _filled()
    model = resdsl.build_model("vit_tiny_patch16_224", features=FEATURES).double().eval()
    model.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("head.")}, strict=True)
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        ("cls_token", 192, 16),
        ("blocks", 192, 16),
        ("blocks.5", 192, 16),
        ("norm", 192, 16),
    ]
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model(x)
        tokens = torch.cat([full.cls_token.expand(2, -1, -1), full.patch_embed(x)], 1)
        assert torch.equal(got["cls_token"], tokens)
        tokens = tokens + full.pos_embed
        assert torch.equal(got["blocks.5"], full.blocks[:6](tokens))
        assert torch.equal(got["blocks"], full.blocks(tokens))
        assert torch.equal(got["norm"], full.norm(full.blocks(tokens)))


def test_generated_features_equal_the_built_ones(tmp_path: Path) -> None:
    path = tmp_path / "vit_features.py"
    path.write_text(resdsl.generate("vit_tiny_patch16_224", features=FEATURES))
    loader = importlib.util.spec_from_file_location("vit_features", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    built = resdsl.build_model("vit_tiny_patch16_224", features=FEATURES).double().eval()
    made = module.vit_tiny_patch16_224().double().eval()
    made.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        want, got = built(x), made(x)
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_the_pooled_features_are_no_feature() -> None:
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model("vit_tiny_patch16_224", features=["pool"])
    (found,) = exc.value.diagnostics
    assert found.code == "E741" and "'pool' gives 192" in found.message
