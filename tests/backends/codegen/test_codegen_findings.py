"""Regression tests for codegen findings: meta options, every shortcut kind a generated block
accepts, file modes, the Regenerate header, and project_from."""

from __future__ import annotations

import importlib.util
import itertools
import os
import shlex
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import resdsl
from resdsl.backends.codegen import generate, write_generated
from resdsl.tools.cli import cli

_counter = itertools.count()


def load_code(code: str, folder: Path) -> ModuleType:
    path = folder / f"findings_{next(_counter)}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_outputs(a: torch.nn.Module, b: torch.nn.Module, shape: tuple[int, ...]) -> None:
    a, b = a.double().eval(), b.double().eval()
    torch.manual_seed(0)
    state = {
        k: (torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.3)
        if v.is_floating_point()
        else v
        for k, v in b.state_dict().items()
    }
    a.load_state_dict(state)
    b.load_state_dict(state)
    x = torch.randn(2, *shape, dtype=torch.float64)
    assert torch.allclose(a(x), b(x), rtol=1e-10, atol=1e-12)


def test_meta_zero_init_and_syncbatchnorm(tmp_path: Path) -> None:
    spec = tmp_path / "opts.arch"
    spec.write_text(
        'import "std/blocks.arch"\n'
        'network opts() {\n  input 3 x 8 x 8\n  meta { zero_init_residual = true  norm = "syncbatchnorm" }\n'
        "  c = conv(8, k=3, p=1)\n  bn = batchnorm()\n  b = basic(16, stride=2)\n  fc = linear(2)\n}\n"
    )
    net = resdsl.compile(spec)
    module = load_code(generate(net), tmp_path)
    model, built = module.opts(), resdsl.build_model(net)
    kinds = lambda m: [(n, type(x).__name__) for n, x in m.named_modules() if "Norm" in type(x).__name__]  # noqa: E731
    assert kinds(model) == kinds(built) and "SyncBatchNorm" in dict(kinds(model)).values()
    zeroed = lambda m: sorted(k for k, v in m.state_dict().items() if k.endswith("weight") and not v.any())  # noqa: E731
    assert zeroed(model) == zeroed(built) == ["b.bn2.weight"]
    assert not zeroed(module.opts(zero_init_residual=False))
    same_outputs(model, built, (3, 8, 8))  # eval: SyncBatchNorm runs as BatchNorm without a process group


@pytest.fixture(scope="module")
def chooser(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """A network whose shortcut kind is its parameter: its Bottleneck takes the kind and
    chooses with make_shortcut (resnet50's kind is fixed, so its Bottleneck takes none)."""
    folder = tmp_path_factory.mktemp("chooser")
    spec = folder / "chooser.arch"
    spec.write_text(
        'import "std/blocks.arch"\nnetwork chooser(sc = projection) {\n  input 64 x 8 x 8\n'
        "  b = bottleneck(64, shortcut=sc)\n}\n"
    )
    return load_code(generate(resdsl.compile(spec)), folder)


def one_block(tmp_path: Path, call: str, channels: int) -> torch.nn.Module:
    spec = tmp_path / "one.arch"
    spec.write_text(f'import "std/blocks.arch"\nnetwork one() {{\n  input {channels} x 8 x 8\n  b = {call}\n}}\n')
    return resdsl.build_model(spec).b


@pytest.mark.parametrize(
    ("args", "call"),
    [
        ((256, 64), "bottleneck(64, shortcut=none)"),
        ((256, 128), "bottleneck(128, stride=2, shortcut=none)"),
        ((256, 128), "bottleneck(128, stride=2, shortcut=zero_pad)"),
        ((256, 64), "bottleneck(64, shortcut=zero_pad)"),
        ((256, 64), "bottleneck(64, shortcut=identity)"),
        ((64, 64), "bottleneck(64, shortcut=projection_all)"),
        ((64, 128), "bottleneck(128, stride=2, shortcut=avgpool_projection)"),
    ],
)
def test_generated_block_runs_every_shortcut_kind(chooser: ModuleType, tmp_path: Path, args: Any, call: str) -> None:
    kind = call.rpartition("shortcut=")[2].rstrip(")")
    stride = 2 if "stride=2" in call else 1
    block = chooser.Bottleneck(*args, stride=stride, shortcut=kind)
    built = one_block(tmp_path, call, args[0])
    assert [(k, v.shape) for k, v in block.state_dict().items()] == [
        (k, v.shape) for k, v in built.state_dict().items()
    ]
    same_outputs(block, built, (args[0], 8, 8))
    torch.jit.script(block)


@pytest.mark.parametrize(
    ("channels", "call"),
    [
        (256, "bottleneck(128, stride=2, shortcut=zero_pad)"),
        (256, "bottleneck(64, shortcut=zero_pad)"),
        (256, "bottleneck(64, shortcut=identity)"),
        (64, "bottleneck(64, shortcut=projection_all)"),
        (64, "bottleneck(128, stride=2, shortcut=avgpool_projection)"),
        (64, "bottleneck(64, shortcut=avgpool_projection)"),
        (64, "bottleneck(64, stride=2, shortcut=projection)"),
        (256, "bottleneck(64, shortcut=projection)"),
        (64, "bottleneck(64, shortcut=none)"),
    ],
)
def test_a_kind_fixed_by_the_spec_is_written_as_torchvision_writes_it(tmp_path: Path, channels: int, call: str) -> None:
    """Each kind written without make_shortcut (no kind string, no add_shortcut test): the same
    modules, keys and outputs as build_model's, and scriptable."""
    spec = tmp_path / "one.arch"
    spec.write_text(f'import "std/blocks.arch"\nnetwork one() {{\n  input {channels} x 8 x 8\n  b = {call}\n}}\n')
    code = generate(resdsl.compile(spec))
    for helper in ("make_shortcut", "add_shortcut", "SHORTCUT_KINDS", "shortcut: str"):
        assert helper not in code, helper
    assert ("class ZeroPadShortcut(" in code) == ("zero_pad" in call and channels == 256)
    model, built = load_code(code, tmp_path).one(), resdsl.build_model(spec)
    assert [(k, v.shape) for k, v in model.state_dict().items()] == [
        (k, v.shape) for k, v in built.state_dict().items()
    ]
    same_outputs(model, built, (channels, 8, 8))
    torch.jit.script(model)


def test_generated_block_refuses_what_it_cannot_run(chooser: ModuleType) -> None:
    with pytest.raises(ValueError, match="identity shortcut"):
        chooser.Bottleneck(64, 64, shortcut="identity")  # 64 -> 256 channels
    with pytest.raises(ValueError, match="zero_pad"):
        chooser.Bottleneck(1024, 64, shortcut="zero_pad")  # 1024 -> 256 channels
    with pytest.raises(ValueError, match="unknown shortcut kind"):
        chooser.Bottleneck(64, 64, shortcut="projecton")


def test_block_written_from_plain_instances_refuses_other_kinds(tmp_path: Path) -> None:
    spec = tmp_path / "plain.arch"
    spec.write_text(
        'import "std/blocks.arch"\nnetwork plain(sc = none) {\n  input 3 x 8 x 8\n'
        "  c = conv(8, k=3, p=1)\n  b = basic(8, shortcut=sc)\n}\n"
    )
    net = resdsl.compile(spec)
    module = load_code(generate(net), tmp_path)
    same_outputs(module.plain(), resdsl.build_model(net), (3, 8, 8))
    with pytest.raises(ValueError, match="residual absent"):
        module.plain(sc="projection")


def test_files_honour_the_umask_and_keep_an_existing_mode(tmp_path: Path) -> None:
    code = generate(resdsl.compile("resnet20"), spec_arg="resnet20")
    old = os.umask(0o022)
    try:
        write_generated(tmp_path / "new.py", code)
        assert stat.S_IMODE((tmp_path / "new.py").stat().st_mode) == 0o644
        os.umask(0o077)
        write_generated(tmp_path / "private.py", code)
        assert stat.S_IMODE((tmp_path / "private.py").stat().st_mode) == 0o600
        (tmp_path / "new.py").chmod(0o640)
        write_generated(tmp_path / "new.py", code)
        assert stat.S_IMODE((tmp_path / "new.py").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def command_of(code: str) -> list[str]:
    (line,) = [line for line in code.splitlines() if line.startswith("# Regenerate with: ")]
    return shlex.split(line.removeprefix("# Regenerate with: "))


def test_regenerate_header_quotes_and_names_everything(tmp_path: Path) -> None:
    target = tmp_path / "out.py"
    result = CliRunner().invoke(
        cli, ["build", "resnet50", "--set", "depths=[1,1,1,1]", "--input", "3x64x64", "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    argv = command_of(target.read_text())
    assert argv == ["resdsl", "build", "resnet50", "--set", "depths=[1,1,1,1]", "--input", "3x64x64", "-o", str(target)]
    spec = tmp_path / "two.arch"
    spec.write_text(
        "network first() {\n  input 3 x 8 x 8\n  c = conv(4)\n}\n"
        "network second() {\n  input 3 x 8 x 8\n  c = conv(4)\n}\n"
    )
    code = generate(resdsl.compile(spec, "second"), spec_arg=str(spec), output="o.py")
    assert command_of(code) == ["resdsl", "build", str(spec), "--network", "second", "-o", "o.py"]


def test_spec_path_with_newline_and_quotes(tmp_path: Path) -> None:
    folder = tmp_path / "a\nb'c\"d"
    folder.mkdir()
    spec = folder / "net.arch"
    spec.write_text("network net() {\n  input 3 x 8 x 8\n  c = conv(4)\n}\n")
    code = generate(resdsl.compile(spec), spec_arg=str(spec))
    header = code.partition("\n# ---\n")[0].splitlines()
    assert all(line.startswith("# ") for line in header) and len(header) == 4
    compile(code, "net.py", "exec")


PROJECT_FROM_AFTER_STRIDE = """
block tapped(c, s = 1, kind = projection) {
    a = conv(c, k=3, s=s, p=1)
    b = batchnorm()
    t = relu()
    d = conv(c, k=3, p=1)
    residual(kind, project_from=t)
}
network tap() {
    input 4 x 8 x 8
    b1 = tapped(8, 2)
    b2 = tapped(8)
}
"""


def test_project_from_a_tap_of_another_shape(tmp_path: Path) -> None:
    """Whether to project is decided on the block input (4 x 8 x 8 vs 8 x 4 x 4: yes); the
    projection reads the tap (8 x 4 x 4): a 1x1 conv 8 -> 8 at stride 1."""
    spec = tmp_path / "tap.arch"
    spec.write_text(PROJECT_FROM_AFTER_STRIDE)
    net = resdsl.compile(spec)
    module = load_code(generate(net), tmp_path)
    model = module.tap()
    assert model.b1.downsample[0].in_channels == 8 and model.b1.downsample[0].stride == (1, 1)
    assert model.b2.downsample is None
    shortcut = next(layer.shortcut for layer in net.layers() if layer.path == "b1.downsample")
    assert shortcut is not None and shortcut.kind == "projection" and shortcut.in_channels == 8
    same_outputs(model, resdsl.build_model(net), (4, 8, 8))


CHOICES = """\
block unit(c, act = true) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    relu if act else identity
    conv2 = conv(c, k=3, p=1)
    bn2   = batchnorm()
    residual(identity)
    gelu if act else silu
    conv3 = conv(c, k=1)
    residual(identity)
}

network choices(act = true) {
    input 3 x 8 x 8
    stem   = conv(4, k=3, p=1)
    relu if act else identity
    u1     = unit(4)
    u2     = unit(4, act=false)
    layer1 = stage(unit(4, act=false), repeat=2)
    fc     = linear(3)
}
"""


def test_conditional_layers_and_identity_residuals_build_the_same_in_both_back_ends(tmp_path: Path) -> None:
    """Anonymous conditional layers (`relu if act else identity`) and nameless residual(identity)s:
    build_model and the generated module are the same network. Instances of a block that choose
    different layers are built by one class that chooses them in its constructor, from its
    argument (one class written from the first instance ran relu where the second has identity)."""
    net = resdsl.compile(CHOICES)
    generated = load_code(generate(net), tmp_path).choices()
    built = resdsl.build_model(net)
    assert [(k, v.shape) for k, v in generated.state_dict().items()] == [
        (k, v.shape) for k, v in built.state_dict().items()
    ]
    assert type(generated.u1).__name__ == "Unit" and type(generated.u2) is type(generated.u1)
    assert type(generated.layer1[1]) is type(generated.u2)
    assert isinstance(generated.u2.identity, torch.nn.Identity) and isinstance(generated.u2.silu, torch.nn.SiLU)
    assert isinstance(generated.u1.relu, torch.nn.ReLU) and not hasattr(generated.u1, "identity")
    same_outputs(generated, built, (3, 8, 8))
