"""Feature outputs inside stages and sequential groups (issue #18: "feature outputs at any
block"): timm's EfficientNet and MobileNet features are ``blocks.1`` ... ``blocks.6``, stages of
the one ``blocks`` group; a detector may read ``layer3.5``, a block of a ResNet stage.

Each requested map is held to the full model's own module output (a forward hook on the full
model, float64), in both back ends, scripted too; the cut keeps only what runs before the last
one, inside a stage as well.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import resdsl
from resdsl.diagnostics import ResdslError

TWICE = """
block chain(c) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    relu
}
network twice() {
    input 3 x 16 x 16
    b1 = chain(8)
    b2 = chain(8)
}
"""
CASES = [
    ("mobilenetv2_100", ["blocks.1", "blocks.2", "blocks.4", "blocks.6"]),  # timm's feature_info modules
    ("resnet50", ["layer1.0", "layer2", "layer3.2"]),  # a block of a stage, then a trimmed stage
    ("regnetx_002", ["s2.b1", "s3"]),  # a stage named by prefix and start
    # inside a block whose layers run one after the other (timm's DenseNet feature modules)
    ("densenet121", ["features.norm0", "features.denseblock1", "features.transition2", "features.denseblock3"]),
]


def _hooked(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The full model's outputs of the modules ``names``, from one forward."""
    out: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o.clone()))
        for name in names
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return out


def _generated(name: str, features: list[str], path: Path) -> nn.Module:
    path.write_text(resdsl.generate(name, features=features))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    classes = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == path.stem]
    return classes[-1]()  # the network class is written last


@pytest.mark.parametrize(("name", "features"), CASES)
def test_outputs_inside_groups_equal_the_full_models_modules(name: str, features: list[str], tmp_path: Path) -> None:
    full = resdsl.build_model(name).double().eval()
    model = resdsl.build_model(name, features=features).double().eval()
    kept = model.state_dict()
    assert set(kept) < set(full.state_dict())  # the cut: what runs after the last feature is gone
    model.load_state_dict({k: v for k, v in full.state_dict().items() if k in kept}, strict=True)
    generated = _generated(name, features, tmp_path / f"nested_{name}.py").double().eval()
    generated.load_state_dict(model.state_dict(), strict=True)
    assert generated.feature_info == model.feature_info
    assert [info["module"] for info in model.feature_info] == features
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    want = _hooked(full, features, x)
    with torch.no_grad():
        for got in (model(x), generated(x), torch.jit.script(model)(x), torch.jit.script(generated)(x)):
            assert list(got) == features
            for key, value in got.items():
                assert torch.equal(value, want[key]), key


def test_the_cut_keeps_a_stage_up_to_the_feature_block() -> None:
    model = resdsl.build_model("resnet50", features=["layer3.2"])
    assert len(model.layer3) == 3 and not hasattr(model, "layer4")
    source = resdsl.generate("resnet50", features=["layer3.2"])
    assert "x = self.layer3[2](x)" in source and "self.layer4" not in source
    assert [info["num_chs"] for info in model.feature_info] == [1024]


def test_checkpointing_a_stage_with_a_feature_inside_checkpoints_its_blocks() -> None:
    """Each block of the unrolled stage runs under checkpointing on its own; the gradients are
    the plain model's (to float64 rounding: the feature taken inside layer1 feeds the loss and
    the next block, whose gradients the recomputation sums in another order)."""
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet18", features=["layer1.0", "layer2"]).double().train()
    checked = resdsl.build_model("resnet18", features=["layer1.0", "layer2"], checkpoint=True).double().train()
    checked.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for model in (plain, checked):
        sum(v.square().sum() for v in model(x).values()).backward()
    for (name, a), b in zip(plain.named_parameters(), checked.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        assert torch.allclose(a.grad, b.grad, rtol=1e-12, atol=1e-12 * a.grad.abs().max().item()), name
    source = resdsl.generate("resnet18", features=["layer1.0", "layer2"], checkpoint=True)
    assert "checkpoint_seq([self.layer1[0]], x, self.checkpoint_reentrant)" in source


@pytest.mark.parametrize(
    ("name", "feature", "says"),
    [
        ("resnet50", "layer3.9", "'layer3' has no '9' (its children: 0, 1, 2, 3, 4, 5)"),
        ("resnet50", "layer3.2.conv1", "'layer3.2' is a block: outputs inside a network are taken in stages"),
        ("resnet50", "fc.weight", "'fc' is a single layer"),
        ("densenet121", "features.denseblock1.denselayer1.conv1", "'features.denseblock1.denselayer1' is a block"),
        (TWICE, "b2.conv1", "'b2' is a block"),  # a chain, but its class is b1's too: it cannot be cut
    ],
)
def test_a_path_that_is_not_inside_groups_is_refused_at_its_top_level_statement(
    name: str, feature: str, says: str
) -> None:
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model(name, features=[feature])
    (diagnostic,) = exc.value.diagnostics
    assert diagnostic.code == "E740" and says in diagnostic.message
    assert diagnostic.span.line > 0 and "module path through stages" in (diagnostic.help or "")
