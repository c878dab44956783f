"""``linspace``: torch's float32 linspace computed without torch (resdsl/semantics/float32.py),
the values timm's drop-path schedules are made of."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import resdsl
from resdsl.semantics.float32 import linspace, to_float32
from tests.backends.codegen.test_codegen import load_module


def test_linspace_is_torchs_value_for_value() -> None:
    """Every value equal to torch.linspace's, over thousands of inputs: timm's rates (0 to r over
    0 to 70 blocks), and random ends of either sign over up to 200 steps. (10,070 inputs agreed
    when it was written; this keeps a third of them.)"""
    rng = random.Random(0)
    cases = [(0.0, r / 100, n) for r in range(0, 101, 3) for n in range(71)]
    cases += [(rng.uniform(-5, 5), rng.uniform(-5, 5), rng.randint(0, 200)) for _ in range(400)]
    for start, stop, steps in cases:
        assert linspace(start, stop, steps) == torch.linspace(start, stop, steps).tolist(), (start, stop, steps)


def test_float32_rounding_is_to_the_nearest_even() -> None:
    assert to_float32(0.1) == torch.tensor(0.1, dtype=torch.float32).item() != 0.1
    assert to_float32(1 + 2**-24) == 1.0 and to_float32(1 + 3 * 2**-24) == 1 + 2**-22


@pytest.mark.parametrize(
    ("name", "rates"),
    [
        ("vit_tiny_patch16_224", lambda m: [b.drop_path1.drop_prob for b in m.blocks]),
        ("convnext_atto", lambda m: [b.drop_path.drop_prob for s in m.stages for b in s.blocks]),
        ("regnetx_002", lambda m: [b.drop_path.drop_prob for s in (m.s1, m.s2, m.s3, m.s4) for b in s.children()]),
    ],
)
def test_drop_path_schedules_are_timms_float32_linspace(name: str, rates: object) -> None:
    """ViT, ConvNeXt and RegNet space their drop-path rates with torch.linspace, as timm does: the
    float64 ``rate * i / (n - 1)`` differs in the last float32 bits, enough to move a float64
    training forward by 1e-9. The built model and the generated module hold timm's values."""
    with torch.device("meta"):
        model = resdsl.build_model(name, params={"drop_path_rate": 0.3})
    got = rates(model)  # type: ignore[operator]
    assert got == torch.linspace(0, 0.3, len(got)).tolist() and got[1] != 0.3 / (len(got) - 1)


def test_generated_code_spaces_rates_with_torch_linspace(tmp_path: Path) -> None:
    code = resdsl.generate("vit_tiny_patch16_224")
    assert 'torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()' in code  # as timm: meta-safe
    path = tmp_path / "vit.py"
    path.write_text(code)
    with torch.device("meta"):
        model = load_module(path).vit_tiny_patch16_224(drop_path_rate=0.2)
    assert [b.drop_path1.drop_prob for b in model.blocks] == torch.linspace(0, 0.2, 12).tolist()


def test_linspace_refuses_negative_steps() -> None:
    spec = "network n() {\n    input 3 x 8 x 8\n    d = drop_path(linspace(0, 0.1, -2)[0])\n}\n"
    with pytest.raises(resdsl.ResdslError, match=r"E213.*must not be negative"):
        resdsl.compile(spec)
