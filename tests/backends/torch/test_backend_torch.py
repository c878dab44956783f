"""The PyTorch back end: exactly torchvision's networks, real shapes equal the checker's,
and the ecosystem (torch.compile, export, trace, channels_last, DDP, SyncBatchNorm) works."""

from __future__ import annotations

import copy
import math
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from typing import Any

import pytest
import torch
from torch import nn

import resdsl
from resdsl.api import shipped_names
from resdsl.backends.torch import shortcut_module
from resdsl.ops import OPS, ShapeError
from resdsl.ops.shortcut import SHORTCUT_KINDS, realise_shortcut
from resdsl.runtime.shortcuts import make_shortcut, with_bias
from tests.conftest import (
    FLOAT32_TOL,
    REFERENCE_TOL,
    ROOT,
    SAME_MACHINE_TOL,
    TORCHVISION_MODELS,
    built_run,
    compiled,
    rel_error,
    slow_if_heavy,
)


@pytest.mark.parametrize("name", slow_if_heavy(TORCHVISION_MODELS))
def test_matches_torchvision(name: str, manifest: dict[str, Any], reference_outputs_f64: dict[str, Any]) -> None:
    run = built_run(name)  # built, deterministic fill, float64 on the fixture's input; cached for test_codegen
    assert run["listing"] == manifest[name]["state_dict"]  # same keys, shapes, dtypes, in the same order
    assert run["num_params"] == manifest[name]["num_params"]
    want = reference_outputs_f64["outputs"][name]
    assert rel_error(run["eval"], want["output_eval"]) < REFERENCE_TOL  # float64: the policy in conftest
    assert rel_error(run["train"], want["output_train"]) < REFERENCE_TOL


EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.arch"))


@pytest.mark.parametrize("name", slow_if_heavy(sorted(shipped_names()) + EXAMPLES, half=1))
def test_real_shapes_equal_inferred_shapes(name: str) -> None:
    net = compiled(name)
    model = resdsl.build_model(net).eval()
    expected: dict[str, set[tuple[int, ...]]] = {}
    for layer in net.layers():
        op = OPS.get(layer.op)
        if op is None or op.merge is not None or op.own_param is not None:  # the input node, too
            continue  # merges and parameters of their block (layer_scale's gamma) run no module of their own
        if op.own_modules is not None:  # its modules are its block's (res2_hierarchy's convs): each on one chunk
            scope = layer.scope.path if layer.scope is not None else ""
            chunk = (layer.attrs["width"], *layer.shape[1:])  # type: ignore[index]
            for i in range(layer.attrs["scale"] - 1):
                expected.setdefault(f"{scope}.convs.{i}", set()).add(chunk)
            continue
        scope = layer.scope.path if layer.scope is not None else ""
        path = f"{scope}.{layer.module}" if scope else layer.module
        expected.setdefault(path, set()).add(layer.shape)  # type: ignore[arg-type]
    for scope in net.root.scopes():
        if scope.path:
            expected.setdefault(scope.path, set()).add(net.layer(scope.output).shape)  # type: ignore[arg-type]
    seen: dict[str, set[tuple[int, ...]]] = {}
    handles = [
        module.register_forward_hook(lambda m, i, o, p=path: seen.setdefault(p, set()).add(tuple(o.shape[1:])))
        for path, module in model.named_modules()
        if path in expected
    ]
    with torch.no_grad():
        out = model(torch.randn(1, *net.input_shape))
    for h in handles:
        h.remove()
    assert tuple(out.shape[1:]) == net.output_shape
    assert seen == expected


def test_initialisation_like_torchvision() -> None:
    model = resdsl.build_model("resnet50")
    conv = model.layer3[0].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() - math.sqrt(2 / fan_out)) < 0.1 * math.sqrt(2 / fan_out)
    bn = model.layer3[0].bn3
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    zero = resdsl.build_model("resnet50", zero_init_residual=True)
    assert torch.all(zero.layer3[0].bn3.weight == 0) and torch.all(zero.layer3[0].bn2.weight == 1)
    assert torch.all(resdsl.build_model("resnet18", zero_init_residual=True).layer1[1].bn2.weight == 0)


def test_option_a_shortcut_has_no_parameters_and_pads_zeros() -> None:
    model = resdsl.build_model("resnet20").eval()
    shortcut = model.layer2[0].downsample
    assert sum(p.numel() for p in shortcut.parameters()) == 0
    x = torch.randn(2, 16, 32, 32)
    y = shortcut(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and torch.all(y[:, 16:] == 0)


def test_avgpool_projection_is_resnet_d(tmp_path: Any) -> None:
    spec = tmp_path / "d.arch"
    spec.write_text(
        'import "std/blocks.arch"\nnetwork d() {\n  input 3 x 32 x 32\n  conv1 = conv(64, k=3, p=1)\n'
        "  layer1 = stage(bottleneck(64, shortcut=avgpool_projection), repeat=1)\n"
        "  layer2 = stage(bottleneck(128, shortcut=avgpool_projection), repeat=1, stride=2)\n}\n"
    )
    model = resdsl.build_model(spec)
    keys = [k for k in model.state_dict() if "downsample" in k and k.endswith("weight")]
    # timm's layout: a stride-1 projection keeps an identity in the pooling slot
    assert keys == ["layer1.0.downsample.1.weight", "layer1.0.downsample.2.weight",
                    "layer2.0.downsample.1.weight", "layer2.0.downsample.2.weight"]  # fmt: skip
    assert isinstance(model.layer1[0].downsample[0], nn.Identity)
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512, 16, 16)


def test_syncbatchnorm_option() -> None:
    model = resdsl.build_model("resnet20", norm="syncbatchnorm")
    kinds = {type(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert kinds == {nn.SyncBatchNorm}
    with pytest.raises(ValueError):
        resdsl.build_model("resnet20", norm="groupnorm")


def test_trace_export_channels_last() -> None:
    model = resdsl.build_model("resnet18").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        # channels_last is a float32 kernel choice, so it is compared in float32 (FLOAT32_TOL: the NHWC
        # kernels sum in another order)
        want = model(x)
        cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        assert rel_error(cl(x.to(memory_format=torch.channels_last)), want) < FLOAT32_TOL
        # tracing and export must not change the computation: float64, the same kernels, a tight bound
        model, x = model.double(), x.double()
        want = model(x)
        traced = torch.jit.trace(model, x)
        assert rel_error(traced(x), want) < SAME_MACHINE_TOL
        exported = torch.export.export(model, (x,))
        assert rel_error(exported.module()(x), want) < SAME_MACHINE_TOL


def test_trace_and_export_a_vision_transformer() -> None:
    """Tokens, the class token's concatenation and scaled_dot_product_attention trace and export
    without changing the computation (float64, a tight bound)."""
    model = resdsl.build_model("deit3_small_patch16_224", params={"depth": 2}).double().eval()
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        want = model(x)
        assert rel_error(torch.jit.trace(model, x)(x), want) < SAME_MACHINE_TOL
        assert rel_error(torch.export.export(model, (x,)).module()(x), want) < SAME_MACHINE_TOL


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "shape"), [("resnet20", (3, 32, 32)), ("resnet18", (3, 64, 64)), ("vit_tiny_patch16_224", (3, 224, 224))]
)
def test_torch_compile_fullgraph(name: str, shape: tuple[int, ...]) -> None:
    torch._dynamo.reset()
    model = resdsl.build_model(name).eval()
    x = torch.randn(2, *shape)
    fast = torch.compile(model, fullgraph=True)  # raises on any graph break
    with torch.no_grad():
        # float32 on purpose: inductor's own fused kernels are what runs (FLOAT32_TOL, see conftest)
        assert rel_error(fast(x), model(x)) < FLOAT32_TOL


DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch, torch.distributed as dist
    import resdsl
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, world, port = int(sys.argv[1]), 2, sys.argv[2]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=__import__("datetime").timedelta(seconds=60))
    torch.manual_seed(0)
    model = DDP(resdsl.build_model("resnet20"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    for _ in range(3):
        x = torch.randn(4, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (4,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "parameters differ across ranks"
    assert not torch.equal(flat, torch.cat([p.flatten() for p in resdsl.build_model("resnet20").parameters()]))
    dist.destroy_process_group()
    print("ok", rank)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_keep_parameters_identical(tmp_path: Any) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    port = str(_free_port())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(rank), port], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for rank in range(2)
    ]  # fmt: skip
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            outputs.append((p.returncode, out, err))
    finally:
        for p in procs:
            p.kill()
    for rank, (code, out, err) in enumerate(outputs):
        assert code == 0 and f"ok {rank}" in out, err[-2000:]


def test_spec_may_be_source_text_or_a_compiled_network() -> None:
    text = (
        'import "std/blocks.arch"\n'
        "network tiny(w = 8) {\n  input 3 x 16 x 16\n  c = conv(w, k=3, p=1)\n  b = basic(w)\n}\n"
    )
    model = resdsl.build_model(text, w=4)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 4, 16, 16)
    assert "block=basic" in repr(model)
    net = resdsl.compile(text)
    assert resdsl.build_model(net).b.conv1.out_channels == 8
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.build_model(text.replace("k=3", "k=33"))
    assert info.value.code == "E303"


def test_zero_init_residual_can_come_from_the_spec() -> None:
    text = (
        'import "std/blocks.arch"\nnetwork z(zero_init_residual = true) {\n  input 3 x 8 x 8\n'
        "  c = conv(8, k=3, p=1)\n  b = basic(8)\n}\n"
    )
    assert torch.all(resdsl.build_model(text).b.bn2.weight == 0)
    assert torch.all(resdsl.build_model(text, zero_init_residual=False).b.bn2.weight == 1)


def test_modules_are_named_after_their_block_and_network() -> None:
    """print(model) and torch's own messages name the block or network (they said
    Scope_c60b638e6013): the network's class, each block's, and the frame of a failing forward."""
    import pickle
    import traceback

    model = resdsl.build_model("resnet18")
    shown = repr(model)
    assert shown.startswith("ResNet(\n") and "(0): BasicBlock(\n" in shown and "Scope_" not in shown
    with pytest.raises(RuntimeError, match="Error\\(s\\) in loading state_dict for ResNet"):
        model.load_state_dict({})
    with pytest.raises(AttributeError, match="'BasicBlock' object has no attribute 'conv9'"):
        model.layer1[0].conv9  # noqa: B018
    try:
        model.layer1[0](torch.randn(1, 3, 8, 8))  # a wrong input shape: 3 channels where it takes 64
    except RuntimeError:
        frames = traceback.format_exc()
    else:
        raise AssertionError("the block ran on 3 channels")
    assert "<resdsl BasicBlock " in frames and "expected input[1, 3, 8, 8] to have 64 channels" in frames
    assert type(resdsl.build_model("resnet50").layer1[0]).__name__ == "Bottleneck"
    copied = pickle.loads(pickle.dumps(model))
    assert type(copied).__name__ == "ResNet" and type(copied.layer1[0]).__name__ == "BasicBlock"
    assert torch.jit.script(model) is not None  # classes that share a name still script


def test_blocks_with_one_body_keep_their_own_names() -> None:
    text = (
        "block left(c) {\n  conv1 = conv(c, k=3, p=1)\n}\nblock right_hand(c) {\n  conv1 = conv(c, k=3, p=1)\n}\n"
        "network two_names() {\n  input 3 x 8 x 8\n  a = left(4)\n  b = right_hand(4)\n}\n"
    )
    model = resdsl.build_model(text)
    assert (type(model).__name__, type(model.a).__name__, type(model.b).__name__) == ("TwoNames", "Left", "RightHand")


# -- make_shortcut (what generated files run where a kind is a run-time parameter) against the
# realised description build_model builds from (Shortcut.steps through the op table)


@dataclass(frozen=True)
class _Case:
    """A residual's shapes: block input, main branch, the block's stride, and a project_from tap."""

    block_input: tuple[int, int, int]
    main: tuple[int, int, int]
    stride: int
    tap: tuple[int, int, int] | None = None
    tap_stride: int = 1


SHORTCUT_CASES = {
    "same shape": _Case((16, 7, 7), (16, 7, 7), 1),
    # odd maps: ResNet-D's ceil-mode pooling has a last window that is cut short
    "stride 2": _Case((16, 7, 7), (16, 4, 4), 2),
    "channel change": _Case((16, 7, 7), (32, 7, 7), 1),
    "project_from tap": _Case((16, 7, 7), (32, 4, 4), 2, tap=(24, 7, 7), tap_stride=2),
    "tap at the main shape": _Case((16, 7, 7), (32, 4, 4), 2, tap=(32, 4, 4), tap_stride=1),
}
# (the checker's norm argument, make_shortcut's, an inference build's folded bias)
SHORTCUT_NORMS: dict[str, tuple[Any, Any, bool]] = {
    "batchnorm": (True, True, False),
    "no norm": (False, False, False),
    "groupnorm": (("groupnorm", {"groups": 4}), lambda c: nn.GroupNorm(4, c), False),
    "batchnorm eps": (("batchnorm", {"eps": 1e-3}), lambda c: nn.BatchNorm2d(c, eps=1e-3), False),
    "folded (bias)": (True, False, True),  # generated inference files: norm=False, then with_bias
}


def _described(kind: str, case: _Case, norm: Any, bias: bool) -> nn.Module | None:
    """The module build_model makes: the realised shortcut (as checks.realise picks its source)
    built from its steps."""
    changes = case.block_input != case.main
    tapped = case.tap is not None and kind != "identity" and (changes or kind == "projection_all")
    source, stride = (case.tap, case.tap_stride) if tapped else (case.block_input, case.stride)
    assert source is not None
    shortcut = realise_shortcut(kind, case.main, source, norm, stride, changes=changes)
    if bias:  # as resdsl.ir.fold leaves a projection whose batchnorm it folded
        shortcut = replace(shortcut, norm=False, norm_op="batchnorm", norm_args=(), bias=True)
    return shortcut_module(shortcut)


def _runtime(kind: str, case: _Case, norm: Any, bias: bool) -> nn.Module | None:
    """What a generated file's make_shortcut makes for the same residual."""
    tap = (case.tap[0], case.tap_stride) if case.tap is not None else (None, None)
    module = make_shortcut(kind, case.block_input[0], case.main[0], case.stride, norm, *tap)
    return with_bias(module) if bias else module


def _settings(module: nn.Module) -> tuple[type, dict[str, Any]]:
    """A module's class and its plain attributes (stride, eps, ceil_mode, count_include_pad...)."""
    return type(module), {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"}


def _filled(module: nn.Module) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in module.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen, dtype=value.dtype) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen, dtype=value.dtype)
    return state


@pytest.mark.parametrize("norm", SHORTCUT_NORMS, ids=str)
@pytest.mark.parametrize("case", SHORTCUT_CASES, ids=str)
@pytest.mark.parametrize("kind", [k for k in SHORTCUT_KINDS if k != "identity_if_same"])  # a run-time kind
def test_make_shortcut_builds_what_the_description_says(kind: str, case: str, norm: str) -> None:
    """The same module classes, repr, state_dict keys and shapes, and equal float64 outputs
    (eval and train) with the same weights; where one refuses the shapes, so does the other."""
    shapes = SHORTCUT_CASES[case]
    checker_norm, runtime_norm, bias = SHORTCUT_NORMS[norm]
    try:
        made = _runtime(kind, shapes, runtime_norm, bias)
    except ValueError:
        with pytest.raises(ShapeError):
            _described(kind, shapes, checker_norm, bias)
        return
    built = _described(kind, shapes, checker_norm, bias)
    if made is None or built is None:
        assert made is None and built is None
        return
    assert [_settings(m) for m in made.modules()] == [_settings(m) for m in built.modules()]
    assert repr(made) == repr(built)
    assert [(k, v.shape) for k, v in made.state_dict().items()] == [(k, v.shape) for k, v in built.state_dict().items()]
    made.double(), built.double()
    state = _filled(made)
    made.load_state_dict(state)
    built.load_state_dict(state)
    source = shapes.tap if shapes.tap is not None and kind not in ("identity", "none") else shapes.block_input
    x = torch.randn(2, *source, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        made.train(train), built.train(train)
        want = made(x)
        assert tuple(want.shape[1:]) == shapes.main
        assert rel_error(built(x), want) < SAME_MACHINE_TOL


SHORTCUT_NORM_SPEC = """
block b(c, stride = 1, norm = batchnorm(), shortcut = projection) {
    conv1 = conv(c, k=3, s=stride, p=1)
    bn1   = batchnorm()
    residual(shortcut, norm=norm)
}
network n(norm = batchnorm(), shortcut = projection) {
    input 3 x 9 x 9
    stem = conv(8, k=3, p=1)
    b1   = b(16, stride=2, norm=norm, shortcut=shortcut)
}
"""


@pytest.mark.parametrize(
    "norm", ["batchnorm(eps=1e-3)", "groupnorm(4)", "layernorm()", 'layernorm(over="last")', "false"]
)
@pytest.mark.parametrize("shortcut", ["projection", "avgpool_projection"])
def test_the_checkers_shortcut_parameters_are_the_built_models(tmp_path: Any, norm: str, shortcut: str) -> None:
    """The checker counts a shortcut from the steps build_model builds; a layernorm over the
    last dimension used to be built over 1 value (its norm made for a 1 x 1 map), not the map's
    width the checker counted."""
    spec = tmp_path / "n.arch"
    spec.write_text(SHORTCUT_NORM_SPEC)
    net = resdsl.compile(spec, norm=norm, shortcut=shortcut)
    model = resdsl.build_model(net)
    assert net.num_params == sum(p.numel() for p in model.parameters())
    assert model(torch.randn(2, 3, 9, 9)).shape == (2, *net.output_shape)
