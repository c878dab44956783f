"""resdsl.import_model: torchvision-style models written here come back as specs of blocks and
stages that rebuild them exactly (verified by the importer itself, and again here in float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resdsl
from resdsl.diagnostics import ResdslError
from tests.importing.models import ResNet


def _same(model: nn.Module, source: str, shape: tuple[int, int, int]) -> None:
    built = resdsl.build_model(source, input_shape=shape)
    assert [(k, v.shape) for k, v in built.state_dict().items()] == [
        (k, v.shape) for k, v in model.state_dict().items()
    ]
    built.load_state_dict(model.state_dict())
    x = torch.randn(2, *shape, dtype=torch.float64)
    model, built = model.double().eval(), built.double().eval()
    with torch.no_grad():
        assert torch.equal(model(x), built(x))


def test_resnet50_reads_like_the_shipped_spec() -> None:
    model = ResNet((3, 4, 6, 3), num_classes=10)
    source = resdsl.import_model(model, "resnet50", (3, 32, 32))
    assert source.count("\nblock ") == 1 and source.count("stage(") == 4
    assert "layer2 = stage(bottleneck(128), repeat=4, stride=2)" in source
    assert "conv3 = conv(planes * 4, k=1)" in source and "residual(projection)" in source
    assert len(source.splitlines()) < 150
    _same(model, source, (3, 32, 32))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_control_flow_is_refused_with_its_source_line() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(Branchy(), input_shape=(3, 8, 8))
    (d,) = info.value.diagnostics
    assert d.code == "E901" and "Branchy.forward" in d.message
    assert any("test_importing.py" in note for note in d.notes)


class Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_a_module_without_an_op_names_its_path_and_class() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(Tanh(), input_shape=(3, 8, 8))
    (d,) = info.value.diagnostics
    assert d.code == "E903" and "body.1" in d.message and "torch.nn.modules.activation.Tanh" in d.message


def test_not_a_module() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(42, input_shape=(3, 8, 8))  # type: ignore[arg-type]
    assert info.value.diagnostics[0].code == "E906"


class Plain(nn.Module):
    """A block with no downsample anywhere: its residual is identity."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)) + x)


class Stem(nn.Module):
    """A deep stem (timm's resnet*d) as an nn.Sequential of layers, then one stage of Plain blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False),
        )
        self.layer1 = nn.Sequential(Plain(8), Plain(8))
        self.fc = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.layer1(self.conv1(x)), 1))


def test_identity_blocks_and_a_sequential_stem() -> None:
    model = Stem()
    source = resdsl.import_model(model, "stem", (3, 8, 8))
    assert "residual(identity)" in source and "conv1 = sequential(conv(8, k=3, s=2, p=1), batchnorm, relu" in source
    assert "layer1 = stage(plain(), repeat=2)" in source
    _same(model, source, (3, 8, 8))
