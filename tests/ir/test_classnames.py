"""Class names of blocks and networks (issue #17 item 7): torchvision's and timm's where the
block or layout is theirs, the spec's names otherwise, the same in build_model and in
generated code."""

from __future__ import annotations

from pathlib import Path

import pytest

import resdsl
from resdsl.ir.classnames import block_class_name, camel, network_class_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("basic", "BasicBlock"),
        ("bottleneck", "Bottleneck"),
        ("preact_basic", "PreActBasic"),
        ("preact_bottleneck", "PreActBottleneck"),
        ("squeeze_excite", "SqueezeExcite"),
        ("se_bottleneck", "SeBottleneck"),
        ("my_block", "MyBlock"),
    ],
)
def test_block_classes(name: str, expected: str) -> None:
    assert block_class_name(name) == expected


def test_camel_spells_the_families_as_their_libraries_do() -> None:
    assert camel("cifar_resnet") == "CifarResNet"
    assert camel("resnext50_32x4d") == "ResNeXt50_32x4d"
    assert camel("preact_cifar_resnet") == "PreActCifarResNet"
    assert camel("___") == "Network"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("resnet50", "ResNet"),
        ("resnet18", "ResNet"),
        ("resnext50_32x4d", "ResNet"),
        ("resnet50d", "ResNet"),
        ("seresnet50", "ResNet"),
        ("resnet110", "CifarResNet"),
        ("preact_resnet164", "PreActCifarResNet"),
    ],
)
def test_a_network_is_named_after_its_family(spec: str, expected: str) -> None:
    """The definition's name decides: resnet50 = resnet_bottleneck(...) is a ResNet."""
    assert network_class_name(resdsl.compile(spec)) == expected


def test_both_back_ends_use_the_rule(tmp_path: Path) -> None:
    spec = tmp_path / "my_net.arch"
    spec.write_text('import "std/blocks.arch"\nnetwork my_net() {\n  input 3 x 8 x 8\n  b = basic(3)\n}\n')
    model = resdsl.build_model(spec)
    assert type(model).__name__ == "MyNet" and type(model.b).__name__ == "BasicBlock"
    code = resdsl.generate(spec)
    assert "class MyNet(nn.Module):" in code and "class BasicBlock(nn.Module):" in code
