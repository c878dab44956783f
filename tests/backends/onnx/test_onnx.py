"""ONNX written straight from the IR (resdsl/backends/onnx.py): checker, onnxruntime against
build_model, names, metadata, weights, batch, no torch import, atomic writes.

onnxruntime computes in float32, which is the thing under test here: its outputs are compared
with build_model's float64 eval-mode outputs within FLOAT32_TOL (see conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resdsl
from resdsl.api import weight_arrays
from resdsl.backends.onnx import OPSET, onnx_model
from resdsl.backends.onnx import weights as onnx_weights
from resdsl.diagnostics import ResdslError
from tests.conftest import FLOAT32_TOL, ROOT, deterministic_fill, shipped_networks, slow_if_heavy, state_listing

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


class _ZeroWeights(onnx_weights.WeightSource):
    """Zeros of the right shapes: the checker reads structure, types and shapes, not values, and
    the shipped nets hold 1.1e9 parameters whose random draws would dominate the test's time."""

    def _get(self, key: str, shape: tuple[int, ...], init: Any, stored: bool) -> np.ndarray:
        return np.zeros(shape, np.float32)

    def check(self, network: str) -> None:  # nothing is looked up, so nothing is left over
        return None


@pytest.mark.parametrize(
    ("name", "path"),
    slow_if_heavy((n[:2] for n in shipped_networks()), half=0),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_shipped_network_passes_the_full_checker(name: str, path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("resdsl.backends.onnx.WeightSource", _ZeroWeights)
    net = resdsl.compile(path, network=name)
    model = onnx_model(net)
    onnx.checker.check_model(model, full_check=True)
    dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", *net.output_shape]
    assert model.opset_import[0].version == OPSET and model.graph.name == name


def _trained(spec: str) -> tuple[Any, dict[str, np.ndarray]]:
    """build_model's network with the fixtures' deterministic fill: non-trivial running statistics,
    scales and shifts, so a BatchNorm wired wrongly shows."""
    model = resdsl.build_model(spec)
    model.load_state_dict(deterministic_fill(state_listing(model)))
    return model.eval(), {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _run(model: Any, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def _compare(spec: str, batch: int = 2, **compile_args: Any) -> float:
    import torch

    net = resdsl.compile(spec, **compile_args)
    model = resdsl.build_model(net)
    model.load_state_dict(deterministic_fill(state_listing(model)))
    model.eval()
    weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    x = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.double()(x.double()).numpy()
    got = _run(onnx_model(net, weights, batch="dynamic"), x.numpy())
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("resnet18", "3x64x64"),
        ("resnet50", "3x64x64"),
        ("resnet110", None),
        ("preact_resnet164", None),
        ("convnext_atto", "3x64x64"),  # layer norms over channels, layer scale, 1x1-conv MLPs
        ("convnext_tiny", "3x64x64"),  # the MLP as per-position linears (pointwise_linear)
        ("resnetrs50", "3x64x64"),
        ("res2net50_26w_4s", "3x64x64"),  # res2_hierarchy: Split, per-chunk Conv/Add, AveragePool, Concat
        ("res2next50", "3x64x64"),  # the same with grouped 3x3 convs
        ("resnest14d", "3x64x64"),  # split attention: Reshape, ReduceSum, Transpose, Softmax, Mul
        # one member of each modern family (issue #18): concatenation, relu6, hard-swish and
        # hard-sigmoid gates, SiLU squeeze-excitation, skips only where the shapes agree, grouped
        # RegNet convs with named shortcut steps
        ("densenet121", "3x64x64"),
        ("mobilenetv2_100", "3x64x64"),
        ("mobilenetv3_large_100", "3x64x64"),
        ("efficientnet_b0", "3x64x64"),
        ("regnetx_002", "3x64x64"),
        ("regnety_004", "3x64x64"),
        # vision transformers at their own size (the position embedding's): patch Conv, class-token
        # Expand/Concat, attention as MatMul/Softmax, layer norms over the tokens' channels
        ("vit_tiny_patch16_224", None),
        ("deit_tiny_patch16_224", None),
        ("deit3_small_patch16_224", None),  # layer scale on tokens, the position added before the class token
    ],
)
def test_onnxruntime_equals_build_model_in_eval_mode(spec: str, shape: str | None) -> None:
    # every weight and op of the ImageNet nets shows at 64 x 64 (the 7 x 7 stem and maxpool included)
    assert _compare(spec, input_shape=shape) < FLOAT32_TOL  # float32 under test: onnxruntime computes in float32


def test_a_fine_tuning_head_exports_as_a_layer_of_the_network() -> None:
    assert _compare("resnet20", head=5) < FLOAT32_TOL  # float32: onnxruntime


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("resnet20", None),  # option A: strided Slice + channel Pad
        ("resnet18d", "3x41x41"),  # ResNet-D: ceil-mode average pool, count_include_pad=false, odd maps
    ],
)
def test_shortcut_kinds_match(spec: str, shape: str | None) -> None:
    assert _compare(spec, input_shape=shape) < FLOAT32_TOL  # float32 under test (onnxruntime)


ZOO = """
import "std/blocks.arch"

# every op the language has, and the shortcut kinds the shipped nets leave out
network zoo(num_classes = 7) {
    input 3 x 23 x 23
    stem  = sequential(conv(12, k=3, s=2, p=2, d=2, bias=true), groupnorm(3), silu)
    pool  = maxpool(k=3, s=2, p=1, ceil=true)
    b1    = basic(16, norm=groupnorm(4))
    b2    = se_bottleneck(4, stride=2, reduction=4, shortcut=avgpool_projection)
    b3    = basic(24, stride=2, shortcut=zero_pad)
    b4    = preact_basic(32)
    grp   = conv(32, k=3, p=1, groups=4)
    act   = leaky_relu(0.2)
    g     = gelu
    apool = avgpool(k=2, s=2, ceil=true, count_include_pad=false)
    sig   = sigmoid
    drop  = dropout(0.3)
    same  = identity
    fc1   = linear(20)
    bn    = batchnorm()
    flat  = flatten
    fc    = linear(num_classes)
}
"""


def test_every_op_and_shortcut_matches(tmp_path: Path) -> None:
    spec = tmp_path / "zoo.arch"
    spec.write_text(ZOO)
    assert _compare(str(spec), batch=3) < FLOAT32_TOL  # float32 under test (onnxruntime)
    ops = {node.op_type for node in onnx_model(resdsl.compile(str(spec))).graph.node}
    assert {"GroupNormalization", "Gelu", "LeakyRelu", "Slice", "Pad", "AveragePool", "Mul", "Gemm"} <= ops
    assert "Dropout" not in ops  # an inference graph


def test_ceil_mode_pooling_gives_torchs_windows() -> None:
    """torch drops a ceil-mode window that would start in the right padding; ONNX's size formula
    keeps it. Where they differ the exporter uses floor mode over explicit end padding."""
    import itertools

    import torch

    cases = 0
    for size, k, s, p in itertools.product((3, 4, 5, 7), (2, 3), (2, 3), (0, 1)):
        for call in (f"maxpool(k={k}, s={s}, p={p}, ceil=true)", f"avgpool(k={k}, s={s}, p={p}, ceil=true)"):
            result = resdsl.check(f"network t() {{\n input 2 x {size} x {size}\n p = {call}\n}}\n")
            if not result.ok:
                continue
            net = result.networks[0]
            model = onnx_model(net)
            onnx.checker.check_model(model, full_check=True)
            x = torch.randn(1, 2, size, size, generator=torch.Generator().manual_seed(cases))
            with torch.no_grad():
                expected = resdsl.build_model(net).double()(x.double()).numpy()
            assert np.abs(_run(model, x.numpy()) - expected).max() < 1e-6, call  # exact up to float32 rounding
            cases += 1
    assert cases > 40


def test_names_follow_the_spec_and_the_state_dict() -> None:
    """Initializers are the inference build's state_dict (batchnorms folded), or with fold=False
    the training build's; nodes are named by the spec's module paths."""
    net = resdsl.compile("seresnet50", input_shape="3x64x64")
    for fold, mode in ((True, "inference"), (False, "training")):
        model = onnx_model(net, fold=fold)
        built = resdsl.build_model(net, mode=mode, channels_last=False)
        keys = [k for k in built.state_dict() if not k.endswith("num_batches_tracked")]
        assert [t.name for t in model.graph.initializer] == keys
        names = {node.name for node in model.graph.node}
        assert {"conv1", "layer1.0.conv1", "layer1.0.se.fc1", "layer1.0.downsample.0"} <= names
        assert ("layer1.0.downsample.1" in names) is not fold  # the projection's batchnorm
        assert len(names) == len(model.graph.node)
        assert ("BatchNormalization" in {node.op_type for node in model.graph.node}) is not fold


def test_random_weights_are_seeded_and_drawn_like_build_model() -> None:
    net = resdsl.compile("resnet20")
    first, again, other = (onnx_model(net, seed=s, fold=False) for s in (0, 0, 1))
    value = {t.name: onnx.numpy_helper.to_array(t) for t in first.graph.initializer}
    assert all(np.array_equal(value[t.name], onnx.numpy_helper.to_array(t)) for t in again.graph.initializer), (
        "same seed, same weights"
    )
    assert not np.array_equal(value["conv1.weight"], onnx.numpy_helper.to_array(other.graph.initializer[0]))
    conv = value["layer3.0.conv1.weight"]  # 64 x 32 x 3 x 3: Kaiming normal, fan_out = 64 * 9
    assert abs(conv.std() / np.sqrt(2 / (64 * 9)) - 1) < 0.05
    assert (value["layer1.0.bn1.weight"] == 1).all() and (value["layer1.0.bn1.running_var"] == 1).all()
    bound = 1 / np.sqrt(64)
    assert np.abs(value["fc.weight"]).max() <= bound and np.abs(value["fc.weight"]).max() > 0.9 * bound
    assert "random" in first.doc_string


def test_dynamic_and_fixed_batch() -> None:
    """A dynamic batch runs any batch size, a fixed one its own; both give build_model's eval-mode
    outputs (float64) within FLOAT32_TOL, and the same outputs as each other for the same input."""
    import torch

    model, weights = _trained("resnet20")
    net = resdsl.compile("resnet20")
    dynamic = onnx_model(net, weights, batch="dynamic")
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    fixed = onnx_model(net, weights, batch=4)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    for n in (1, 4, 5):
        x = np.random.default_rng(n).standard_normal((n, 3, 32, 32), dtype=np.float32)
        with torch.no_grad():
            expected = model.double()(torch.from_numpy(x).double()).numpy()
        got = _run(dynamic, x)
        assert got.shape == (n, 10) and np.abs(got - expected).max() / np.abs(expected).max() < FLOAT32_TOL
        if n == 4:
            assert np.abs(_run(fixed, x) - got).max() / np.abs(expected).max() < FLOAT32_TOL
    with pytest.raises(ResdslError) as info:
        onnx_model(net, batch="many")
    assert info.value.code == "E823"


def test_the_batch_is_dynamic_unless_fixed(tmp_path: Path) -> None:
    """As timm's exporter and serving stacks expect: a symbolic batch by default, in the API and
    on the command line; ``--batch 8`` fixes it."""
    dims = onnx_model(resdsl.compile("resnet20")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    for args, first in (((), "batch"), (("--batch", "8"), 8)):
        out = tmp_path / f"r{len(args)}.onnx"
        assert _cli("resnet20", "-o", str(out), *args, cwd=tmp_path).returncode == 0
        graph = onnx.load(str(out)).graph
        for value in (graph.input[0], graph.output[0]):
            dim = value.type.tensor_type.shape.dim[0]
            assert (dim.dim_param or dim.dim_value) == first


def test_metadata() -> None:
    model = onnx_model(resdsl.compile("resnet50", input_shape="3x64x64"))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(props["std"]) == [0.229, 0.224, 0.225]
    assert props["input_size"] == "3x64x64" and props["network"] == "resnet50" and props["weights"] == "random"
    assert json.loads(props["parameters"])["depths"] == [3, 4, 6, 3]
    assert model.producer_name == "resdsl" and model.graph.name == "resnet50"
    assert model.doc_string.startswith("resnet50 from") and "25,557,032 parameters" in model.doc_string


def test_weights_from_safetensors_and_torch_checkpoints(tmp_path: Path) -> None:
    import torch
    from safetensors.numpy import save_file

    torch_model, weights = _trained("resnet20")
    save_file(weights, str(tmp_path / "w.safetensors"))
    torch.save(torch_model.state_dict(), tmp_path / "w.pt")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    net = resdsl.compile("resnet20")
    reference = _run(onnx_model(net, weights, batch=2), x)
    for name in ("w.safetensors", "w.pt"):
        path = tmp_path / name
        model = onnx_model(net, weight_arrays(path), batch=2, origin=str(path))
        assert np.array_equal(_run(model, x), reference)
        assert {p.key: p.value for p in model.metadata_props}["weights"] == str(tmp_path / name)


def test_weights_that_do_not_fit_are_listed() -> None:
    _, weights = _trained("resnet20")
    del weights["conv1.weight"]
    weights["fc.weight"] = np.zeros((3, 3), np.float32)
    weights["extra.bias"] = np.zeros(3, np.float32)
    with pytest.raises(ResdslError) as info:
        onnx_model(resdsl.compile("resnet20"), weights)
    d = info.value.diagnostics[0]
    assert d.code == "E822" and "1 missing, 1 of the wrong shape, 1 unexpected" in d.message
    assert any("conv1.weight" in n for n in d.notes) and any("extra.bias" in n for n in d.notes)


@pytest.mark.parametrize(("name", "content"), [("w.safetensors", b"not safetensors"), ("w.npz", b""), ("no.pt", None)])
def test_unreadable_weights(tmp_path: Path, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ResdslError) as info:
        onnx_model(resdsl.compile("resnet20"), weight_arrays(path))
    # anything but .safetensors is read as a torch checkpoint, by build_model's own reader (E701-E703)
    assert info.value.code == ("E701" if content is not None and not name.endswith(".safetensors") else "E821")
    assert info.value.span.file == str(path)


def test_torch_checkpoints_are_read_as_build_model_reads_them(tmp_path: Path) -> None:
    """Nested under 'model'/'state_dict', DDP's module. prefix, a .pth.tar name: as build_model."""
    import torch

    model, weights = _trained("resnet20")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    net = resdsl.compile("resnet20")
    want = _run(onnx_model(net, weights), x)
    wrapped = {"epoch": 3, "model": {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}}
    torch.save(wrapped, tmp_path / "ckpt.pth.tar")
    assert np.array_equal(_run(onnx_model(net, weight_arrays(tmp_path / "ckpt.pth.tar")), x), want)


def test_export_does_not_import_torch(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(_trained("resnet20")[1], str(tmp_path / "w.safetensors"))
    script = (
        "import sys, resdsl\n"
        f"resdsl.export_onnx('resnet20', {str(tmp_path / 'a.onnx')!r}, batch='dynamic')\n"
        "from resdsl.tools.cli import main\n"
        "try:\n"
        f"    main(['export', 'resnet20', '-o', {str(tmp_path / 'b.onnx')!r}, "
        f"'--weights', {str(tmp_path / 'w.safetensors')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')], 'torch imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("a.onnx", "b.onnx"):
        onnx.checker.check_model(str(tmp_path / name), full_check=True)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "resdsl", "export", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_cli_reports_bad_input_and_leaves_no_file(tmp_path: Path) -> None:
    spec = tmp_path / "bad.arch"
    spec.write_text("network bad() {\n    input 3 x 8 x 8\n    conv1 = conv(8, k=3, s=2)\n    residual(identity)\n}\n")
    result = _cli("bad.arch", "-o", "bad.onnx", cwd=tmp_path)
    assert result.returncode == 1 and "bad.arch:4:5: error[E301]" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bad.onnx").exists()
    result = _cli("resnet20", "--batch", "0", cwd=tmp_path)
    assert result.returncode == 1 and "E823" in result.stderr
    assert list(tmp_path.iterdir()) == [spec]


def test_writes_are_atomic_and_keep_foreign_files(tmp_path: Path, monkeypatch: Any) -> None:
    target = tmp_path / "net.onnx"
    resdsl.export_onnx("resnet20", target)
    original = target.read_bytes()
    _, weights = _trained("resnet20")
    del weights["fc.bias"]
    with pytest.raises(ResdslError) as info:  # bad weights: the old file stays as it was
        resdsl.export_onnx("resnet20", target, weights=weights)
    assert info.value.code == "E822" and target.read_bytes() == original

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ResdslError) as info:  # a failed write: no partial file, no temporary left
        resdsl.export_onnx("resnet20", target, seed=3)
    assert info.value.code == "E502" and target.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]
    monkeypatch.undo()

    foreign = tmp_path / "mine.onnx"
    foreign.write_text("my notes")
    with pytest.raises(ResdslError) as info:
        resdsl.export_onnx("resnet20", foreign)
    assert info.value.code == "E824" and foreign.read_text() == "my notes"
    resdsl.export_onnx("resnet20", foreign, force=True)
    onnx.checker.check_model(str(foreign), full_check=True)
    resdsl.export_onnx("resnet20", target, seed=5)  # its own files are replaced without --force
    assert target.read_bytes() != original


def test_what_onnx_cannot_hold_is_refused(monkeypatch: Any) -> None:
    mixed = "network t() {\n input 2 x 1 x 2\n p = avgpool(k=4, s=3, p=2, ceil=true)\n}\n"
    with pytest.raises(ResdslError) as info:  # torch drops the last window on one axis only
        onnx_model(resdsl.compile(mixed))
    assert info.value.code == "E826" and info.value.span.line == 3
    monkeypatch.setattr("resdsl.backends.onnx.PROTOBUF_LIMIT", 1000)
    with pytest.raises(ResdslError) as info:
        onnx_model(resdsl.compile("resnet20"))
    assert info.value.code == "E825"


def test_a_missing_onnx_package_is_a_diagnostic(tmp_path: Path) -> None:
    script = "import sys\nsys.modules['onnx'] = None\nfrom resdsl.tools.cli import main\nmain(['export', 'resnet20'])\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1 and "error[E820]" in result.stderr and "resdsl[onnx]" in result.stderr
    assert list(tmp_path.iterdir()) == []


SHORTCUT_NORMS = """
block b(c, stride = 1, norm = batchnorm(), shortcut = projection) {
    conv1 = conv(c, k=3, s=stride, p=1)
    bn1   = batchnorm()
    residual(shortcut, norm=norm)
}
network n(norm = batchnorm(), shortcut = projection) {
    input 3 x 9 x 9
    stem = conv(8, k=3, p=1)
    b1   = b(16, stride=2, norm=norm, shortcut=shortcut)
    b2   = b(24, norm=norm, shortcut=shortcut)
}
"""


@pytest.mark.parametrize("norm", ["groupnorm(4)", "layernorm()", 'layernorm(over="last")', "false"])
@pytest.mark.parametrize("shortcut", ["projection", "avgpool_projection"])
def test_shortcut_steps_match_with_every_norm(tmp_path: Path, norm: str, shortcut: str) -> None:
    """Each step of a shortcut is its op's own ONNX form, on the step's own input shape (a
    layernorm over the last dimension normalises the map's width, as build_model's does)."""
    spec = tmp_path / "n.arch"
    spec.write_text(SHORTCUT_NORMS)
    assert _compare(str(spec), norm=norm, shortcut=shortcut) < FLOAT32_TOL  # float32 under test: onnxruntime


def test_the_input_follows_sizes_computed_from_the_parameters() -> None:
    """``input 3 x img_size x img_size``: the graph's input and its input_size metadata are the
    alias's size (resnetrs50 160), an override's (--set img_size=97) or --input's."""
    for kwargs, side in (({}, 160), ({"params": {"img_size": 97}}, 97), ({"input_shape": "3x193x193"}, 193)):
        model = onnx_model(resdsl.compile("resnetrs50", **kwargs))
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims[1:]] == [3, side, side]
        assert {p.key: p.value for p in model.metadata_props}["input_size"] == f"3x{side}x{side}"
