"""resdsl.import_model: models written here the way torchvision and timm write theirs come back as
specs of blocks and stages that rebuild them exactly (verified by the importer itself, and again
here in float64, eval and train)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resdsl
from resdsl.diagnostics import Diagnostic, ResdslError
from tests.importing import models, models_timm
from tests.importing.roundtrip import import_and_check

CIFAR = (3, 32, 32)


def _refusal(model: object, name: str | None = None, input_shape: tuple[int, int, int] = (3, 8, 8)) -> Diagnostic:
    """The one diagnostic import_model refuses ``model`` with."""
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(model, name, input_shape)  # type: ignore[arg-type]
    (d,) = info.value.diagnostics
    return d


def test_resnet50_reads_like_the_shipped_spec() -> None:
    source = import_and_check(models.ResNet((3, 4, 6, 3), num_classes=10), CIFAR, "resnet50")
    assert source.count("\nblock ") == 1 and source.count("stage(") == 4
    assert "layer2 = stage(bottleneck(128), repeat=4, stride=2)" in source
    assert "conv3 = conv(planes * 4, k=1)" in source and "residual(projection)" in source
    assert len(source.splitlines()) < 150


def test_make_layer_with_a_downsample_argument_basic_blocks() -> None:
    source = import_and_check(models.resnet18(num_classes=5), CIFAR)
    assert "block basic_block(planes, stride = 1) {" in source
    assert "conv1 = conv(planes, k=3, s=stride, p=1)" in source
    assert "layer1 = stage(basic_block(64), repeat=2)" in source and "layer4 = stage(basic_block(512)" in source


def test_option_a_written_as_a_module_class() -> None:
    source = import_and_check(models.CifarResNet(n=2), CIFAR)
    assert 'residual(zero_pad, name="shortcut")' in source and source.count("stage(cifar_block(") == 3


def test_option_a_padding_both_sides_is_refused_naming_the_shortcut() -> None:
    d = _refusal(models.CifarResNet(n=1, option="both"), None, CIFAR)
    assert d.code == "E904" and "`layer2.0.shortcut`" in d.message and "LambdaLayer" in d.message
    assert any("models.py:" in note for note in d.notes)


def test_se_module_that_gates_its_input_becomes_a_gate() -> None:
    source = import_and_check(models_timm.ResNet(se=True), CIFAR)
    assert "se = gate(se_module(planes * 4))" in source
    assert "block se_module(planes) {" in source and "fc1 = conv(planes // 16, k=1, bias=true)" in source
    assert "gate = sigmoid()" in source and "global_avgpool" in source


def test_deep_stem_and_resnet_d_average_pool_shortcuts() -> None:
    source = import_and_check(models_timm.ResNet((1, 2, 1, 1), deep_stem=True, avg_down=True), CIFAR)
    assert "conv1 = sequential(conv(32, k=3, s=2, p=1), batchnorm, relu, conv(32, k=3, p=1)" in source
    assert "residual(avgpool_projection)" in source and "act1 = relu()" in source


def test_concatenations_are_concat_merges() -> None:
    source = import_and_check(models_timm.DenseNet(), CIFAR)
    assert "block dense_layer() {" in source and "    concat\n" in source
    assert "block1 = stage(dense_layer(), repeat=3)" in source
    assert "transition1 = sequential(batchnorm, relu, conv(20, k=1), avgpool(k=2))" in source


def test_a_stage_that_widens_and_an_addition_in_the_network() -> None:
    source = import_and_check(models_timm.Widen(), CIFAR)
    assert "stage = stage(widening(24 + index * 8), repeat=3)" in source
    assert "mix = conv(3, k=3, p=1)\n    residual(identity)\n" in source
    assert 'residual(projection, name="proj")' in source


def test_a_group_of_stages_whose_blocks_add_only_where_the_shape_is_kept() -> None:
    source = import_and_check(models_timm.MobileNet(), CIFAR)
    assert "residual(identity_if_same)" in source and "conv_dw = conv(planes, k=3, s=stride, p=1, groups=" in source
    assert "blocks = sequential(stage(inverted_residual(" in source and "repeat=3, stride=2))" in source


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # the line the refusal names
            return self.conv(x)
        return x


def _line(text: str) -> int:
    """The line of this file that holds ``text``."""
    return next(i for i, line in enumerate(open(__file__).read().splitlines(), 1) if text in line)


def test_control_flow_is_refused_with_its_source_line() -> None:
    model = nn.Sequential()
    model.add_module("body", Branchy())
    d = _refusal(model)
    assert d.code == "E901" and "`body.forward`" in d.message
    assert f"the call is at {__file__}:{_line('# the line the refusal names')}" in d.notes


class Untraceable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([row for row in x])  # iterating a traced tensor


class Holder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.conv(x))


def test_an_untraceable_module_names_its_path_and_line() -> None:
    d = _refusal(Holder(Untraceable()))
    assert d.code == "E901" and "`inner.forward`" in d.message
    assert f"module `inner` is a {__name__}.Untraceable" in d.notes
    assert f"the call is at {__file__}:{_line('# iterating a traced tensor')}" in d.notes


class Tanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)  # no op in the table


def test_a_function_without_an_op_names_path_function_and_line() -> None:
    d = _refusal(Holder(Tanh()))
    assert d.code == "E903" and "`tanh` in `inner.forward`" in d.message
    assert f"the call is at {__file__}:{_line('# no op in the table')}" in d.notes


def test_a_module_without_an_op_names_its_path_and_class() -> None:
    d = _refusal(Holder(nn.Sequential(nn.Conv2d(4, 4, 3), nn.Tanh())))
    assert d.code == "E903" and "`inner.1`" in d.message and "torch.nn.modules.activation.Tanh" in d.message


def test_a_sequential_model_and_shared_weights_are_refused() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_shape=(3, 8, 8))
    assert info.value.diagnostics[0].code == "E904" and "`0`" in info.value.diagnostics[0].message

    class Twice(Holder):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(self.inner(self.conv(x)))

    with pytest.raises(ResdslError) as info:
        resdsl.import_model(Twice(nn.Conv2d(4, 4, 1)), input_shape=(3, 8, 8))
    assert info.value.diagnostics[0].code == "E904" and "`inner` is called twice" in info.value.diagnostics[0].message


class TrainOnly(nn.Module):
    """A block whose forward reads ``self.training``: the importer traces it in the mode the
    model is in (eval here), so train mode is what the spec does not reproduce."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(x))
        if self.training:
            out = torch.relu(out)
        return out + x


def test_a_behaviour_the_importer_does_not_reproduce_names_the_layer() -> None:
    model = Holder(nn.Sequential(TrainOnly(), TrainOnly())).eval()
    d = _refusal(model)
    assert d.code == "E905" and "outputs differ in train mode; first at `inner.0` (2 x 4 x 6 x 6)" in d.message


def test_not_a_module() -> None:
    with pytest.raises(ResdslError) as info:
        resdsl.import_model(42, input_shape=(3, 8, 8))  # type: ignore[arg-type]
    assert info.value.diagnostics[0].code == "E906"


def _misread(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    """Makes the importer write ``new`` where it would write ``old``: a spec that does not
    rebuild the model, as a misreading would."""
    import resdsl.importing.emit as emit

    write = emit.write_spec

    def wrong(*args: object) -> str:
        source = write(*args)  # type: ignore[arg-type]
        assert old in source
        return source.replace(old, new)

    monkeypatch.setattr(emit, "write_spec", wrong)


def test_a_difference_in_values_names_the_first_layer_and_both_values(monkeypatch: pytest.MonkeyPatch) -> None:
    _misread(monkeypatch, "maxpool = maxpool(k=3, s=2, p=1)", "maxpool = avgpool(k=3, s=2, p=1)")
    d = _refusal(models.resnet18(3), None, CIFAR)
    assert d.code == "E905" and "outputs differ in eval mode; first at `maxpool` (2 x 64 x 8 x 8)" in d.message
    assert "the model's is " in d.message and ", the spec's " in d.message


def test_a_difference_in_shapes_names_the_first_layer_and_both_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    _misread(monkeypatch, "maxpool = maxpool(k=3, s=2, p=1)", "maxpool = maxpool(k=3, s=1, p=1)")
    d = _refusal(models.resnet18(3), None, CIFAR)
    assert d.code == "E905"
    assert "first at `maxpool`: the model's is 2 x 64 x 8 x 8, the spec's 2 x 64 x 16 x 16" in d.message


def test_a_model_the_importer_misreads_is_refused_by_its_state_dict() -> None:
    """A 1x1 projection on a shortcut whose shapes agree in some blocks only: neither
    residual(projection) (projects where they differ) nor projection_all says it."""

    class Block(nn.Module):
        def __init__(self, c: int, project: bool) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.downsample = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)) if project else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.bn1(self.conv1(x))
            return out + (self.downsample(x) if self.downsample is not None else x)

    model = Holder(nn.Sequential(Block(4, True), Block(4, False)))
    d = _refusal(model)
    assert d.code == "E904" and "projects where the shapes agree in some instances only" in d.message


def test_the_input_size_is_the_models_own_where_it_says() -> None:
    model = models.resnet18(3)
    model.pretrained_cfg = {"input_size": (3, 40, 40)}  # as timm's models carry it
    assert "input 3 x 40 x 40" in resdsl.import_model(model)
