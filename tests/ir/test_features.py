"""Feature outputs and per-stage gradient checkpointing (issue #10, items 4 and 5), in both back ends.

The feature maps of timm's ``features_only=True`` and torchvision's ``create_feature_extractor`` are the
stage outputs of the classifier network with the same weights, so the tests hold resdsl's feature
outputs to the full model's stages, run one by one in float64, with torchvision's weights layout (the
deterministic fill of the torchvision fixture), and check that the same model's head on the last
feature gives torchvision's reference logits. Checkpointing is held to exactly equal gradients and
batch norm statistics in float64, train mode.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import resdsl
from resdsl.diagnostics import ResdslError
from resdsl.runtime.checkpointing import KeepBuffers, segments
from resdsl.tools.cli import cli
from tests.conftest import REFERENCE_TOL, SAME_MACHINE_TOL, TESTS, deterministic_fill, rel_error, state_listing

STAGES = ["layer1", "layer2", "layer3", "layer4"]
R18 = {"input_shape": "3x96x96"}  # the reference input's size; the checker's shapes and strides follow it


def load_generated(source: str, path: Path) -> ModuleType:
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def resnet18_full(manifest: dict[str, Any]) -> nn.Module:
    """resdsl's resnet18 with torchvision's layout of the fixture's deterministic weights, float64, eval."""
    model = resdsl.build_model("resnet18", **R18)
    model.load_state_dict(deterministic_fill(manifest["resnet18"]["state_dict"]), strict=True)
    return model.double().eval()


def stage_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a feature extractor returns: the full model's layers run by hand, keeping each stage's output."""
    out = {}
    with torch.no_grad():
        x = model.conv1(x)
        x = model.bn1(x)
        out["bn1"] = x.clone()  # before the in-place relu
        x = model.maxpool(model.relu(x))
        for name in STAGES:
            x = getattr(model, name)(x)
            out[name] = x
    return out


# -- feature outputs: the torch back end --------------------------------------------------------


def test_features_equal_the_full_models_stages(resnet18_full: nn.Module, reference_outputs_f64: dict[str, Any]) -> None:
    model = resdsl.build_model("resnet18", features=STAGES, **R18).double().eval()
    result = model.load_state_dict(resnet18_full.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == ["fc.bias", "fc.weight"]  # only the dropped head
    x = reference_outputs_f64["input"]
    with torch.no_grad():
        got = model(x)
    want = stage_outputs(resnet18_full, x)
    assert list(got) == STAGES  # an ordered dict, in network order
    for name in STAGES:
        assert got[name].shape == want[name].shape
        assert rel_error(got[name], want[name]) <= SAME_MACHINE_TOL, name
    # the head of the full model on the last feature gives torchvision's own logits
    with torch.no_grad():
        logits = resnet18_full.fc(torch.flatten(resnet18_full.avgpool(got["layer4"]), 1))
    assert rel_error(logits, reference_outputs_f64["outputs"]["resnet18"]["output_eval"]) <= REFERENCE_TOL


def test_state_dict_is_the_full_models_minus_the_head(resnet18_full: nn.Module) -> None:
    model = resdsl.build_model("resnet18", features=["layer1", "layer3"], **R18)
    full = list(resnet18_full.state_dict())
    assert list(model.state_dict()) == [k for k in full if not k.startswith(("layer4.", "fc."))]


def test_feature_info_and_checker_report() -> None:
    model = resdsl.build_model("resnet18", features=["layer4", "layer2", "bn1"], **R18)
    assert model.feature_info == [
        {"module": "bn1", "num_chs": 64, "reduction": 2},
        {"module": "layer2", "num_chs": 128, "reduction": 8},
        {"module": "layer4", "num_chs": 512, "reduction": 32},
    ]
    result = resdsl.check("resnet18", input_shape="3x96x96", features=STAGES)
    assert result.ok
    reported = [(f.name, f.shape, f.stride) for f in result.features["resnet18"]]
    assert reported == [
        ("layer1", (64, 24, 24), 4),
        ("layer2", (128, 12, 12), 8),
        ("layer3", (256, 6, 6), 16),
        ("layer4", (512, 3, 3), 32),
    ]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        out = model(x)
    for info in model.feature_info:  # the reported shapes are what the model returns
        assert out[info["module"]].shape[1] == info["num_chs"]
        assert out[info["module"]].shape[-1] == 96 // info["reduction"]


def test_feature_kept_from_an_in_place_activation(resnet18_full: nn.Module) -> None:
    """bn1 is followed by relu(inplace=True): the output must be bn1's value, not the relu's."""
    model = resdsl.build_model("resnet18", features=["bn1", "layer1"], **R18).double().eval()
    model.load_state_dict(resnet18_full.state_dict(), strict=False)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        got = model(x)
    want = stage_outputs(resnet18_full, x)
    assert got["bn1"].min() < 0  # not overwritten by the relu
    assert rel_error(got["bn1"], want["bn1"]) <= SAME_MACHINE_TOL
    assert rel_error(got["layer1"], want["layer1"]) <= SAME_MACHINE_TOL


def test_scripted_feature_model_returns_the_same_dict() -> None:
    model = resdsl.build_model("resnet20", features=["layer1", "layer2", "layer3"]).double().eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        a, b = model(x), scripted(x)
    assert list(a) == list(b) == ["layer1", "layer2", "layer3"]
    for name in a:
        assert rel_error(b[name], a[name]) <= SAME_MACHINE_TOL


# -- feature outputs: generated code --------------------------------------------------------------


def test_generated_features_match_and_script(resnet18_full: nn.Module, tmp_path: Path) -> None:
    source = resdsl.generate("resnet18", features=["bn1", *STAGES], **R18)
    assert "-> dict[str, Tensor]" in source and "self.fc" not in source
    generated = load_generated(source, tmp_path / "r18_features.py")
    model = generated.resnet18().double().eval()
    result = model.load_state_dict(resnet18_full.state_dict(), strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == ["fc.bias", "fc.weight"]
    assert (
        model.feature_info
        == generated.FEATURE_INFO
        == resdsl.build_model("resnet18", features=["bn1", *STAGES], **R18).feature_info
    )
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    want = stage_outputs(resnet18_full, x)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        for got in (model(x), scripted(x)):
            assert list(got) == ["bn1", *STAGES]
            for name, value in got.items():
                assert rel_error(value, want[name]) <= SAME_MACHINE_TOL, name


def test_generated_code_without_options_is_unchanged() -> None:
    golden = (TESTS / "golden" / "resnet18.py").read_text()
    assert "grad_checkpointing" not in golden and "FEATURE_INFO" not in golden
    assert resdsl.generate("resnet18", features=None, checkpoint=None).splitlines()[5:] == golden.splitlines()[5:]


# -- errors -----------------------------------------------------------------------------------------


def codes(exc: pytest.ExceptionInfo[ResdslError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def test_feature_errors_name_the_place_and_suggest() -> None:
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model("resnet18", features=["layr2", "layer3.0.conv1", "fc", "layer1", "layer1"])
    assert codes(exc) == ["E740", "E740", "E741", "E742"]
    unknown, nested, flat, twice = exc.value.diagnostics
    assert "did you mean 'layer2'" in (unknown.help or "")
    assert "'layer3.0' is a block" in nested.message  # inside stages and groups only (test_features_nested.py)
    assert flat.span.file.endswith("imagenet.arch") and flat.span.line > 0  # the fc statement
    assert twice.span.line > 0
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model("resnet20", features=[])
    assert codes(exc) == ["E743"]


def test_checkpoint_errors() -> None:
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model("resnet20", checkpoint=["layer9"])
    assert codes(exc) == ["E745"]
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model("resnet20", features=["layer1"], checkpoint=["layer3"])
    assert codes(exc) == ["E747"]
    flat = "network tiny() {\n  input 3 x 8 x 8\n  conv1 = conv(4, k=3, p=1)\n  relu\n}\n"
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model(flat, checkpoint=True)
    assert codes(exc) == ["E746"]
    assert exc.value.diagnostics[0].span.line == 1
    for build in (resdsl.build_model, resdsl.generate):  # an empty list names nothing: not silently off
        with pytest.raises(ResdslError) as exc:
            build("resnet20", checkpoint=[])
        assert codes(exc) == ["E746"]
    assert not hasattr(resdsl.build_model("resnet20", checkpoint=False), "grad_checkpointing")


def test_cli_check_and_build(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", "resnet20", "--features", "layer1,layer2,layer3"])
    assert ok.exit_code == 0, ok.output
    assert "feature layer3: 64 x 8 x 8, stride 4" in ok.output
    bad = runner.invoke(cli, ["check", "resnet20", "--features", "layer4"])
    assert bad.exit_code == 1 and "error[E740]" in bad.output and "did you mean 'layer3'" in bad.output
    target = tmp_path / "r20.py"
    built = runner.invoke(cli, ["build", "resnet20", "--features", "layer2", "--checkpoint", "all", "-o", str(target)])
    assert built.exit_code == 0, built.output
    text = target.read_text()
    assert "--features layer2 --checkpoint layer1,layer2" in text  # the regenerate command keeps them
    assert "checkpoint_seq(self.layer1, x, self.checkpoint_reentrant)" in text and "self.layer3" not in text
    empty = runner.invoke(cli, ["build", "resnet20", "--checkpoint", " ,", "-o", str(tmp_path / "x.py")])
    assert empty.exit_code == 2 and "--checkpoint takes stage names" in empty.output  # not silently nothing
    refused = runner.invoke(cli, ["build", "resnet20", "--checkpoint", "stage9", "-o", str(tmp_path / "x.py")])
    assert refused.exit_code == 1 and "error[E745]" in refused.output
    assert not (tmp_path / "x.py").exists()


# -- gradient checkpointing ---------------------------------------------------------------------


def train_step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad()
    out = model(x)
    loss = out.square().mean() if isinstance(out, torch.Tensor) else sum(v.square().mean() for v in out.values())
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    return out if isinstance(out, torch.Tensor) else torch.cat([v.flatten() for v in out.values()]), grads


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward during one forward."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(x)
    return total


def assert_same_step(plain: nn.Module, checkpointed: nn.Module, x: torch.Tensor, exact: bool = True) -> None:
    """The same outputs, gradients and running statistics after one training step; bit for bit
    unless ``exact`` is false: where a segment's input is also read outside it (a feature output),
    the reentrant checkpoint adds that input's gradients in another order (float64 rounding)."""
    checkpointed.load_state_dict(plain.state_dict())
    out_a, grads_a = train_step(plain, x)
    out_b, grads_b = train_step(checkpointed, x)
    assert torch.equal(out_a, out_b)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        if exact:
            assert torch.equal(grads_a[name], grads_b[name]), name  # float64, bit for bit
        else:
            assert rel_error(grads_b[name], grads_a[name]) <= SAME_MACHINE_TOL, name
    buffers_b = dict(checkpointed.named_buffers())
    for name, buffer in plain.named_buffers():  # running statistics updated once, not twice
        assert torch.equal(buffer, buffers_b[name]), name


@pytest.mark.parametrize(("stages", "kept"), [(True, 0.5), (["layer2", "layer3"], 0.75)])
def test_checkpoint_gives_identical_gradients_and_statistics(stages: Any, kept: float) -> None:
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet20").double()
    checkpointed = resdsl.build_model("resnet20", checkpoint=stages).double()
    assert checkpointed.grad_checkpointing is True
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    assert_same_step(plain, checkpointed, x)
    assert saved_bytes(checkpointed, x) < saved_bytes(plain, x) * kept  # it does keep less
    checkpointed.grad_checkpointing = False
    assert saved_bytes(checkpointed, x) == saved_bytes(plain, x)


def test_a_stage_is_cut_into_about_sqrt_n_segments() -> None:
    """Chen et al.'s sublinear scheme: ceil(sqrt(n)) segments, lengths within one, order kept."""
    for n in [1, 2, 3, 6, 18, 23, 200]:
        runs = segments(list(range(n)))
        assert len(runs) == math.ceil(math.sqrt(n))
        assert [b for run in runs for b in run] == list(range(n))
        assert max(map(len, runs)) - min(map(len, runs)) <= 1
    assert segments([]) == []


def test_keep_buffers_gives_every_module_its_own_buffers_back() -> None:
    """Also a module listed twice (checkpoint_seq is public in generated files; users may share)."""
    norm = nn.BatchNorm2d(2)
    mean, var = norm.running_mean, norm.running_var
    with KeepBuffers([norm, nn.Sequential(norm)]):
        assert norm.running_mean is not mean
        norm.train()(torch.randn(4, 2, 3, 3))  # updates the copies only
    assert norm.running_mean is mean and norm.running_var is var
    assert torch.equal(mean, torch.zeros(2)) and torch.equal(var, torch.ones(2))


def test_checkpoint_keeps_one_input_per_segment() -> None:
    """ResNet-110: 18 blocks a stage, so 5 segments a stage keep their inputs, not 18 blocks'."""
    torch.manual_seed(0)
    model = resdsl.build_model("resnet110", checkpoint=True).double()
    plain = resdsl.build_model("resnet110").double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    per_block = saved_bytes(plain, x) // 54  # every block keeps about the same at 16 x 16
    assert saved_bytes(model, x) < saved_bytes(plain, x) / 8
    assert saved_bytes(model, x) < 15 * per_block  # 3 stages x 5 segment inputs, smaller later


def test_checkpoint_after_a_frozen_stem_still_trains_the_stages() -> None:
    """A segment whose input needs no gradient runs under the non-reentrant checkpoint: the
    reentrant one would leave its parameters without gradients."""
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet20", freeze_until="layer2").double()
    checkpointed = resdsl.build_model("resnet20", freeze_until="layer2", checkpoint=True).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    checkpointed.load_state_dict(plain.state_dict())
    for model in (plain, checkpointed):
        model.zero_grad(set_to_none=True)
        model.train()(x).square().mean().backward()
    grads = {k: p.grad for k, p in checkpointed.named_parameters() if p.grad is not None}
    expected = {k: p.grad for k, p in plain.named_parameters() if p.grad is not None}
    assert grads.keys() == expected.keys() and any(k.startswith("layer2.") for k in grads)
    assert all(torch.equal(grads[k], expected[k]) for k in grads)


def test_autograd_grad_needs_the_non_reentrant_checkpoint() -> None:
    """torch.autograd.grad (gradient penalties, double backward) cannot go through the reentrant
    checkpoint; with ``checkpoint_reentrant = False`` it gives the plain model's gradients."""
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet20").double()
    checkpointed = resdsl.build_model("resnet20", checkpoint=True).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="use_reentrant=False"):
        torch.autograd.grad(checkpointed.train()(x).sum(), x)
    checkpointed.checkpoint_reentrant = False
    assert_same_step(plain, checkpointed, x.detach())
    (a,) = torch.autograd.grad(plain.train()(x).square().sum(), x)
    (b,) = torch.autograd.grad(checkpointed.train()(x).square().sum(), x)
    assert torch.equal(a, b)


@pytest.mark.slow
def test_a_checkpointed_model_compiles() -> None:
    """torch.compile traces through both checkpoints; aot_eager (no C compiler needed) runs the
    traced graphs, forward and backward, and gives the plain model's outputs and gradients
    (float64, to rounding: the traced graph may order sums otherwise)."""
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet20").double()
    checkpointed = resdsl.build_model("resnet20", checkpoint=True).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    for reentrant in (True, False):
        torch._dynamo.reset()
        checkpointed.load_state_dict(plain.state_dict())
        checkpointed.checkpoint_reentrant = reentrant
        out_a, grads_a = train_step(plain, x)
        out_b, _ = train_step(torch.compile(checkpointed, backend="aot_eager"), x)
        assert rel_error(out_b.detach(), out_a) <= SAME_MACHINE_TOL
        for name, p in checkpointed.named_parameters():
            assert p.grad is not None and rel_error(p.grad, grads_a[name]) <= SAME_MACHINE_TOL, name
        buffers = dict(plain.named_buffers())
        for name, buffer in checkpointed.named_buffers():  # statistics updated once, as without
            assert rel_error(buffer.double(), buffers[name].double()) <= SAME_MACHINE_TOL, name


def test_checkpoint_with_features_and_scripting() -> None:
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet20", features=["layer1", "layer3"]).double()
    checkpointed = resdsl.build_model("resnet20", features=["layer1", "layer3"], checkpoint=True).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    assert_same_step(plain, checkpointed, x, exact=False)
    checkpointed.checkpoint_reentrant = False  # the non-reentrant checkpoint keeps torch's order
    assert_same_step(plain, checkpointed, x)
    scripted = torch.jit.script(checkpointed.eval())  # scripting takes the plain branch
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        a, b = scripted(x), plain.eval()(x)
    assert all(rel_error(a[k], b[k]) <= SAME_MACHINE_TOL for k in b)


def test_generated_checkpoint_identical_gradients(tmp_path: Path) -> None:
    source = resdsl.generate("resnet20", checkpoint=["layer1", "layer2", "layer3"])
    assert "if self.grad_checkpointing and not torch.jit.is_scripting():" in source
    generated = load_generated(source, tmp_path / "r20_checkpoint.py")
    torch.manual_seed(0)
    plain = resdsl.build_model("resnet20").double()
    model = generated.resnet20().double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    assert_same_step(plain, model, x)
    assert saved_bytes(model, x) < saved_bytes(plain, x) / 2
    scripted = torch.jit.script(model.eval())
    with torch.no_grad():
        assert rel_error(scripted(x), plain.eval()(x)) <= SAME_MACHINE_TOL
    model_off = generated.resnet20(grad_checkpointing=False).double()
    assert saved_bytes(model_off, x) == saved_bytes(plain, x)
    assert_same_step(plain, generated.resnet20(checkpoint_reentrant=False).double(), x)


def test_a_full_checkpoint_loads_into_the_feature_model_leaving_out_the_head(tmp_path: Path) -> None:
    """weights= of the whole network: the feature model takes every tensor it has and reports
    the classifier's as left out, not as a mismatch."""
    full = resdsl.build_model("resnet18", input_shape="3x64x64")
    path = tmp_path / "resnet18.safetensors"
    resdsl.save_weights(full, path)
    backbone = resdsl.build_model("resnet18", input_shape="3x64x64", features=["layer3"], weights=path)
    report = backbone.resdsl_load_report
    assert {"fc.weight", "fc.bias"} <= set(report.dropped)
    assert "layer4.0.conv1.weight" in report.dropped  # layer4 comes after the last feature
    assert backbone.state_dict()["layer3.0.conv1.weight"].equal(full.state_dict()["layer3.0.conv1.weight"])


def test_a_single_layer_cannot_be_checkpointed_and_all_means_every_stage() -> None:
    """A lone (possibly in-place) layer under checkpointing broke backward: it is refused (E744)."""
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model("resnet18", checkpoint=["bn1"])
    assert codes(exc) == ["E744"]
    model = resdsl.build_model("resnet18", checkpoint="all")
    assert model.grad_checkpointing


# -- the modern families (issue #18): one member each ---------------------------------------------

# Top-level feature points of each family's timm layout (the stem, the stage groups) and what to
# checkpoint: every top-level stage where the network has them, else the top-level group of stages
# (MobileNet's and EfficientNet's ``blocks``, DenseNet's ``features``), which runs as one segment.
# Features and checkpointing inside such a group (timm's ``blocks.2``) are not supported yet (E740).
FAMILY_FEATURES = {
    "convnext_atto": (["stem", "stages"], True),
    "densenet121": (["features"], ["features"]),
    "mobilenetv2_100": (["bn1", "blocks", "bn2"], ["blocks"]),  # bn2: a relu6 in place follows
    "mobilenetv3_large_100": (["bn1", "blocks"], ["blocks"]),
    "efficientnet_b0": (["bn1", "blocks", "bn2"], ["blocks"]),
    "regnetx_002": (["stem", "s1", "s2", "s3", "s4"], True),
    "regnety_004": (["stem", "s1", "s2", "s3", "s4"], True),
    "resnetrs50": (["maxpool", "layer1", "layer2", "layer3", "layer4"], True),
}
FAMILY_INPUT = "3x32x32"  # every stride up to 32 shows; a map of 1 x 1 at the end


def hooked_outputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each named module's output in the full model's forward, copied before anything in place
    can change it."""
    out: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o.clone()))
        for name in names
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return out


@pytest.mark.parametrize("name", sorted(FAMILY_FEATURES))
def test_family_features_are_the_full_models_maps(name: str) -> None:
    names, _ = FAMILY_FEATURES[name]
    full = resdsl.build_model(name, input_shape=FAMILY_INPUT)
    full.load_state_dict(deterministic_fill(state_listing(full)))
    full = full.double().eval()
    backbone = resdsl.build_model(name, input_shape=FAMILY_INPUT, features=names).double().eval()
    backbone.load_state_dict({k: v for k, v in full.state_dict().items() if k in backbone.state_dict()}, strict=True)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        got = backbone(x)
    want = hooked_outputs(full, names, x)
    assert list(got) == names and [f["module"] for f in backbone.feature_info] == names
    for key in names:
        assert got[key].shape[1] == next(f["num_chs"] for f in backbone.feature_info if f["module"] == key)
        assert torch.equal(got[key], want[key]), key  # the same float64 operations, bit for bit


@pytest.mark.parametrize("name", sorted(FAMILY_FEATURES))
def test_family_checkpointing_gives_identical_gradients(name: str) -> None:
    _, checkpoint = FAMILY_FEATURES[name]
    torch.manual_seed(0)
    plain = resdsl.build_model(name, input_shape=FAMILY_INPUT).double()
    checkpointed = resdsl.build_model(name, input_shape=FAMILY_INPUT, checkpoint=checkpoint).double()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_same_step(plain, checkpointed, x)
    assert saved_bytes(checkpointed, x) < saved_bytes(plain, x) / 2  # it does keep less


@pytest.mark.parametrize(("name", "group"), [("efficientnet_b0", "blocks"), ("densenet121", "features")])
def test_checkpoint_all_on_stages_inside_a_group_names_the_group(name: str, group: str) -> None:
    """MobileNet's, EfficientNet's and DenseNet's stages lie inside one top-level group, which
    checkpoint=True cannot cut into: E746 says where they are and how to name the group."""
    with pytest.raises(ResdslError) as exc:
        resdsl.build_model(name, checkpoint=True)
    (found,) = exc.value.diagnostics
    assert found.code == "E746" and found.message.endswith(f"its stages are inside {group}")
    assert (
        found.help == f"name the group to checkpoint it as one segment (checkpoint=['{group}'], --checkpoint {group})"
    )
    assert resdsl.build_model(name, checkpoint=[group]).grad_checkpointing
