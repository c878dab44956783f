"""Names: the list of nn.Module attributes the checker refuses is torch's own."""

from __future__ import annotations

import keyword
from pathlib import Path

import pytest
from torch import nn

import resdsl
from resdsl.backends.torch import ScopeModule
from resdsl.syntax.names import NN_MODULE_ATTRIBUTES, RESDSL_ATTRIBUTES, FreshNames, layer_name_problem


def test_the_attribute_list_covers_the_installed_torch() -> None:
    # torch.compile, once run in this process, patches in "___..." markers of its own
    owned = {n for n in dir(nn.Module()) if not (n.startswith("__") and n.endswith("__")) and not n.startswith("___")}
    assert owned <= NN_MODULE_ATTRIBUTES, sorted(owned - NN_MODULE_ATTRIBUTES)


def test_resdsls_own_module_attributes_are_reserved() -> None:
    module = ScopeModule("x")
    own = set(vars(module)) - set(vars(nn.Module()))
    assert own <= RESDSL_ATTRIBUTES | NN_MODULE_ATTRIBUTES, own


def test_every_attribute_resdsl_puts_on_a_model_is_refused_as_a_layer_name(tmp_path: Path) -> None:
    """A layer named like one (preprocess, grad_checkpointing, resdsl_...) would clash with it:
    the checker refuses the name (E505) instead of the build failing with a traceback."""
    path = tmp_path / "resnet20.safetensors"
    resdsl.save_weights(resdsl.build_model("resnet20"), path)
    models = [
        resdsl.build_model("resnet20", features=["layer1", "layer2"], checkpoint=True, weights=path),
        resdsl.build_model("resnet20", checkpoint=True, head=3, weights=path, freeze_until="head"),
        resdsl.build_model("resnet20", mode="inference", weights=path),
    ]
    plain = set(vars(nn.Module())) | set(dir(nn.Module))
    for model in models:
        own = (set(vars(model)) | set(dir(type(model)))) - plain - {"input_size", "mean", "std"}  # see describe()
        allowed = sorted(name for name in own if layer_name_problem(name) is None)
        assert own and not allowed, allowed


@pytest.mark.parametrize("name", [*keyword.kwlist, "forward", "training", "eval", "to", "__init__", "a.b", "kind"])
def test_names_a_module_cannot_carry_are_refused(name: str) -> None:
    assert layer_name_problem(name) is not None


@pytest.mark.parametrize("name", ["conv1", "bn1", "downsample", "layer1", "fc", "match", "_", "x", "out", "identity"])
def test_ordinary_names_pass(name: str) -> None:
    assert layer_name_problem(name) is None


def test_fresh_names_number_past_every_taken_name() -> None:
    taken = {"relu", "relu_2"}
    fresh = FreshNames(taken, {"relu_1"})
    assert [fresh("relu") for _ in range(2)] == ["relu_3", "relu_4"]
    assert fresh("conv") == "conv"
    assert FreshNames({"a"}, sep="#")("a") == "a#1"
