"""The generated factory's arguments change the network as build_model's params do.

A generated module equals build_model for its default arguments (test_codegen); these build the
factory with other arguments and hold it against ``build_model(spec, params=...)`` of the same
spec: the same state_dict keys and shapes, in order, and the same float64 outputs for the same
weights. Value bindings of a network or block body (``s = 32 if flag else 16``) must reach the
layers that read them by name, and a stage's later blocks must be built from what the block
before them makes, also where the module was generated with no later block to check them by.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

import resdsl
from tests.conftest import SAME_MACHINE_TOL, deterministic_fill, outputs_f64, rel_error, state_listing

_counter = itertools.count()

# The repro: network-level bindings, one a condition on a parameter, one arithmetic on another.
BINDINGS = """
network n(flag = true, m = 2) {
    input 3 x 8 x 8
    s = 32 if flag else 16
    t = 8 * m
    conv1 = conv(s, k=3)
    conv2 = conv(t, k=1)
}
"""

# Bindings in a block body and in the network's, read by layers, a block inside the block, a
# stage's repeat and block arguments, a sequential group and the classifier; layer1 has one
# block by default (no later block to check its loop against).
NESTED = """
import "std/blocks.arch"

block wide_pair(c, k = 2, deep = false) {
    w = c * k
    mid = w + 8 if deep else w
    conv1 = conv(mid, k=1)
    bn1 = batchnorm()
    relu
    inner = basic(w, shortcut=projection)
    conv2 = conv(c, k=1)
    residual(projection)
}

network lets(base = 8, n = 1, k = 2, deep = false, classes = 5) {
    input 3 x 16 x 16
    stem = base * 2
    reps = n + 1
    head = stem * 4 if deep else stem * 2
    conv1 = conv(stem, k=3, p=1)
    bn1 = batchnorm()
    relu
    layer1 = stage(wide_pair(stem, k=k, deep=deep), repeat=n)
    layer2 = stage(basic(head), repeat=reps, stride=2)
    group = sequential(conv(head, k=1), batchnorm(), stage(wide_pair(head, k=k), repeat=n))
    avgpool = global_avgpool()
    fc = linear(classes)
}
"""

# A stage of one block whose argument reads in_channels in a way the later blocks' input cannot
# be derived from (each block doubles its input): the module refuses another repeat.
DOUBLING = """
block doubling(c) {
    conv1 = conv(c, k=1)
    bn1 = batchnorm()
    relu
}

network grow(n = 1) {
    input 3 x 8 x 8
    conv1 = conv(8, k=3, p=1)
    layer1 = stage(doubling(in_channels * 2), repeat=n)
    pool = global_avgpool()
    fc = linear(4)
}
"""


def load_code(code: str, folder: Path) -> ModuleType:
    path = folder / f"arguments_{next(_counter)}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spec_file(folder: Path, name: str, text: str) -> str:
    path = folder / f"{name}.arch"
    path.write_text(text)
    return str(path)


def assert_same_network(
    spec: str,
    factory: str,
    params: dict[str, Any],
    size: tuple[int, int, int],
    folder: Path,
    renamed: dict[str, str] | None = None,
) -> None:
    """The module generated for the spec's defaults, built with ``params`` (``renamed``: a
    parameter whose Python name differs), against build_model with the same params."""
    shape = "x".join(map(str, size))
    module = load_code(resdsl.generate(spec, input_shape=shape), folder)
    kwargs = {(renamed or {}).get(k, k): v for k, v in params.items()}
    got = getattr(module, factory)(**kwargs)
    want = resdsl.build_model(spec, params=params, input_shape=shape)
    listing = state_listing(want)
    assert state_listing(got) == listing  # same keys, shapes and dtypes, in the same order
    fill = deterministic_fill(listing)
    got.load_state_dict(fill, strict=True)
    want.load_state_dict(fill, strict=True)
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out_got, out_want = outputs_f64(got, x), outputs_f64(want, x)
    for mode in ("eval", "train"):
        assert rel_error(out_got[mode], out_want[mode]) < SAME_MACHINE_TOL, mode


@pytest.mark.parametrize("params", [{"flag": False, "m": 3}, {"flag": False}, {"m": 5}])
def test_network_bindings_follow_the_arguments(params: dict[str, Any], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, "n", BINDINGS)
    assert_same_network(spec, "n", params, (3, 8, 8), tmp_path, renamed={"m": "m_"})  # m: the init loop's


def test_network_bindings_are_written_by_name(tmp_path: Path) -> None:
    code = resdsl.generate(spec_file(tmp_path, "n", BINDINGS))
    assert "nn.Conv2d(3, s, kernel_size=3" in code and "nn.Conv2d(s, t, kernel_size=1" in code


@pytest.mark.parametrize(
    "params",
    [{"base": 4}, {"n": 3}, {"k": 3, "deep": True}, {"deep": True, "n": 2, "base": 6}, {"classes": 7, "n": 2}],
)
def test_block_and_network_bindings_follow_the_arguments(params: dict[str, Any], tmp_path: Path) -> None:
    assert_same_network(spec_file(tmp_path, "lets", NESTED), "lets", params, (3, 16, 16), tmp_path)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mobilenetv2_100", {"multiplier": 0.5, "depth_multiplier": 1.4}),  # blocks.0 and .6 grow past 1 block
        ("mobilenetv2_100", {"fix_stem_head": True}),
        ("mobilenetv2_110d", {"multiplier": 0.5, "depth_multiplier": 1.4}),
        ("mobilenetv2_110d", {"fix_stem_head": False}),  # the head widens, blocks.0 gets a second block
        ("densenet121", {"growth": 12, "depths": [2, 3, 4, 2]}),
        ("convnext_atto", {"depths": [1, 2, 2, 1]}),
        ("res2net50_26w_4s", {"depths": [1, 2, 1, 2], "scale": 3, "base_width": 13}),  # 3 chunks of 13, 26, ...
        ("res2next50", {"depths": [2, 1, 1, 1], "cardinality": 2}),
        ("resnest14d", {"radix": 4, "stem_width": 16, "depths": [2, 1, 1, 1]}),  # the merge reads self.radix
        # timm's drop-path schedules, trained with the same masks: only where a block adds its input
        ("efficientnet_b0", {"drop_path_rate": 0.2}),
        ("mobilenetv3_large_100", {"drop_path_rate": 0.2}),
        ("regnetx_002", {"drop_path_rate": 0.2}),
        ("resnetrs50", {"drop_path_rate": 0.2}),
    ],
)
def test_shipped_factories_follow_the_arguments(name: str, params: dict[str, Any], tmp_path: Path) -> None:
    assert_same_network(name, name, params, (3, 32, 32), tmp_path)


def test_later_blocks_read_the_block_before_them() -> None:
    """mobilenetv2_110d's first and last stages have one block: the loop over later blocks
    reads the first block's output (widths[0]), not the first block's own input (32)."""
    code = " ".join(resdsl.generate("mobilenetv2_110d").split())
    assert (
        "DepthwiseSeparableConv( widths[0], widths[0], widths[0], "
        "drop_path_rate=drop_path_rate * (i + 1) / net_count, )" in code
    )
    assert "InvertedResidual( widths[6], widths[6], widths[6], drop_path_rate=drop_path_rate * (" in code


def test_stages_that_differ_by_values_are_one_loop() -> None:
    """ConvNeXt's four stages differ only by dims[index], depths[index] and where their blocks
    start in the drop-path schedule: the first, then one comprehension over the later three,
    each starting after the blocks of the stages before it."""
    code = " ".join(resdsl.generate("convnext_tiny").split())
    assert code.count("ConvNeXtStage( dims[") == 2
    assert (
        "*[ ConvNeXtStage( dims[i], dims[i + 1], depths[i + 1], first=False, conv_mlp=conv_mlp, "
        "drop_path_rate=drop_path_rate, net_index=sum([depths[j] for j in range(i + 1)]), "
        "net_count=net_count_1, ) for i in range(3) ]" in code
    )


@pytest.mark.parametrize(
    "params", [{"depths": [2, 1, 3, 1], "drop_path_rate": 0.3}, {"depths": [1, 1, 1, 2], "dims": [8, 16, 24, 32]}]
)
def test_a_loop_over_stages_gives_every_stage_its_schedule(params: dict[str, Any], tmp_path: Path) -> None:
    assert_same_network("convnext_atto", "convnext_atto", params, (3, 32, 32), tmp_path)


def test_net_count_of_computed_depths_is_written_once() -> None:
    """MobileNetV2's depths are a value the network computes from its arguments, bound before the
    blocks: the drop-path rule's net_count is written once from it, and every block reads it."""
    code = resdsl.generate("mobilenetv2_100")
    assert code.count("net_count = (") == 1
    assert code.count("/ net_count") == 14  # a first block and a loop per stage


def test_a_repeat_the_later_blocks_cannot_follow_is_refused(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, "grow", DOUBLING)
    module = load_code(resdsl.generate(spec), tmp_path)
    model, built = module.grow(), resdsl.build_model(spec)
    assert state_listing(model) == state_listing(built)
    with pytest.raises(ValueError, match=r"generated with 1 blocks in stage layer1.*regenerate"):
        module.grow(n=2)
