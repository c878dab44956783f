"""The inference build's conv fusion (resdsl/runtime/fusion.py): which convs fuse, that a fused
model computes what its own forward does (FLOAT32_TOL: oneDNN's kernels run in float32, which
is what is under test; fusing changes no sum's order, so a wrong fusion shows at 1e-1), and that
nothing the fusion writes into is a tensor anyone else can still see."""

from __future__ import annotations

import copy
import io
import pickle
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import resdsl
from resdsl.runtime.fusion import FusedCall, fuse_convolutions
from resdsl.runtime.packed import packing_available
from tests.conftest import FLOAT32_TOL, fixed_size, rel_error
from tests.weights.test_inference import inference_code, load_generated, trained

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN convolution ops")


def cl(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).contiguous(
        memory_format=torch.channels_last
    )


def ready(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return model.eval().requires_grad_(False).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def fused_convs(model: nn.Module) -> dict[str, str]:
    """Each fused conv's name in the model, and what it fuses: "relu", "add" or "add+relu"."""
    call = model._compiled_call_impl
    assert isinstance(call, FusedCall)
    named = {id(m): n for n, m in model.named_modules()}
    out = {}
    for node in call.graph.graph.nodes:
        if node.op == "call_module" and str(node.target).startswith("resdsl_fused_"):
            fused = call.graph.get_submodule(str(node.target))
            ops = ["add"] * (len(node.args) == 2) + [fused.unary] * (fused.unary is not None)
            out[named[id(fused.conv)]] = "+".join(ops)
    return out


def test_a_resnet_fuses_every_conv_with_its_relu_and_its_residual_addition() -> None:
    model = resdsl.build_model("resnet18", mode="inference", input_shape=(3, 32, 32))
    assert model.resdsl_fusion == "17 convs fused"
    fused = fused_convs(model)
    assert fused["conv1"] == fused["layer1.0.conv1"] == "relu" and fused["layer1.0.conv2"] == "add+relu"
    assert "layer2.0.downsample.0" not in fused  # read by the addition, which adds into its output
    x = cl(2, 3, 32, 32)
    with torch.inference_mode():
        assert rel_error(model(x), model.forward(x)) < FLOAT32_TOL


def test_a_bottleneck_adds_into_its_shortcut_and_each_block_into_the_last_blocks_output() -> None:
    model = resdsl.build_model("resnet50", mode="inference", input_shape=(3, 32, 32))
    assert model.resdsl_fusion == "49 convs fused"  # the stem, and 3 in each of 16 blocks
    x = cl(1, 3, 32, 32)
    with torch.inference_mode():
        assert rel_error(model(x), model.forward(x)) < FLOAT32_TOL


class Reused(nn.Module):
    """An addition's other operand read again after it: it must not be written into."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self.pool(x)
        return torch.relu(self.b(self.a(x)) + y), y * 2


class OwnInput(nn.Module):
    """The conv reads the tensor its sum would be written into."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.pool = nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pool(x)
        return torch.relu(self.a(y) + y)


class Viewed(nn.Module):
    """A view of the other operand outlives the addition."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.pool = nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self.pool(x)
        view = y.flatten(1)
        return self.a(x) + y, view


class InputAdded(nn.Module):
    """The other operand is the caller's own input."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.relu(self.a(x) + x)


class Writable(nn.Module):
    """A fresh tensor, read only before the addition by an op that copies it: written into."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.pool = nn.MaxPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pool(x)
        z = self.b(y)  # reads y before the addition
        return self.a(z) + y


@pytest.mark.parametrize(
    ("net", "expected"),
    [
        (Reused, {}),
        (OwnInput, {}),
        (Viewed, {}),
        (InputAdded, {}),
        (Writable, {"a": "add"}),
    ],
)
def test_a_sum_is_written_only_into_a_tensor_nobody_reads_afterwards(net: type[nn.Module], expected: dict) -> None:
    model = ready(net())
    unfused = copy.deepcopy(model)
    fuse_convolutions(model)
    assert (fused_convs(model) if model._compiled_call_impl is not None else {}) == expected
    x = cl(2, 4, 8, 8)
    seen = x.clone()
    with torch.inference_mode():
        got, want = model(x), unfused(x)
        for g, w in zip(*((t,) if isinstance(t, Tensor) else t for t in (got, want)), strict=True):
            assert rel_error(g, w) < FLOAT32_TOL
    assert torch.equal(x, seen)  # the caller's input is never written


def test_hooks_training_and_other_dtypes_run_the_models_own_forward() -> None:
    """A hook on any module fires (the fused graph would skip it); training mode, float64 and
    inputs that need gradients take the unfused ops."""
    model = resdsl.build_model("resnet18", mode="inference", input_shape=(3, 32, 32))
    seen: list[tuple[int, ...]] = []
    handle = model.layer3.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    x = cl(1, 3, 32, 32)
    with torch.inference_mode():
        model(x)
    handle.remove()
    assert seen == [(1, 256, 2, 2)]
    with torch.inference_mode():
        fused = model(x)
        model.train()
        assert rel_error(model(x), fused) < FLOAT32_TOL  # no batchnorm left: training mode computes the same
        model.eval()
    doubles = copy.deepcopy(model).double()
    with torch.inference_mode():
        assert rel_error(doubles(x.double()), fused.double()) < FLOAT32_TOL
    grad = x.clone().requires_grad_(True)
    assert rel_error(model(grad).detach(), fused) < FLOAT32_TOL


def test_a_module_replaced_after_the_build_is_what_runs() -> None:
    """``model.fc = nn.Identity()`` (features, say): the next call fuses the model as it is now."""
    model = resdsl.build_model("resnet18", mode="inference", input_shape=(3, 32, 32))
    x = cl(2, 3, 32, 32)
    with torch.inference_mode():
        assert model(x).shape == (2, 1000)
        model.fc = nn.Identity()
        features = model(x)
        assert features.shape == (2, 512) and rel_error(features, model.forward(x)) < FLOAT32_TOL
    assert fused_convs(model)["layer4.1.conv2"] == "add+relu"


def test_a_fused_model_copies_pickles_and_scripts() -> None:
    model = resdsl.build_model("resnet18", mode="inference", input_shape=(3, 32, 32))
    x = cl(2, 3, 32, 32)
    with torch.inference_mode():
        want = model(x)
        copied = copy.deepcopy(model)
        assert isinstance(copied._compiled_call_impl, FusedCall) and copied._compiled_call_impl.model is copied
        assert rel_error(copied(x), want) < FLOAT32_TOL
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert rel_error(loaded(x), want) < FLOAT32_TOL
        assert rel_error(pickle.loads(pickle.dumps(model))(x), want) < FLOAT32_TOL
        assert rel_error(torch.jit.script(model)(x), want) < FLOAT32_TOL  # its own forward, unfused
        assert list(model.state_dict()) == list(resdsl.build_model("resnet18", mode="inference").state_dict())


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.a(x)
        return torch.relu(y) if y.sum() > 0 else y  # control flow on a value: torch.fx cannot trace it


def test_a_forward_fx_cannot_trace_runs_unfused_and_says_why() -> None:
    model = ready(Branchy())
    assert fuse_convolutions(model) == 0
    assert model._compiled_call_impl is None
    assert model.resdsl_fusion.startswith("not fused: torch.fx cannot trace the forward (TraceError")


def test_a_generated_inference_module_fuses_as_build_model_does(tmp_path: Path) -> None:
    module = load_generated(inference_code("resnet18"), tmp_path, "resnet18_fused")
    net = resdsl.compile("resnet18", input_shape=(3, 32, 32))
    model = trained(net).float()
    served = module.from_trained(model.state_dict())
    assert served.resdsl_fusion == "17 convs fused" and isinstance(served._compiled_call_impl, module.FusedCall)
    x = cl(2, 3, 32, 32)
    with torch.inference_mode():
        assert rel_error(served(x), model(x)) < FLOAT32_TOL


# one network of each block design (the fusion reads ops, not families): basic and bottleneck
# blocks, option A's zero-padded shortcut (its forward does not trace: unfused), ResNet-D's
# pooled shortcut, gates, split attention, res2net's hierarchy, ConvNeXt (nothing to fuse),
# RegNet, the inverted residuals and DenseNet's concatenations
FAMILIES = [
    "resnet18",
    "resnet34_a",
    "resnet50",
    "resnet50d",
    "seresnet50",
    "resnest14d",
    "res2net50_26w_4s",
    "convnext_atto",
    "regnetx_002",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "densenet121",
]


@pytest.mark.parametrize("spec", FAMILIES)
def test_every_shipped_network_fused_computes_its_eval_mode(spec: str) -> None:
    """Each shipped family's float32 inference build, fused where it fuses, against its float64
    training model in eval mode (FLOAT32_TOL) and its own unfused forward."""
    net = resdsl.compile(spec, input_shape=None if fixed_size(spec) else (3, 32, 32))
    model = trained(net)
    inference = resdsl.build_model(net, mode="inference", weights={k: v.float() for k, v in model.state_dict().items()})
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        got = inference(x.float())
        assert rel_error(got, inference.forward(x.float())) < FLOAT32_TOL
        assert rel_error(got.double(), model(x)) < FLOAT32_TOL
