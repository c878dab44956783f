"""The modern families at the input sizes timm's configurations name and at odd ones.

Each alias declares timm's default input (``input 3 x img_size x img_size``, ``img_size`` set per
alias: efficientnet_b1 240 ... b4 320, resnest101e 256, resnetrs50/101/152 160/192/256), and every
family builds and runs at sizes no configuration names (225, 193), where timm's do: the maps before
the pool are those timm's layers give (each stride-2 conv, pool and average shortcut padded to
keep ceil(n / 2); DenseNet's transitions average 2 x 2 windows, floor(n / 2)), and the parameters
are those at the declared size.
"""

from __future__ import annotations

import math

import pytest
import torch

import resdsl

# timm 1.0's pretrained_cfg input_size of each name's default tag (timm/models/*.py default_cfgs)
TIMM_INPUT = {
    "efficientnet_b0": 224,
    "efficientnet_b1": 240,
    "efficientnet_b2": 256,
    "efficientnet_b3": 288,
    "efficientnet_b4": 320,
    "resnest14d": 224,
    "resnest101e": 256,
    "resnetrs50": 160,
    "resnetrs101": 192,
    "resnetrs152": 256,
    "convnext_tiny": 224,
    "densenet121": 224,
    "regnety_004": 224,
    "mobilenetv3_large_100": 224,
}


def _ceil_halves(size: int, times: int) -> int:
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


def _timm_final_map(name: str, size: int) -> int:
    """The side of the map before the global pool in timm's network at ``size``."""
    if name.startswith("convnext"):  # a 4 x 4 stride-4 stem, then three 2 x 2 stride-2 convs
        size = (size - 4) // 4 + 1
        for _ in range(3):
            size = (size - 2) // 2 + 1
        return size
    if name.startswith("densenet"):  # stem conv and max pool keep ceil; three 2 x 2 average pools floor
        return _ceil_halves(size, 2) // 2 // 2 // 2
    return _ceil_halves(size, 5)


@pytest.mark.parametrize(("name", "size"), sorted(TIMM_INPUT.items()))
def test_each_alias_declares_timms_default_input(name: str, size: int) -> None:
    (net,) = resdsl.check(name).networks
    assert net.input_shape == net.declared_input == (3, size, size)


ODD = [
    "convnext_atto",
    "regnetx_002",
    "regnety_004",
    "mobilenetv2_035",
    "mobilenetv3_small_100",
    "efficientnet_b0",
    "densenet121",
    "res2net50_26w_4s",
    "resnest14d",
    "resnetrs50",
]


@pytest.mark.parametrize("size", [225, 193])
@pytest.mark.parametrize("name", ODD)
def test_every_family_builds_and_runs_at_odd_sizes(name: str, size: int) -> None:
    (declared,) = resdsl.check(name).networks
    (net,) = resdsl.check(name, input_shape=(3, size, size)).networks
    assert net.num_params == declared.num_params
    (pool,) = [layer for layer in net.layers() if layer.op == "global_avgpool" and layer.path.count(".") < 2]
    before = net.layer(net.inputs(pool.id)[0]).shape
    assert before[1:] == (_timm_final_map(name, size),) * 2, before
    torch.manual_seed(0)
    model = resdsl.build_model(name, input_shape=(3, size, size)).eval()
    assert sum(p.numel() for p in model.parameters()) == declared.num_params
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 1000) and bool(torch.isfinite(out).all())
