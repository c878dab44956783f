"""The inference build of a transformer: nothing to fold (no batchnorm), the same keys, and the
same float64 outputs as the training build in eval mode."""

from __future__ import annotations

import torch

import resdsl
from tests.conftest import SAME_MACHINE_TOL, deterministic_fill, rel_error, state_listing


def test_inference_build_of_a_vit_equals_eval_mode() -> None:
    trained = resdsl.build_model("deit3_small_patch16_224")
    trained.load_state_dict(deterministic_fill(state_listing(trained)))
    inference = resdsl.build_model("deit3_small_patch16_224", mode="inference")
    assert list(inference.state_dict()) == list(trained.state_dict())
    inference.load_state_dict(trained.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert rel_error(inference.double().eval()(x), trained.double().eval()(x)) < SAME_MACHINE_TOL
