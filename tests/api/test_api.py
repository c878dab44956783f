"""The Python API's namespaces: the spec's parameters (``params=`` or keywords that are no
option) and each function's own options (``norm``, ``mode``, ``head``, ...) never mix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import resdsl
from resdsl.diagnostics.codes import entries

MODES = """
import "std/blocks.arch"
network moded(mode = "plain", width = 8) {
    input 3 x 16 x 16
    stem = conv(width, k=3, p=1)
    extra = conv(width, k=1) if mode == "wide" else identity()
    b = basic(width)
    avgpool = global_avgpool()
    fc = linear(3)
}
"""


def test_a_spec_parameter_named_like_an_option_goes_in_params() -> None:
    """compile("resnet18", norm="groupnorm(32)") sets the spec's norm; build_model's norm= is the
    batchnorm class, so the same keyword there was refused with "norm must be 'batchnorm' or
    'syncbatchnorm'". params= sets the parameter; the option keeps working beside it."""
    net = resdsl.compile("resnet18", norm="groupnorm(32)")
    model = resdsl.build_model("resnet18", params={"norm": "groupnorm(32)"})
    assert isinstance(model.bn1, nn.GroupNorm) and model.bn1.num_groups == 32
    assert sum(p.numel() for p in model.parameters()) == net.num_params
    assert isinstance(resdsl.build_model("resnet18", norm="syncbatchnorm").bn1, nn.SyncBatchNorm)
    both = resdsl.build_model("resnet18", norm="syncbatchnorm", params={"norm": "batchnorm"})
    assert isinstance(both.bn1, nn.SyncBatchNorm)
    assert resdsl.compile("resnet18", params={"norm": "groupnorm(32)"}).num_params == net.num_params


def test_an_option_given_the_parameters_value_is_refused_before_building() -> None:
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.build_model("resnet18", norm="groupnorm(32)")
    message = str(info.value)
    assert info.value.code == "E219"
    assert "build_model(norm=...)" in message and "parameter 'norm'" in message
    assert "params={'norm': 'groupnorm(32)'}" in message and "'batchnorm' or 'syncbatchnorm'" in message
    with pytest.raises(resdsl.ResdslError, match=r"E219.*parameter 'mode'") as moded:
        resdsl.build_model(MODES, mode="wide")
    assert "params={'mode': 'wide'}" in str(moded.value)
    with pytest.raises(ValueError, match="norm must be 'batchnorm' or 'syncbatchnorm'"):
        resdsl.build_model("resnet20", norm="groupnorm(32)")  # no such parameter: the option's own error
    with pytest.raises(resdsl.ResdslError, match="E802"):
        resdsl.build_model("resnet20", mode="wide")


def test_params_set_the_spec_in_every_function() -> None:
    """A string in params is written in the language, as with --set: '"wide"' is the string."""
    model = resdsl.build_model(MODES, params={"mode": '"wide"'})
    assert isinstance(model.extra, nn.Conv2d) and model(torch.randn(1, 3, 16, 16)).shape == (1, 3)
    assert resdsl.build_model(MODES, width=4).stem.out_channels == 4  # a keyword that is no option
    code = resdsl.generate(MODES, params={"mode": '"wide"'})
    assert 'mode: str = "wide"' in code and "self.extra = nn.Conv2d(" in code
    net = resdsl.compile(MODES, params={"mode": '"wide"', "width": 4})
    assert net.params["mode"] == "wide" and net.params["width"] == 4
    exported = resdsl.export_onnx(MODES, params={"mode": '"wide"'})
    assert any(init.name == "extra.weight" for init in exported.graph.initializer)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(resdsl.ResdslError, match=r"E219.*'width' given twice"):
        resdsl.build_model(MODES, width=4, params={"width": 8})
    with pytest.raises(resdsl.ResdslError, match="E219"):
        resdsl.compile(MODES, width=4, params={"width": 8})


def test_the_catalogs_e219_example_gives_e219_and_its_fix_builds(tmp_path: Path) -> None:
    """E219's catalog entry cannot be run by ``resdsl check`` (only the API gives it), so its
    example is run here, as its ``why`` says: the option keyword is refused, params= builds."""
    entry = entries()["E219"]
    path = tmp_path / "example.arch"
    path.write_text(entry.example)
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.build_model(str(path), norm="groupnorm(4)")
    assert info.value.code == "E219" and "params={'norm': 'groupnorm(4)'}" in str(info.value)
    path.write_text(entry.fix)
    model = resdsl.build_model(str(path), params={"norm": "groupnorm(4)"})
    assert isinstance(model.bn1, nn.GroupNorm) and model.bn1.num_groups == 4


def test_an_unknown_bare_name_as_a_value_says_how_to_write_a_string() -> None:
    """``global_pool=avg`` is read as the language's name ``avg`` (values are the language's, so
    that ``shortcut=projection`` works); the refusal says how to pass the string instead."""
    with pytest.raises(resdsl.ResdslError) as caught:
        resdsl.compile("vit_tiny_patch16_224", params={"global_pool": "avg"})
    (d,) = caught.value.diagnostics
    assert d.code == "E201" and d.help is not None
    assert "did you mean 'avgpool'? Or, if you meant 'avg' as text, write it in quotes" in d.help
    assert "params={'global_pool': '\"avg\"'}" in d.help
    net = resdsl.compile("vit_tiny_patch16_224", params={"global_pool": '"avg"'})
    assert [layer.op for layer in net.layers() if layer.name in ("norm", "fc_norm")] == ["identity", "layernorm"]
