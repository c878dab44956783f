"""The three fine-tuning modes of the ResNet notes (issue #10, item 2): for each, which parameters
train, that one optimizer step changes exactly those, and that frozen batchnorm statistics stay
put when asked. ResNet-18's layout with one block per stage at 3 x 32 x 32 (every stage, stem and
classifier as in ResNet-18, half the work), one checkpoint for the module."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import resdsl
from resdsl.diagnostics import ResdslError
from resdsl.tools.cli import cli
from resdsl.weights import WeightsWarning, save_weights
from tests.conftest import SAME_MACHINE_TOL, rel_error

SMALL = {"input_shape": "3x32x32", "depths": [1, 1, 1, 1]}
STEM = ("conv1.", "bn1.", "layer1.", "layer2.")  # what freeze_until="layer3" freezes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("finetune") / "resnet18.safetensors"
    save_weights(resdsl.build_model("resnet18", **SMALL), path)
    return path


def build(checkpoint: Path, **options: object) -> torch.nn.Module:
    return resdsl.build_model("resnet18", weights=checkpoint, **SMALL, **options)  # type: ignore[arg-type]


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_step(model: torch.nn.Module) -> set[str]:
    """One SGD step on random data over *all* parameters; the names of the tensors it changed."""
    before = snapshot(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 32, 32, generator=generator)
    out = model(images)
    loss = torch.nn.functional.cross_entropy(out, torch.randint(0, out.shape[1], (4,), generator=generator))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def params(model: torch.nn.Module) -> set[str]:
    return {name for name, _ in model.named_parameters()}


def stats(names: set[str]) -> set[str]:
    return {n for n in names if n.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_mode_1_loads_and_trains_everything(checkpoint: Path) -> None:
    model = build(checkpoint)
    assert trainable(model) == params(model)
    changed = train_step(model)
    assert params(model) <= changed  # every parameter moved, and the batchnorm statistics too
    assert stats(changed)


@pytest.mark.parametrize("how", ["freeze_until", "freeze"])
def test_mode_2_trains_the_last_stages_and_keeps_frozen_batchnorm_fixed(checkpoint: Path, how: str) -> None:
    stem = [s.rstrip(".") for s in STEM]
    option: dict[str, object] = {"freeze_until": "layer3"} if how == "freeze_until" else {"freeze": stem}
    model = build(checkpoint, freeze_bn=True, **option)
    later = {n for n in params(model) if not n.startswith(STEM)}
    assert trainable(model) == later and later
    changed = train_step(model)
    assert changed - stats(changed) == later
    assert stats(changed) and all(not n.startswith(STEM) for n in stats(changed))  # layer3's statistics moved
    assert not model.layer1[0].bn1.training and model.layer3[0].bn1.training


def test_mode_2_without_the_option_frozen_batchnorm_statistics_move(checkpoint: Path) -> None:
    model = build(checkpoint, freeze_until="layer3")
    changed = train_step(model)
    assert changed - stats(changed) == {n for n in params(model) if not n.startswith(STEM)}
    assert "layer1.0.bn1.running_mean" in changed  # why freeze_bn exists


def test_mode_3_replaces_the_classifier_and_trains_only_it(checkpoint: Path) -> None:
    with pytest.warns(WeightsWarning, match="fc.weight kept at initialisation"):
        model = build(checkpoint, num_classes=10, freeze_until="fc", freeze_bn=True)
    assert trainable(model) == {"fc.weight", "fc.bias"}
    assert train_step(model) == {"fc.weight", "fc.bias"}  # no statistic moved either
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_mode_3_adds_a_fully_connected_layer_on_top(checkpoint: Path) -> None:
    with pytest.warns(WeightsWarning, match="head.weight kept at initialisation: not in the checkpoint"):
        model = build(checkpoint, head=10, freeze_until="head", freeze_bn=True)
    reference = resdsl.build_model("resnet18", weights=checkpoint, **SMALL)
    assert torch.equal(model.fc.weight, reference.fc.weight)  # the old classifier loaded
    assert trainable(model) == {"head.weight", "head.bias"}
    assert train_step(model) == {"head.weight", "head.bias"}
    model.eval().double()
    reference.eval().double()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        assert rel_error(out, model.head(reference(x))) < SAME_MACHINE_TOL
        assert rel_error(torch.jit.script(model)(x), out) < SAME_MACHINE_TOL
        assert rel_error(pickle.loads(pickle.dumps(model))(x), out) < SAME_MACHINE_TOL


def test_the_head_is_a_layer_of_the_checked_network() -> None:
    """head=N is compiled into the network, so the checker, the summary and every back end see it."""
    plain, net = resdsl.compile("resnet18", **SMALL), resdsl.compile("resnet18", head=10, **SMALL)
    assert net.head == 10 and net.output.path == "head" and net.output_shape == (10,)
    assert net.num_params == plain.num_params + 1000 * 10 + 10
    assert net.inputs(net.output.id) == [plain.output.id]  # on top of the old classifier


def test_a_model_fine_tuned_with_a_head_ships_as_generated_code_and_an_inference_build(
    checkpoint: Path, tmp_path: Path
) -> None:
    """The fine-tuned model, saved, loads into a generated module built with --head and into an
    inference build with head=, and both give the training model's outputs (float64)."""
    with pytest.warns(WeightsWarning):
        model = build(checkpoint, head=4, freeze_until="head")
    train_step(model)
    saved = tmp_path / "tuned.safetensors"
    save_weights(model.double(), saved)  # float64 on disk: every build below computes in float64
    model.eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
    target = tmp_path / "tuned.py"
    done = CliRunner().invoke(
        cli, ["build", "resnet18", "--set", "depths=[1,1,1,1]", "--input", "3x32x32", "--head", "4", "-o", str(target)]
    )
    assert done.exit_code == 0, done.output
    text = target.read_text()
    assert "--head 4" in text.splitlines()[1]  # the regenerate command keeps it
    assert "self.head = nn.Linear(num_classes, 4)" in text and "x = self.head(x)" in text
    spec = importlib.util.spec_from_file_location("tuned", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.resnet18().double().eval()
    assert module.load_weights(generated, saved) == len(model.state_dict())
    served = resdsl.build_model("resnet18", mode="inference", head=4, weights=saved, **SMALL)
    with torch.no_grad():
        assert rel_error(generated(x), expected) <= SAME_MACHINE_TOL
        assert rel_error(served(x), expected) <= SAME_MACHINE_TOL


def test_freeze_works_on_any_module_by_path() -> None:
    from resdsl.weights.finetune import freeze

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 4, 1))
    assert freeze(model, ["0", "1"], bn_eval=True) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    model.train()
    assert not model[1].training and model[2].weight.requires_grad


@pytest.mark.parametrize(
    ("options", "code", "text"),
    [
        ({"freeze_until": "layr3"}, "E705", "did you mean 'layer3'"),
        ({"freeze": ["layer2.0.conv9"]}, "E705", "layer2.0.conv1"),
        ({"freeze_bn": True}, "E706", "nothing is frozen"),
        ({"strip_prefix": "backbone."}, "E706", "strip_prefix"),
        ({"head": 0}, "E708", "positive"),
        ({"head": 10, "features": ["layer2"]}, "E708", "feature maps"),
    ],
)
def test_fine_tuning_options_that_make_no_sense_are_clear_errors(options: dict, code: str, text: str) -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet20", **options)
    assert info.value.code == code
    assert text in str(info.value.diagnostics[0])


def test_a_network_that_has_a_head_cannot_take_another(tmp_path: Path) -> None:
    spec = tmp_path / "headed.arch"
    spec.write_text(
        "network headed() {\n    input 3 x 8 x 8\n    conv1 = conv(4, k=3)\n    head = linear(2)\n}\n",
        encoding="utf-8",
    )
    with pytest.raises(ResdslError) as info:
        resdsl.build_model(spec, head=10)
    assert info.value.code == "E708" and "headed already defines 'head'" in str(info.value)
    assert info.value.diagnostics[0].span.line == 4  # the layer that clashes, not the option
    done = CliRunner().invoke(cli, ["check", str(spec), "--head", "0"])
    assert done.exit_code == 2 and "--head" in done.output  # click's range check: a usage error


def test_a_checkpoint_with_a_head_says_to_build_with_one(tmp_path: Path) -> None:
    saved = tmp_path / "headed.safetensors"
    save_weights(resdsl.build_model("resnet18", head=5, **SMALL), saved)
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet18", weights=saved, **SMALL)
    assert "a fine-tuning head of 5 outputs: build with --head 5 (API: head=5)" in str(info.value)
    with pytest.raises(ResdslError) as info:
        resdsl.build_model("resnet18", mode="inference", head=4, weights=saved, **SMALL)
    assert "the checkpoint's head has 5 outputs: build with --head 5 (API: head=5)" in str(info.value)
    plain = tmp_path / "plain.safetensors"
    save_weights(resdsl.build_model("resnet18", **SMALL), plain)
    with pytest.raises(ResdslError) as info:  # serving weights that were never fine-tuned with a head
        resdsl.build_model("resnet18", mode="inference", head=4, weights=plain, **SMALL)
    assert "the checkpoint has no head: build without --head" in str(info.value)
