"""The shipped family: the paper's figures, timm's exact networks, and one count for everything.

timm cannot be installed beside the CPU torch here; tests/fixtures/timm/ carries its state_dict
listings and float64 reference logits (see its README). Float64 keeps the comparison
independent of the processor: a relative error below 1e-9 holds on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import resdsl
from resdsl.api import shipped_names
from tests.conftest import (
    FIXTURES,
    FLOAT32_TOL,
    ROOT,
    SAME_MACHINE_TOL,
    deterministic_fill,
    rel_error,
    slow_if_heavy,
    state_listing,
)

TIMM = json.loads((FIXTURES / "timm" / "manifest.json").read_text())["models"]
# timm 1.0's modern residual families (ConvNeXt, RegNet, MobileNet, EfficientNet, DenseNet,
# Res2Net, ResNeSt, ResNet-RS) at 96 x 96: see tests/fixtures/timm_modern/README.md
MODERN = json.loads((FIXTURES / "timm_modern" / "manifest.json").read_text())["models"]
# timm 1.0's vision transformers at 224 x 224 (the position embedding's size): ViT-Ti/16 and
# DeiT-Ti, see tests/fixtures/timm_vit/README.md
VIT = json.loads((FIXTURES / "timm_vit" / "manifest.json").read_text())["models"]
REFERENCES = {"timm": TIMM, "timm_modern": MODERN, "timm_vit": VIT}
EXACT = [(where, name) for where, models in REFERENCES.items() for name in sorted(models)]


@pytest.fixture(scope="module")
def reference_outputs() -> dict[str, Any]:
    return {where: torch.load(FIXTURES / where / "reference_outputs_f64.pt") for where in REFERENCES}


def test_every_network_of_the_modern_fixtures_is_shipped() -> None:
    assert sorted(name for name in {**MODERN, **VIT} if name not in shipped_names()) == []


@pytest.mark.parametrize(("name", "gmacs"), [("resnet50_v1", 3.858), ("resnet101_v1", 7.570), ("resnet152_v1", 11.282)])
def test_v1_layout_gives_the_papers_table_1_figures(name: str, gmacs: float) -> None:
    net = resdsl.compile(name)
    assert round(net.macs / 1e9, 3) == gmacs
    assert net.num_params == resdsl.compile(name.removesuffix("_v1")).num_params  # only the stride moved
    strided = next(layer for layer in net.layers() if layer.path == "layer2.0.conv1")
    assert strided.attrs["s"] == 2


@pytest.mark.parametrize(("where", "name"), EXACT)
def test_timm_models_are_exact(where: str, name: str, reference_outputs: dict[str, Any]) -> None:
    reference = REFERENCES[where][name]
    model = resdsl.build_model(name)
    listing = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert listing == reference["state_dict"]  # keys, shapes, dtypes and order
    assert sum(p.numel() for p in model.parameters()) == reference["num_params"]
    assert resdsl.compile(name).num_params == reference["num_params"]
    model.load_state_dict(deterministic_fill(reference["state_dict"]), strict=True)
    model = model.double()
    x = reference_outputs[where]["input"]
    want = reference_outputs[where]["outputs"][name]
    with torch.no_grad():
        assert rel_error(model.eval()(x), want["output_eval"]) < 1e-9
        assert rel_error(model.train()(x), want["output_train"]) < 1e-9


# Parameter counts that follow from the definitions (and timm's published figures for its names).
COUNTS = {
    "plain18": 11_515_688,  # resnet18 minus its three projection shortcuts
    "plain34": 21_623_848,
    "resnet34_a": 21_623_848,  # option A: no shortcut parameters at all, so plain34's count
    "resnet34_b": 21_797_672,  # torchvision's resnet34
    "resnet34_c": 22_716_840,
    "plain20": 269_722,  # option A costs nothing: the plain CIFAR nets count as the residual ones
    "plain110": 1_727_962,
    "resnet18d": 11_708_744,
    "resnet34d": 21_816_904,
    "resnet26d": 16_014_408,
    "resnet101d": 44_568_392,
    "resnet152d": 60_212_040,
    "resnet50t": 25_573_728,
    "seresnext50_32x4d": 27_559_896,
    "resnetrs101": 63_618_696,  # timm's published 63.6M
    "resnetrs152": 86_621_576,  # timm's published 86.6M
    "convnext_femto": 5_217_784,  # timm's published 5.22M
    "convnext_pico": 9_045_672,  # 9.05M
    "convnext_nano": 15_593_560,  # 15.59M
    "convnext_small": 50_223_688,  # 50.22M
    "convnext_base": 88_591_464,  # 88.59M
    "convnext_large": 197_767_336,  # 197.77M
    "densenet161": 28_681_000,  # torchvision's and timm's published 28.68M
    "densenet169": 14_149_480,  # 14.15M
    "densenet201": 20_013_928,  # 20.01M
    "mobilenetv2_035": 1_677_128,  # timm's published 1.68M
    "mobilenetv2_050": 1_968_680,  # 1.97M
    "mobilenetv2_075": 2_636_424,  # 2.64M
    "mobilenetv2_110d": 4_516_520,  # 4.52M
    "mobilenetv2_120d": 5_831_144,  # 5.83M
    "mobilenetv2_140": 6_108_776,  # 6.11M
    "efficientnet_b1": 7_794_184,  # timm's published 7.79M
    "efficientnet_b2": 9_109_994,  # 9.11M
    "efficientnet_b3": 12_233_232,  # 12.23M
    "efficientnet_b4": 19_341_616,  # 19.34M
    "mobilenetv3_small_100": 2_542_856,  # timm's published 2.54M
    # Res2Net: timm's published counts (results/benchmark-infer-amp-nchw-pt113-cu117-rtx3090.csv), each
    # also the sum over timm's Bottle2neck definitions: res2net50_26w_4s is the fixture's 25,699,120
    "res2net50_48w_2s": 25_287_304,  # 25.29M
    "res2net50_14w_8s": 25_059_816,  # 25.06M
    "res2net50_26w_6s": 37_051_448,  # 37.05M
    "res2net50_26w_8s": 48_403_776,  # 48.40M
    "res2next50": 24_671_464,  # 24.67M
    # RegNet: timm's published counts (2.68M ... 145.05M), each from its w0, wa, wm, group width, depth
    "regnetx_004": 5_157_512,
    "regnetx_006": 6_196_040,
    "regnetx_008": 7_259_656,
    "regnetx_016": 9_190_136,
    "regnetx_032": 15_296_552,
    "regnetx_040": 22_118_248,
    "regnetx_064": 26_209_256,
    "regnetx_080": 39_572_648,
    "regnetx_120": 46_106_056,
    "regnetx_160": 54_278_536,
    "regnetx_320": 107_811_560,
    "regnety_002": 3_162_996,
    "regnety_006": 6_055_160,
    "regnety_008": 6_263_168,
    "regnety_016": 11_202_430,
    "regnety_032": 19_436_338,
    "regnety_040": 20_646_656,
    "regnety_064": 30_583_252,
    "regnety_080": 39_180_068,
    "regnety_120": 51_822_544,
    "regnety_160": 83_590_140,
    "regnety_320": 145_046_770,
    # ResNeSt: timm's published 17.07M, 27.48M, 48.28M (results/results-imagenet.csv), each figure
    # also added up from timm's ResNestBottleneck and SplitAttn by hand (resnest14d: the fixture)
    "resnest26d": 17_069_448,
    "resnest50d": 27_483_240,
    "resnest101e": 48_275_016,
    # Vision transformers: timm's published 22.05M, 86.57M, 88.22M; DeiT is ViT's architecture.
    # DeiT III adds two layer scales of embed_dim per block and drops the class token's position
    # (no_embed_class): vit_small + 12 * 2 * 384 - 384, vit_base + 12 * 2 * 768 - 768
    "vit_small_patch16_224": 22_050_664,
    "vit_base_patch16_224": 86_567_656,
    "vit_base_patch32_224": 88_224_232,
    "deit_small_patch16_224": 22_050_664,
    "deit_base_patch16_224": 86_567_656,
    "deit3_small_patch16_224": 22_059_496,
    "deit3_base_patch16_224": 86_585_320,
}


@pytest.mark.parametrize(("name", "count"), sorted(COUNTS.items()))
def test_parameter_counts_follow_from_the_definitions(name: str, count: int) -> None:
    assert resdsl.compile(name).num_params == count


def test_option_b_and_c_differ_by_the_identity_shortcuts_made_projections() -> None:
    b, c = resdsl.compile("resnet34_b"), resdsl.compile("resnet34_c")
    extra = sum(layer.params for layer in c.layers() if layer.op == "residual") - sum(
        layer.params for layer in b.layers() if layer.op == "residual"
    )
    # every identity shortcut of option B becomes a 1x1 conv + batchnorm: C*C + 2C each
    identities = [(64, 3), (128, 3), (256, 5), (512, 2)]
    assert extra == sum(n * (ch * ch + 2 * ch) for ch, n in identities)


def test_plain_nets_have_no_additions() -> None:
    for name in ["plain18", "plain34", "plain20", "plain110"]:
        assert not any(layer.op == "residual" for layer in resdsl.compile(name).layers())


@pytest.mark.parametrize("name", slow_if_heavy(sorted(shipped_names())))
def test_built_parameter_count_equals_the_checkers(name: str) -> None:
    net = resdsl.compile(name)
    with torch.device("meta"):  # shapes only: deep nets build in milliseconds, nothing allocated
        model = resdsl.build_model(net)
    assert sum(p.numel() for p in model.parameters()) == net.num_params


def test_the_gallery_is_current_and_every_published_figure_holds() -> None:
    from resdsl.tools.gallery import FIGURES, render, rows

    assert (ROOT / "docs" / "specs.md").read_text() == render(), "run: python -m resdsl.tools.gallery > docs/specs.md"
    found = {row["name"]: row for row in rows()}
    for name, figure in FIGURES.items():
        assert name in found, name
        if figure.params is not None:
            assert found[name]["params"] == figure.params, name
        if figure.gmacs is not None:
            assert found[name]["gmacs"] == figure.gmacs, name


# -- the generated modules of the new constructs ------------------------------------------------


@pytest.mark.parametrize("name", ["seresnet50", "resnet50d", "resnet50_gn", "resnest14d"])
def test_generated_family_module_is_the_built_network(name: str, tmp_path: Path) -> None:
    import importlib.util

    from resdsl.backends.codegen import generate

    net = resdsl.compile(name)
    path = tmp_path / f"{name}.py"
    path.write_text(generate(net))
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = getattr(module, name)()
    built = resdsl.build_model(net)
    assert list(generated.state_dict()) == list(built.state_dict())
    generated.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    generated, built = generated.double().eval(), built.double().eval()
    with torch.no_grad():
        assert rel_error(generated(x), built(x)) < 1e-12
        scripted = torch.jit.script(generated)
        assert rel_error(scripted(x), built(x)) < 1e-12
    ort = pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / f"{name}.onnx"
    x32 = torch.randn(1, 3, 64, 64)
    model = generated.float()
    torch.onnx.export(model, (x32,), str(onnx_path), dynamo=False, input_names=["x"], output_names=["logits"])
    (out,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"x": x32.numpy()})
    with torch.no_grad():
        assert rel_error(torch.from_numpy(out), model(x32)) < FLOAT32_TOL  # onnxruntime sums in its own order


def test_built_family_modules_script() -> None:
    for name in ["seresnet50", "resnet50d", "resnet50_gn", "resnest14d"]:
        model = resdsl.build_model(name).double().eval()
        x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
        with torch.no_grad():
            assert rel_error(torch.jit.script(model)(x), model(x)) < 1e-12


# -- DeiT III: layer scale and no position for the class token (timm's no_embed_class) ------------


def test_deit3_keys_are_timms_in_timms_order() -> None:
    with torch.device("meta"):
        state = resdsl.build_model("deit3_small_patch16_224").state_dict()
    listing = [(k, list(v.shape)) for k, v in state.items()]
    assert listing[:4] == [
        ("cls_token", [1, 1, 384]),
        ("pos_embed", [1, 196, 384]),  # no position for the class token
        ("patch_embed.proj.weight", [384, 3, 16, 16]),
        ("patch_embed.proj.bias", [384]),
    ]
    block = [k.removeprefix("blocks.0.") for k, _ in listing if k.startswith("blocks.0.")]
    assert block == [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "ls1.gamma",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
        "ls2.gamma",
    ]


def test_deit3_is_timms_forward() -> None:
    """timm adds the position embedding to the patch tokens, then puts the class token first, and
    scales each branch by its gamma (LayerScale); the built network computes the same in float64."""
    model = resdsl.build_model("deit3_small_patch16_224", params={"depth": 2})
    model.load_state_dict(deterministic_fill(state_listing(model)))
    model = model.double().eval()
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = model.patch_embed(x) + model.pos_embed
        tokens = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1)
        for block in model.blocks:
            tokens = tokens + block.attn(block.norm1(tokens)) * block.ls1.gamma
            tokens = tokens + block.mlp(block.norm2(tokens)) * block.ls2.gamma
        want = model.head(model.norm(tokens)[:, 0])
        assert rel_error(model(x), want) < SAME_MACHINE_TOL


def test_a_vit_at_another_image_size_has_timms_position_embedding() -> None:
    """``img_size`` is the input's side and the position embedding's length, as timm's
    ``create_model(..., img_size=384)``: (384 / 16)^2 + 1 = 577 positions, 380 x 192 more weights
    than at 224 (5,790,376: what timm 1.0.31 counts)."""
    net = resdsl.compile("vit_tiny_patch16_224", params={"img_size": 384})
    assert net.input_shape == (3, 384, 384)
    assert net.num_params == 5_717_416 + (577 - 197) * 192 == 5_790_376
    with torch.device("meta"):
        assert resdsl.build_model(net).pos_embed.shape == (1, 577, 192)
