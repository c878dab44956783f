"""resdsl.import_model on models written the way timm writes Res2Net and ResNeSt and torchvision
writes DenseNet (tests/importing/models_ops.py): their tensor code (a split into chunks, reshapes
into radix splits, a list of earlier maps) comes back as resdsl's library ops, and the spec
rebuilds the model exactly (verified by the importer, and again here in float64, eval and train)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import resdsl
from resdsl.diagnostics import Diagnostic, ResdslError
from tests.importing import models_ops, models_timm
from tests.importing.roundtrip import import_and_check

CIFAR = (3, 32, 32)


def _refusal(model: nn.Module) -> Diagnostic:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(model, None, CIFAR)
    (d,) = info.value.diagnostics
    return d


def _resnest() -> nn.Module:
    return models_ops.TimmResNet(models_ops.ResNestBottleneck, deep=True, avg_down=True, avd_every=True)


# (the model, lines its spec must hold)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...]]] = {
    "res2net": (
        lambda: models_ops.TimmResNet(models_ops.Bottle2neck),
        (
            "    res2_hierarchy(width=planes // 4, scale=4, s=stride, first=first)\n",
            "layer2 = stage(bottle2neck(52, first=true if index == 0 else false",
            "global_pool = select_adaptive_pool2d()",
        ),
    ),
    "res2next": (
        lambda: models_ops.TimmResNet(models_ops.Bottle2neck, cardinality=4, base_width=4, scale=2),
        ("    res2_hierarchy(width=planes // 2, scale=2, s=stride, groups=4, first=first)\n",),
    ),
    "res2net_original": (
        lambda: models_ops.TimmResNet(models_ops.Bottle2neckOriginal),
        ("    res2_hierarchy(width=planes // 4, scale=4, s=stride, first=first)\n",),
    ),
    "res2net_chunks": (
        lambda: models_ops.TimmResNet(models_ops.Bottle2neckOriginal, scale=2, base_width=48, chunk=True),
        ("    res2_hierarchy(width=planes // 2, scale=2, s=stride, first=first)\n",),
    ),
    "split_attention": (
        _resnest,
        (
            "conv2 = split_attn(planes * 2, fc1_out=conv2_fc1_out)",
            "    radix_sum(radix=2)\n",
            "    rsoftmax = radix_softmax(radix=2)\n",
            "    radix_combine(radix=2, splits=act0)\n",
            "residual(avgpool_projection)",
        ),
    ),
    "torchvision_densenet": (
        models_ops.DenseNet,
        (
            'denseblock2 = stage(dense_layer(), repeat=3, prefix="denselayer", start=1)',
            "transition1 = transition(16)",
            "block transition(planes) {",
            "    conv2 = conv(8, k=3, p=1)\n    concat\n}",
            "features = sequential_()",
        ),
    ),
    "dense_blocks_in_the_network": (
        models_ops.DenseBlocks,
        (
            'denseblock1 = stage(dense_layer(), repeat=2, prefix="denselayer", start=1)',
            'denseblock2 = stage(dense_layer2(), repeat=3, prefix="denselayer", start=1)',
        ),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_tensor_code_comes_back_as_library_ops(name: str) -> None:
    factory, lines = CASES[name]
    source = import_and_check(factory(), CIFAR)
    missing = [line for line in lines if line not in source]
    assert not missing, f"{missing} not in\n{source}"


class Gated(nn.Module):
    """A split whose chunks go through a sigmoid: no hierarchy of the language."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv(x), 4, 1)
        return torch.cat([torch.sigmoid(a), b], 1)  # no hierarchy


def test_a_split_that_is_no_hierarchy_is_refused() -> None:
    d = _refusal(Gated())
    assert d.code == "E903" and "`split` in `Gated.forward`" in d.message


class RadixSoftmax(nn.Module):
    """Named like timm's, but a softmax over the channels: not radix_softmax."""

    def __init__(self, radix: int, cardinality: int) -> None:
        super().__init__()
        self.radix, self.cardinality = radix, cardinality

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.softmax(1)


class SoftHolder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.rsoftmax = RadixSoftmax(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rsoftmax(self.conv(x))


def test_a_module_named_like_a_runtime_op_that_computes_otherwise_is_refused() -> None:
    d = _refusal(SoftHolder())
    assert d.code == "E903" and "`softmax` in `rsoftmax.forward`" in d.message


class Stages(nn.Module):
    """A block holding a stage of blocks, whose width the constructor sets."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 16, 1, bias=False)
        self.blocks = nn.Sequential(models_timm.Widening(16, width), models_timm.Widening(width, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv(x))


class TwoStages(nn.Module):
    """Two blocks holding a stage that widens block by block, to ``widths``."""

    def __init__(self, widths: tuple[int, int] = (24, 32)) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.first = Stages(widths[0])
        self.second = Stages(widths[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(self.stem(x)))


def test_a_stage_inside_a_block_that_differs_between_instances_is_refused() -> None:
    d = _refusal(TwoStages())
    assert d.code == "E904" and "a stage inside a block differs" in d.message and "stage(widening(" in d.message
    assert "`24 if index == 0 else 16`; `32 if index == 0 else 16`" in d.message


def test_a_stage_inside_a_block_that_widens_block_by_block_the_same_in_every_instance_imports() -> None:
    source = import_and_check(TwoStages((24, 24)), CIFAR)
    assert "stage(widening(24 if index == 0 else 16" in source
