"""Weights and preprocessing in generated modules and `resdsl build --weights` (issue #10, items 1
and 3): the generated file loads checkpoints and prepares images with the code build_model runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import resdsl
from resdsl.tools.cli import cli
from resdsl.weights import save_weights
from tests.backends.codegen.test_codegen import load_module as load


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    model = resdsl.build_model("resnet18", input_shape="3x64x64")
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(0.01)
    return model


@pytest.fixture(scope="module")
def built(source: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """``resdsl build resnet18 --input 3x64x64 --weights ...`` into another folder."""
    folder = tmp_path_factory.mktemp("generated")
    save_weights(source, folder / "resnet18.safetensors")
    out = folder / "models" / "net.py"
    args = ["build", "resnet18", "--input", "3x64x64", "--weights", str(folder / "resnet18.safetensors")]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "loaded 122 of 122 tensors from" in result.output
    return folder, load(out)


def test_build_with_weights_makes_them_the_factory_default(source: torch.nn.Module, built: tuple) -> None:
    folder, module = built
    code = (folder / "models" / "net.py").read_text()
    assert 'WEIGHTS = os.path.join(os.path.dirname(__file__), "../resnet18.safetensors")' in code
    assert "--weights" in code.splitlines()[1]  # the regenerate command keeps it
    model = module.resnet18()
    mine, theirs = model.state_dict(), source.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert not torch.equal(module.resnet18(weights=None).conv1.weight, source.conv1.weight)


def test_generated_load_weights_unwraps_and_reports_mismatches(source: torch.nn.Module, built: tuple) -> None:
    folder, module = built
    nested = folder / "ddp.pth"
    torch.save({"epoch": 1, "model": {f"module.{k}": v for k, v in source.state_dict().items()}}, nested)
    model = module.resnet18(weights=None)
    assert module.load_weights(model, nested) == 122
    assert torch.equal(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    state = dict(source.state_dict())
    state["layer2.0.conv1.weight"] = torch.zeros(5, 64, 3, 3)
    del state["fc.bias"]
    torch.save(state, folder / "bad.pt")
    with pytest.raises(ValueError) as info:
        module.load_weights(model, folder / "bad.pt")
    assert "missing from the checkpoint: fc.bias" in str(info.value)
    assert "shape of layer2.0.conv1.weight: model [128, 64, 3, 3], checkpoint [5, 64, 3, 3]" in str(info.value)


def test_generated_preprocess_is_build_models(source: torch.nn.Module, built: tuple) -> None:
    _, module = built
    assert module.INPUT_SIZE == source.input_size and module.MEAN == source.mean and module.STD == source.std
    images = torch.randint(0, 256, (2, 3, 90, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(module.preprocess(images), source.preprocess(images))
    assert module.preprocess(images).shape == (2, 3, 64, 64)


# run in a fresh interpreter where neither safetensors nor resdsl can be imported: torch alone
WITHOUT_SAFETENSORS = """
import sys
sys.modules["safetensors"] = sys.modules["resdsl"] = None
sys.path.insert(0, sys.argv[1])
import net
import torch
model = net.resnet18(weights=sys.argv[2])  # a torch file needs no safetensors
print("torch file:", int(torch.equal(model.conv1.weight, torch.load(sys.argv[2])["conv1.weight"])))
try:
    net.resnet18()  # the default: the .safetensors file it was built with
except ModuleNotFoundError as exc:
    print(f"{type(exc).__name__} {exc.name}: {exc}")
"""


def test_without_safetensors_a_generated_module_says_what_to_install(source: torch.nn.Module, built: tuple) -> None:
    """A module built with --weights x.safetensors imports and reads torch files with torch
    alone; reading its .safetensors default names the missing package and how to install it."""
    folder, _ = built
    torch.save(source.state_dict(), folder / "resnet18.pth")
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SAFETENSORS, str(folder / "models"), str(folder / "resnet18.pth")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "torch file: 1"
    assert lines[1].startswith("ModuleNotFoundError safetensors: reading ") and "resnet18.safetensors" in lines[1]
    assert "needs the safetensors package" in lines[1] and "pip install safetensors" in lines[1]


def test_a_checkpoint_that_does_not_fit_writes_nothing(source: torch.nn.Module, tmp_path: Path) -> None:
    ten = resdsl.build_model("resnet18", input_shape="3x64x64", num_classes=10)
    torch.save({"state_dict": ten.state_dict()}, tmp_path / "ten.pt")
    out = tmp_path / "net.py"
    args = ["build", "resnet18", "--input", "3x64x64", "--weights", str(tmp_path / "ten.pt"), "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "error[E704]" in result.output
    assert "shape of fc.weight: model [1000, 512], checkpoint [10, 512]" in result.output
    assert "--set num_classes=10" in result.output
    assert not out.exists()
    result = CliRunner().invoke(cli, [*args[:-2], "--set", "num_classes=10", "-o", str(out)])
    assert result.exit_code == 0, result.output


def test_grey_networks_carry_one_channel_of_preprocessing() -> None:
    code = resdsl.generate("resnet18", input_shape="1x64x64")
    assert "INPUT_SIZE = (1, 64, 64)" in code and "MEAN = (0.449,)" in code
    assert "self.conv1 = nn.Conv2d(1, 64" in code
