"""Names: the list of nn.Module attributes the checker refuses is torch's own."""

from __future__ import annotations

import keyword

import pytest
from torch import nn

from resdsl.backends.torch import ScopeModule
from resdsl.names import NN_MODULE_ATTRIBUTES, RESDSL_ATTRIBUTES, layer_name_problem


def test_the_attribute_list_covers_the_installed_torch() -> None:
    # torch.compile, once run in this process, patches in "___..." markers of its own
    owned = {n for n in dir(nn.Module()) if not (n.startswith("__") and n.endswith("__")) and not n.startswith("___")}
    assert owned <= NN_MODULE_ATTRIBUTES, sorted(owned - NN_MODULE_ATTRIBUTES)


def test_resdsls_own_module_attributes_are_reserved() -> None:
    module = ScopeModule("x")
    own = set(vars(module)) - set(vars(nn.Module()))
    assert own <= RESDSL_ATTRIBUTES | NN_MODULE_ATTRIBUTES, own


@pytest.mark.parametrize("name", [*keyword.kwlist, "forward", "training", "eval", "to", "__init__", "a.b", "kind"])
def test_names_a_module_cannot_carry_are_refused(name: str) -> None:
    assert layer_name_problem(name) is not None


@pytest.mark.parametrize("name", ["conv1", "bn1", "downsample", "layer1", "fc", "match", "_", "x", "out", "identity"])
def test_ordinary_names_pass(name: str) -> None:
    assert layer_name_problem(name) is None
