"""The inference build: batchnorm folded into convs (resdsl/ir/fold.py), the same outputs as the
training model in eval mode, for every shipped ImageNet spec.

Each spec runs at 3 x 32 x 32, batch 1, in float64, its training model built on the meta device
and given random float64 tensors (no initialisation or copying is paid for: the size of the
wide and 101/152-layer nets is what costs). The batchnorms get random running statistics, gamma
and beta, so a fold that drops eps, the mean or the variance shows.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import resdsl
from resdsl.backends.codegen import generate
from resdsl.diagnostics import ResdslError
from resdsl.ir import Network
from resdsl.ir.fold import fold_network, fold_state_dict
from resdsl.runtime import packed
from resdsl.runtime.packed import PackedConv2d, packing_available
from tests.conftest import FLOAT32_TOL, ROOT, TESTS, fixed_size, rel_error, shipped_networks, slow_if_heavy

# Folding reorders float64 arithmetic (w * s, then the conv, against the conv, then the affine
# map): ~1e-15 relative on these nets. 1e-9 leaves six orders of magnitude and still catches any
# wrong fold (eps or mean forgotten, a wrong pair) which shows at 1e-3 or worse.
FOLD_TOL = 1e-9
SMALL = (3, 32, 32)

IMAGENET = [name for name, _, shape in shipped_networks() if shape == (3, 224, 224)]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One thread for this module: these tiny float64 convolutions gain nothing from more, and
    on a busy machine an oversubscribed OpenMP pool made them 30x slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A float64 state_dict for ``model`` (which may live on the meta device): random weights
    scaled by fan-in, and non-trivial batchnorm statistics, gamma and beta."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        shape = tuple(value.shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var") or (len(shape) == 1 and key.endswith("weight")):
            out[key] = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
        elif len(shape) >= 2:  # uniform with variance 1 / fan_in: cheaper to draw than normal
            bound = (3 / math.prod(shape[1:])) ** 0.5
            out[key] = torch.empty(shape, dtype=torch.float64).uniform_(-bound, bound, generator=g)
        else:  # biases, running means
            out[key] = torch.randn(shape, generator=g, dtype=torch.float64) * 0.2
    return out


def trained(spec: str | Network) -> torch.nn.Module:
    """The spec's training model in float64 eval mode with random weights and statistics;
    built on the meta device and given its tensors, so no initialisation is paid for."""
    with torch.device("meta"):
        model = resdsl.build_model(spec)
    model.load_state_dict(random_state(model), assign=True)
    return model.eval()


def both(spec: str, **options: Any) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    net = resdsl.compile(spec, input_shape=None if fixed_size(spec) else SMALL)  # a ViT: its own size
    model = trained(net)
    inference = resdsl.build_model(net, mode="inference", weights=model.state_dict(), **options)
    x = torch.randn(1, *net.input_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return model, inference, x


@pytest.mark.parametrize("spec", slow_if_heavy(IMAGENET, half=0))
def test_inference_matches_eval_training(spec: str) -> None:
    model, inference, x = both(spec, channels_last=False)
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FOLD_TOL
    state = inference.state_dict()
    net = resdsl.compile(spec)
    # every batchnorm right after a conv is folded into it; one after a concatenation or an
    # activation (DenseNet's pre-activation layers) has no conv to go into, and stays
    unfoldable = [
        layer.path
        for layer in net.layers()
        if layer.op == "batchnorm" and net.layer(net.port(layer.id, 0) or "").op != "conv"
    ]
    left = sorted(k.removesuffix(".running_mean") for k in state if k.endswith("running_mean"))
    assert left == sorted(unfoldable), "a batchnorm after a conv is left"
    assert not inference.training and not any(p.requires_grad for p in inference.parameters())
    assert all(v.dtype == torch.float64 for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("spec", ["resnet18", "resnet18d"])
def test_inference_channels_last_by_default(spec: str) -> None:
    model, inference, x = both(spec)
    convs = [m for m in inference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FOLD_TOL


def test_imagenet_specs_found() -> None:
    assert {"resnet18", "resnet50", "resnet18d", "resnet34_a", "resnext50_32x4d", "seresnet50"} <= set(IMAGENET)
    assert len(IMAGENET) >= 25


@pytest.mark.parametrize("spec", ["resnet18", "resnet34_a", "resnet18d", "resnet20"])
def test_inference_scripts(spec: str) -> None:
    """TorchScript runs the inference model: plain blocks, option A shortcuts (ImageNet and
    CIFAR), a deep stem."""
    model, inference, x = both(spec, channels_last=False)
    scripted = torch.jit.script(inference)
    with torch.no_grad():
        assert rel_error(scripted(x), model(x)) < FOLD_TOL


# One member of each modern family (issue #18) that the ImageNet run above does not cover or
# whose layer norms it does not look at: ResNet-RS (a 160 x 160 net, so not in IMAGENET) and the
# ConvNeXts (LayerNorm has no conv to fold into: it stays, with its own weights).
FAMILY_MEMBERS = ["convnext_atto", "convnext_tiny", "resnetrs50"]


@pytest.mark.parametrize("spec", FAMILY_MEMBERS)
def test_modern_families_fold_the_norms_after_convs_and_keep_layer_norms(spec: str) -> None:
    model, inference, x = both(spec, channels_last=False)
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FOLD_TOL
    state = inference.state_dict()
    assert not [k for k in state if k.endswith("running_mean")]  # every batchnorm follows a conv
    net = resdsl.compile(spec)
    layer_norms = [layer.path for layer in net.layers() if layer.op == "layernorm"]
    assert len(layer_norms) == (0 if spec == "resnetrs50" else 1 + 3 + sum(net.params["depths"]) + 1)
    for path in layer_norms:  # the stem's, the downsamplings', every block's and the head's
        assert torch.equal(state[f"{path}.weight"], model.state_dict()[f"{path}.weight"]), path
    norms = [m for m in inference.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == len(layer_norms)


def test_option_a_adds_into_the_first_channels() -> None:
    """Option A's cheapest form at inference: no padded copy, no shortcut module."""
    inference = resdsl.build_model("resnet34_a", mode="inference", channels_last=False)
    assert "x[:, :64] += s0[:, :, ::2, ::2]" in type(inference.layer2[0]).resdsl_source
    assert not [name for name, _ in inference.named_modules() if "downsample" in name]


def test_preactivation_keeps_norms_after_additions() -> None:
    """Pre-activation nets normalise the sum of a residual addition: no conv to fold into, so
    those batchnorms stay (and the ones after a conv go)."""
    spec = "preact_resnet164"
    net = resdsl.compile(spec)
    _, plan = fold_network(net)
    assert plan.kept and plan.folds
    for path in plan.kept:  # each reads an addition, or a conv whose output is read elsewhere too
        norm = next(layer for layer in net.layers() if layer.path == path)
        source = net.inputs(norm.id)[0]
        assert net.layer(source).op != "conv" or net.graph.out_degree(source) > 1
    model = trained(net)
    inference = resdsl.build_model(net, mode="inference", weights=model.state_dict())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FOLD_TOL
    assert len([k for k in inference.state_dict() if k.endswith("running_mean")]) == len(plan.kept)


def test_fold_network_leaves_the_original() -> None:
    net = resdsl.compile("resnet18d")
    layers = len(list(net.layers()))
    folded, plan = fold_network(net)
    assert len(list(net.layers())) == layers
    assert len(list(folded.layers())) == layers - len(plan.folds) + sum(".downsample." in f[0] for f in plan.folds)
    assert not [layer for layer in folded.layers() if layer.op == "batchnorm"]
    # the deep stem is a numbered group: the layers after its batchnorms move up
    assert ("conv1.6", "conv1.4") in plan.renames
    assert [f for f in plan.folds if f[1] == "bn1"] == [("conv1.6", "bn1", "conv1.4", 1e-5)]


def test_fold_state_dict_numpy_equals_torch() -> None:
    """The weight maths is array-agnostic: numpy arrays fold to what torch tensors fold to."""
    _, plan = fold_network(resdsl.compile("resnet18"))
    state = trained("resnet18").state_dict()  # float64
    by_torch = fold_state_dict(state, plan)
    by_numpy = fold_state_dict({k: v.numpy() for k, v in state.items()}, plan)
    assert by_torch.keys() == by_numpy.keys()
    for key, value in by_torch.items():
        np.testing.assert_allclose(by_numpy[key], value.numpy(), rtol=1e-12, atol=0)


def test_weights_of_another_network_are_refused() -> None:
    """Weights are checked as for training (one mismatch report) before anything is folded."""
    state = trained("resnet18").state_dict()
    del state["layer1.0.bn1.running_var"]
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet18", mode="inference", weights=state)
    assert info.value.diagnostics[0].code == "E704"
    assert info.value.missing == ["layer1.0.bn1.running_var"]  # type: ignore[attr-defined]


def test_weights_folded_already_are_refused_as_such(tmp_path: Path) -> None:
    """An inference model's own state_dict (saved from a server) is E801, naming the file,
    not an E704 listing every batchnorm as missing."""
    served = resdsl.build_model("resnet20", mode="inference", channels_last=False)
    path = tmp_path / "served.safetensors"
    resdsl.save_weights(served, path)
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="inference", weights=path)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E801" and "folded already" in diagnostic.message
    assert diagnostic.span.file == str(path)


def test_a_missing_weights_file_is_refused() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="inference", weights="no-such-resnet20.pt")
    assert info.value.diagnostics[0].code == "E701"


def test_a_training_checkpoint_file_folds(tmp_path: Path) -> None:
    """build_model(spec, mode="inference", weights=PATH): the training checkpoint as saved by
    save_weights, folded; it equals the eval-mode training model."""
    model = trained("resnet20")
    path = tmp_path / "resnet20.safetensors"
    resdsl.save_weights(model, path)
    inference = resdsl.build_model("resnet20", mode="inference", weights=path, channels_last=False)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():  # the file keeps float64, and so does the model built from it
        assert rel_error(inference(x), model(x)) < FOLD_TOL


def test_training_options_are_refused_in_an_inference_build() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="inference", freeze_until="layer3")
    assert info.value.diagnostics[0].code == "E803" and "freeze_until" in info.value.diagnostics[0].message


def test_unknown_mode() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="deploy")
    assert info.value.diagnostics[0].code == "E802"


def test_inference_without_weights_is_the_folded_initialisation() -> None:
    """No weights: the training model's own initialisation, folded (identity batchnorms)."""
    torch.manual_seed(0)
    inference = resdsl.build_model("resnet20", mode="inference", channels_last=False)
    assert not inference.training
    assert inference.conv1.bias is not None and float(inference.conv1.bias.abs().max()) == 0.0


# -- the generated inference module -------------------------------------------------------

GOLDEN = TESTS / "golden"
UPDATE = os.environ.get("RESDSL_UPDATE_GOLDEN") == "1"


def inference_code(spec: str, **options: Any) -> str:
    return generate(resdsl.compile(spec), spec_arg=spec, inference=True, **options)


def load_generated(code: str, tmp_path: Path, name: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_golden() -> None:
    path = GOLDEN / "resnet18_inference.py"
    code = inference_code("resnet18")
    if UPDATE:
        path.write_text(code)
    assert path.read_text() == code, "generated code changed; rerun with RESDSL_UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("spec", ["resnet18", "resnet18d", "resnet34_a", "preact_resnet164"])
def test_generated_from_trained_matches_training(spec: str, tmp_path: Path) -> None:
    """The generated module folds a training state_dict by itself (it imports only torch) into
    a model equal to the training model in eval mode; and it scripts."""
    code = inference_code(spec)
    assert "resdsl" not in "".join(line for line in code.splitlines() if line.startswith(("import", "from")))
    module = load_generated(code, tmp_path, spec)
    net = resdsl.compile(spec, input_shape=SMALL)
    model = trained(net)
    inference = module.from_trained(model.state_dict(), channels_last=False)
    assert not inference.training and not any(p.requires_grad for p in inference.parameters())
    x = torch.randn(1, *SMALL, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FOLD_TOL
        if spec == "resnet18d":
            assert rel_error(torch.jit.script(inference)(x), model(x)) < FOLD_TOL
    built = resdsl.build_model(net, mode="inference", weights=model.state_dict(), channels_last=False)
    assert built.state_dict().keys() == inference.state_dict().keys()


def test_cli_build_inference(tmp_path: Path) -> None:
    target = tmp_path / "r18.py"
    done = subprocess.run(
        [sys.executable, "-m", "resdsl", "build", "resnet18", "--inference", "--no-channels-last", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    code = target.read_text()
    assert "resdsl build resnet18 --inference --no-channels-last -o" in code
    assert "channels_last: bool = False" in code and "def from_trained(" in code


# -- packed oneDNN weights (float32 on the CPU: float32 itself is under test) -------------


PACKING_FASTER = {"packed": 0.001, "plain": 0.002}  # what packing_pays measures where packing pays
PLAIN_FASTER = {"packed": 0.002, "plain": 0.001}


@pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN convolution ops")
def test_packed_convolutions_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """channels_last float32 inference models run their convs on weights packed for oneDNN
    once, where that measures faster: same outputs as eager (FLOAT32_TOL: oneDNN reorders
    float32 sums), same state_dict, scriptable, copyable, and load_state_dict packs the new weights."""
    monkeypatch.setattr(packed, "packing_pays", lambda *args: PACKING_FASTER)
    net = resdsl.compile("resnet18", input_shape=(3, 64, 64))
    model = trained(net).float()
    inference = resdsl.build_model(net, mode="inference", weights=model.state_dict())
    convs = [m for m in inference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(isinstance(m, PackedConv2d) and m.packing for m in convs)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        assert rel_error(inference(x), expected) < FLOAT32_TOL
        assert list(inference.conv1.packs) == [str(torch.Size([2, 3, 64, 64]))]  # measuring was patched out
        assert rel_error(torch.jit.script(inference)(x), expected) < FLOAT32_TOL
        assert rel_error(copy.deepcopy(inference)(x), expected) < FLOAT32_TOL
        plain = resdsl.build_model(net, mode="inference", weights=model.state_dict(), channels_last=False)
        assert not any(isinstance(m, PackedConv2d) for m in plain.modules())
        assert plain.state_dict().keys() == inference.state_dict().keys()
        scaled = {k: v * 1.5 if k.endswith("weight") else v for k, v in plain.state_dict().items()}
        plain.load_state_dict(scaled)
        inference.load_state_dict(scaled)
        assert rel_error(inference(x), plain(x)) < FLOAT32_TOL


@pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN convolution ops")
def test_a_conv_packs_its_weight_once_for_each_input_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN picks the weight's layout for the input size (one packed for batch 1 is reordered
    again on each call at batch 8, issue #21): a conv packs on its first call at each size,
    reuses that, keeps the last MAX_PACKED sizes, and packs again after load_state_dict."""
    monkeypatch.setattr(packed, "packing_pays", lambda *args: PACKING_FASTER)
    inference = resdsl.build_model("resnet18", mode="inference", input_shape=(3, 32, 32))
    conv = inference.conv1
    with torch.inference_mode():
        for batch in (1, 3, 1):
            inference(torch.randn(batch, 3, 32, 32))
        assert list(conv.packs) == [str(torch.Size([b, 3, 32, 32])) for b in (1, 3)]
        kept = conv.packs[str(torch.Size([3, 3, 32, 32]))]
        inference(torch.randn(3, 3, 32, 32))
        assert conv.packs[str(torch.Size([3, 3, 32, 32]))] is kept  # packed once
        for batch in range(4, 4 + PackedConv2d.MAX_PACKED):
            inference(torch.randn(batch, 3, 32, 32))
        assert list(conv.packs) == [str(torch.Size([b, 3, 32, 32])) for b in range(4, 4 + PackedConv2d.MAX_PACKED)]
        inference.load_state_dict(inference.state_dict())
        assert conv.packs == {}
        x = torch.randn(2, 3, 32, 32)
        assert rel_error(inference(x), inference.forward(x)) == 0  # fused or not: the same sums


@pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN convolution ops")
def test_generated_from_trained_packs_float32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_generated(inference_code("resnet18"), tmp_path, "resnet18_packed")
    monkeypatch.setattr(module, "packing_pays", lambda *args: PACKING_FASTER)
    model = trained(resdsl.compile("resnet18", input_shape=(3, 64, 64))).float()
    inference = module.from_trained(model.state_dict())
    assert all(isinstance(m, module.PackedConv2d) for m in inference.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FLOAT32_TOL


@pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN convolution ops")
def test_convs_stay_plain_where_packing_measures_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether packed weights are faster depends on the processor (issue #21): where the build's
    measurement finds the plain convs faster, it keeps them, exactly nn.Conv2d, and says why."""
    monkeypatch.setattr(packed, "packing_pays", lambda *args: PLAIN_FASTER)
    net = resdsl.compile("resnet18", input_shape=(3, 64, 64))
    model = trained(net).float()
    inference = resdsl.build_model(net, mode="inference", weights=model.state_dict())
    assert inference.resdsl_packing == PLAIN_FASTER
    convs = [m for m in inference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(m) is torch.nn.Conv2d and not hasattr(m, "packs") for m in convs)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FLOAT32_TOL
        assert rel_error(copy.deepcopy(inference)(x), model(x)) < FLOAT32_TOL


@pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN convolution ops")
def test_the_packing_follows_what_the_build_measured() -> None:
    """Unpatched: two batch-1 times, and the convs packed exactly when the packed time is the lower."""
    inference = resdsl.build_model("resnet18", mode="inference", input_shape=(3, 64, 64))
    times = inference.resdsl_packing
    assert set(times) == {"packed", "plain"} and all(0 < t < 60 for t in times.values())
    convs = [m for m in inference.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(isinstance(m, PackedConv2d) == (times["packed"] <= times["plain"]) for m in convs)


def test_an_inference_build_loads_strictly(tmp_path: Path) -> None:
    """A 10-class checkpoint into the 1000-class spec: refused (E704, the file named), never
    served with a classifier left at random initialisation as fine-tuning would keep it."""
    model = resdsl.build_model("resnet20", num_classes=7)
    path = tmp_path / "seven.safetensors"
    resdsl.save_weights(model, path)
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="inference", weights=path)
    assert info.value.diagnostics[0].code == "E704" and "seven.safetensors" in str(info.value)
    served = resdsl.build_model("resnet20", mode="inference", weights=path, num_classes=7)
    assert served.resdsl_load_report.path == str(path)


def test_a_head_is_part_of_the_network_in_an_inference_build_too() -> None:
    """head=N is architecture (a layer of the compiled network), not a training option: an
    inference build takes it, and refuses a head of zero outputs as a training build does."""
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="inference", head=0)
    assert info.value.diagnostics[0].code == "E708"
    served = resdsl.build_model("resnet20", mode="inference", head=3)
    assert served(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_generated_from_trained_reads_the_checkpoints_people_have(tmp_path: Path) -> None:
    """A checkpoint file, nested and with DDP's prefix, folds; a folded state_dict is refused
    with a message that names what it lacks, not a bare KeyError."""
    module = load_generated(inference_code("resnet20"), tmp_path, "resnet20")
    model = trained("resnet20")
    wrapped = {"epoch": 3, "model": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ckpt.pth.tar")
    inference = module.from_trained(str(tmp_path / "ckpt.pth.tar"), channels_last=False)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        assert rel_error(inference(x), model(x)) < FOLD_TOL
    with pytest.raises(ValueError, match=r"lacks bn1\.running_mean"):
        module.from_trained(inference.state_dict())


def test_generated_from_trained_refuses_parameters_that_change_its_layers(tmp_path: Path) -> None:
    """FOLDS is made for the layers the module was generated with: parameters that change them
    (a depth, a shortcut kind) are refused by name, before any folding; those that keep them
    (num_classes) fold as usual. An inference module has no Kaiming initialisation and no
    zero_init_residual: its weights always come from a trained model."""
    code = inference_code("resnet20")
    assert "kaiming" not in code and "zero_init_residual" not in code
    module = load_generated(code, tmp_path, "resnet20_layers")
    assert list(inspect.signature(module.resnet20).parameters) == ["n", "num_classes", "shortcut", "weights"]
    shallow = trained(resdsl.compile("resnet20", n=1))
    with pytest.raises(ValueError, match=r"^from_trained\(n=1\): these parameters change the network's layers"):
        module.from_trained(shallow.state_dict(), n=1)
    projecting = trained(resdsl.compile("resnet20", shortcut="projection"))
    with pytest.raises(ValueError, match=r"^from_trained\(shortcut='projection'\): these parameters change"):
        module.from_trained(projecting.state_dict(), shortcut="projection")
    seven = trained(resdsl.compile("resnet20", num_classes=7))
    served = module.from_trained(seven.state_dict(), channels_last=False, num_classes=7, n=3)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        assert rel_error(served(x), seven(x)) < FOLD_TOL


EPS_SPEC = """
block blk(planes, e = 0.001) {
    conv1 = conv(planes, k=3, p=1)
    bn1 = batchnorm(eps=e)
    residual(identity)
}
network epsnet(e = 0.001) {
    input 3 x 8 x 8
    conv1 = conv(4, k=3, p=1)
    bn1 = batchnorm()
    b = blk(4, e=e)
    fc = linear(2)
}
"""


def test_generated_from_trained_refuses_parameters_when_an_eps_depends_on_them(tmp_path: Path) -> None:
    """An eps computed from a parameter is in FOLDS as the generated value and leaves no trace
    in the layers: from_trained then takes no parameters, and folds the generated network exactly."""
    spec = tmp_path / "eps.arch"
    spec.write_text(EPS_SPEC, encoding="utf-8")
    net = resdsl.check(spec).networks[0]
    module = load_generated(generate(net, inference=True), tmp_path, "eps_inference")
    assert module.FOLDS[1] == ("b.conv1", "b.bn1", "b.conv1", 0.001)
    model = trained(net)
    with pytest.raises(ValueError, match=r"^from_trained\(e=0\.1\): the eps of a batchnorm that FOLDS folds"):
        module.from_trained(model.state_dict(), e=0.1)
    served = module.from_trained(model.state_dict(), channels_last=False)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        assert rel_error(served(x), model(x)) < FOLD_TOL


# -- The compiled inference build (issue #21 item 2) ------------------------------------------------


# The compiled build, in float64 where the path allows: inductor compiles float64 graphs (its C++
# kernels take doubles), but not frozen ones (oneDNN's weight packing takes no float64), so a
# float64 call compiles without freezing and is held to eval mode at FOLD_TOL. The frozen graph
# (float32, what a server runs: weights prepacked, conv+relu and conv+add+relu fused) is held to
# COMPILED_TOL against float64 eval mode: float32's unit roundoff u = 2**-24 ~ 6e-8, once per
# folded weight (w * s) and, at worst in practice, sqrt(K) u per dot product of K terms; over L
# layers ~ L sqrt(K) u = 20 * sqrt(64 * 9) * 6e-8 ~ 2.9e-5 for resnet20's 20 convs of at most
# 576 terms, so 1e-4 (about 3.5x that) is the bound; a wrong fold shows at 1e-3 or worse.
# About 10 s each with inductor's cache empty: slow.
COMPILED_TOL = 1e-4


def compiled_pair(net: Network, **options: Any) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The float64 eval-mode model's output, the float32 compiled build of its weights, and the input."""
    model = trained(net)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    state = {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    compiled = resdsl.build_model(net, mode="inference", weights=state, compile=True, **options)
    with torch.inference_mode():
        return compiled, model(x), x


@pytest.mark.slow
def test_a_compiled_inference_build_equals_eval_mode() -> None:
    """compile=True: the same module class and state_dict as without, the forward compiled in
    place by inductor; on the first call at a float32 size it times the compiled graph against
    the uncompiled build and keeps the faster (model.resdsl_compiled). Each path, frozen in
    float32, within COMPILED_TOL of float64 eval mode (the compiled graph reads the weights
    once, so one zeroed afterwards changes nothing); in float64 unfrozen and within FOLD_TOL;
    channels_last (the default) and contiguous alike."""
    net = resdsl.compile("resnet20")
    plain = resdsl.build_model(net, mode="inference", channels_last=False)
    for channels_last in (True, False):
        compiled, want, x = compiled_pair(net, channels_last=channels_last)
        assert type(compiled) is type(plain) and list(compiled.state_dict()) == list(plain.state_dict())
        call = compiled._compiled_call_impl  # type: ignore[attr-defined]  # nn.Module.compile's
        assert isinstance(call, packed.CompiledCall)
        with torch.inference_mode():
            chosen = compiled(x.float())
            assert rel_error(chosen.double(), want) < COMPILED_TOL
            ((key, times),) = compiled.resdsl_compiled.items()
            assert key == f"{list(x.shape)}, {torch.get_num_threads()} threads"
            assert set(times) == {"compiled", "uncompiled"} and all(0 < t < 60 for t in times.values())
            assert call.chosen[key] == (times["compiled"] <= times["uncompiled"])
            for compiled_graph in (True, False):
                call.chosen[key] = compiled_graph
                assert rel_error(compiled(x.float()).double(), want) < COMPILED_TOL
            call.chosen[key] = True
            got = compiled(x.float())
            compiled.conv1.weight.zero_()  # frozen: the graph holds the weights it was compiled with
            assert torch.equal(compiled(x.float()), got)
    model = trained(net)
    doubles = resdsl.build_model(net, mode="inference", weights=model.state_dict(), compile=True)
    with torch.inference_mode():
        got = doubles(x)
        assert got.dtype == torch.float64 and rel_error(got, model(x)) < FOLD_TOL


def test_compile_needs_a_cxx_compiler_and_says_so_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no c++, g++ or clang++ here
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", mode="inference", compile=True)
    assert info.value.code == "E804" and "c++, g++, clang++" in str(info.value)


def test_compile_is_an_inference_build_option() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", compile=True)
    assert info.value.code == "E805" and "mode='inference'" in str(info.value.diagnostics[0].help)


@pytest.mark.slow
def test_a_generated_inference_module_compiles_as_build_model_does(tmp_path: Path) -> None:
    """from_trained(..., compile=True): the same model as without, its forward compiled in place
    (compile_frozen, the code build_model runs): frozen in float32 within COMPILED_TOL of the
    training model's float64 eval mode, and in float64 within FOLD_TOL."""
    module = load_generated(inference_code("resnet20"), tmp_path, "resnet20_compiled")
    model = trained(resdsl.compile("resnet20"))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    singles = {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    for state, tol in ((singles, COMPILED_TOL), (model.state_dict(), FOLD_TOL)):
        compiled = module.from_trained(state, compile=True)
        assert compiled._compiled_call_impl is not None  # type: ignore[attr-defined]  # nn.Module.compile's
        with torch.inference_mode():
            got = compiled(x.to(next(iter(state.values())).dtype))
            assert rel_error(got.double(), model(x)) < tol


def test_a_generated_inference_module_says_when_compile_has_no_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a C++ compiler, from_trained(compile=True) is a RuntimeError that says so, before
    building anything (not inductor's traceback at the first call); compile=False still serves."""
    module = load_generated(inference_code("resnet20"), tmp_path, "resnet20_no_cxx")
    state = trained(resdsl.compile("resnet20")).state_dict()
    monkeypatch.setenv("PATH", str(tmp_path))  # no c++, g++ or clang++ here
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(
        RuntimeError, match=r"^compile=True needs a C\+\+ compiler, and none of c\+\+, g\+\+, clang\+\+"
    ):
        module.from_trained(state, compile=True)
    assert module.from_trained(state, channels_last=False).training is False
