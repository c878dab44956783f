"""Weights in and out (issue #10, item 1), preprocessing metadata (item 3), other input channels
(item 6): reading, matching, refusing, saving. ResNet-18 at 3 x 64 x 64 keeps every build fast."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import resdsl
from resdsl.weights import WeightsError, WeightsWarning, load_weights, read_weights, save_weights
from tests.conftest import SAME_MACHINE_TOL, rel_error

SMALL = "3x64x64"


def small(**options: object) -> torch.nn.Module:
    return resdsl.build_model("resnet18", input_shape=options.pop("input_shape", SMALL), **options)  # type: ignore[arg-type]


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Every tensor (running statistics too) different from a fresh build's."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.rand(value.shape, generator=generator, dtype=value.dtype) * 0.01 + 0.001)
    return model


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return randomised(small())


@pytest.fixture(scope="module")
def checkpoint(source: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18.safetensors"
    resdsl.save_weights(source, path)  # the top-level name (resdsl.weights.save_weights)
    return path


def same_tensors(a: torch.nn.Module, b: torch.nn.Module, skip: tuple[str, ...] = ()) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


def test_round_trip_reports_every_tensor_and_writes_metadata(source: torch.nn.Module, checkpoint: Path) -> None:
    model = small(weights=checkpoint)
    report = model.resdsl_load_report
    assert report.loaded == report.total == len(source.state_dict())
    assert not report.skipped and not report.adapted
    assert f"loaded {report.total} of {report.total} tensors" in str(report)
    assert same_tensors(model, source)
    meta = read_weights(checkpoint)[1]
    assert meta["network"] == "resnet18"
    assert meta["spec_sha256"] == source.resdsl_spec_hash and len(meta["spec_sha256"]) == 64
    assert meta["input_size"] == "[3, 64, 64]"
    assert meta["mean"] == "[0.485, 0.456, 0.406]" and meta["std"] == "[0.229, 0.224, 0.225]"
    assert not [p for p in checkpoint.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_fine_tuning_variant_reports_only_the_head(source: torch.nn.Module, checkpoint: Path) -> None:
    with pytest.warns(WeightsWarning) as caught:
        model = small(weights=checkpoint, num_classes=10)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "W721" in messages[0] and "fc.weight" in messages[0] and "[10, 512]" in messages[0]
    assert "[1000, 512]" in messages[0] and "fc.bias" in messages[1]
    report = model.resdsl_load_report
    assert report.skipped == ["fc.weight", "fc.bias"] and report.loaded == report.total - 2
    assert same_tensors(model, source, skip=("fc.",))


def test_wrong_shapes_give_one_report_naming_every_problem(source: torch.nn.Module, tmp_path: Path) -> None:
    state = dict(source.state_dict())
    state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    del state["bn1.running_var"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        small(weights=path)
    exc = info.value
    assert exc.code == "E704"
    text = str(exc.diagnostics[0])
    assert "1 missing, 1 unexpected, 1 of another shape" in text
    assert "missing from the checkpoint: bn1.running_var" in text
    assert "not in the model: layer5.0.conv1.weight" in text
    assert "shape of layer1.0.conv1.weight: model [64, 64, 3, 3], checkpoint [32, 64, 3, 3]" in text
    assert exc.mismatched == [("layer1.0.conv1.weight", (64, 64, 3, 3), (32, 64, 3, 3))]


class _Payload:
    """Unpickling this would create a file: the code a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"conv1.weight": torch.zeros(1)}, "hook": _Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f)
    pickle.loads(pickle.dumps(_Payload(tmp_path / "check")))  # the payload works: unpickled, it creates its file
    assert (tmp_path / "check").exists()
    with pytest.raises(WeightsError) as info:
        small(weights=path)
    assert info.value.code == "E702"
    assert "nothing in it was run" in info.value.diagnostics[0].message
    assert not marker.exists()


def test_nested_checkpoints_and_a_ddp_prefix_load(source: torch.nn.Module, tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}, "model": {"state_dict": state}}, path)
    model = small(weights=path)
    assert model.resdsl_load_report.loaded == len(state)
    assert same_tensors(model, source)


def test_a_named_prefix_is_stripped_when_asked_and_suggested_otherwise(source: torch.nn.Module, tmp_path: Path) -> None:
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["rpn.head.weight"] = torch.zeros(3)
    path = tmp_path / "detector.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError) as info:
        small(weights=path)
    assert "strip_prefix='backbone.'" in (info.value.diagnostics[0].help or "")
    model = small(weights=path, strip_prefix="backbone.")
    report = model.resdsl_load_report
    assert report.ignored == 1 and "ignored 1 tensors outside the prefix" in str(report)
    assert same_tensors(model, source)
    with pytest.raises(WeightsError) as info:
        small(weights=path, strip_prefix="neck.")
    assert info.value.code == "E703" and "'backbone.'" in (info.value.diagnostics[0].help or "")


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    no_tensors = tmp_path / "config.pt"
    torch.save({"epoch": 3, "lr": 0.1}, no_tensors)
    cases = [(tmp_path / "missing.pt", "E701"), (garbage, "E701"), (broken, "E701"), (no_tensors, "E703")]
    for path, code in cases:
        with pytest.raises(WeightsError) as info:
            read_weights(path)
        assert info.value.code == code, path
        assert info.value.diagnostics[0].span.file == os.fspath(path)


def test_save_weights_refuses_another_format(source: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        save_weights(source, tmp_path / "model.pt")
    assert info.value.code == "E707"
    assert not list(tmp_path.iterdir())


def test_grey_input_sums_the_first_conv_over_rgb(tmp_path: Path) -> None:
    rgb = randomised(small(input_shape="3x32x32")).double()
    for norm in rgb.modules():  # running statistics of real activations keep the outputs near 1
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.momentum = 1.0
    with torch.no_grad():
        rgb(torch.rand(4, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    rgb.eval()
    path = tmp_path / "rgb.safetensors"
    save_weights(rgb, path)  # float64, so the sum over RGB is exact to float64 rounding
    grey = (
        small(input_shape="3x32x32", in_channels=1).double().eval()
    )  # float64 before loading: nothing rounds to float32
    assert grey.input_size == (1, 32, 32) and grey.conv1.weight.shape == (64, 1, 7, 7)
    assert load_weights(grey, path).adapted == ["conv1.weight (3 -> 1 channels)"]
    image = torch.rand(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert rel_error(grey(image), rgb(image.repeat(1, 3, 1, 1))) < SAME_MACHINE_TOL
    assert grey.mean == (pytest.approx((0.485 + 0.456 + 0.406) / 3),)


def test_four_channels_repeat_the_filters_scaled(tmp_path: Path, checkpoint: Path, source: torch.nn.Module) -> None:
    model = small(weights=checkpoint, in_channels=4)
    w = source.conv1.weight
    assert torch.allclose(model.conv1.weight, torch.cat([w, w[:, :1]], 1) * 0.75)
    assert model.mean == (0.485, 0.456, 0.406, 0.485)


def test_preprocessing_metadata_that_disagrees_warns_naming_both(source: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "cifar_trained.safetensors"
    tensors = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(tensors, path, metadata={"mean": "[0.4914, 0.4822, 0.4465]", "std": "[0.229, 0.224, 0.225]"})
    with pytest.warns(WeightsWarning) as caught:
        small(weights=path)
    (message,) = [str(w.message) for w in caught]
    assert "W720" in message and "[0.4914, 0.4822, 0.4465]" in message and "[0.485, 0.456, 0.406]" in message


def test_preprocess_normalises_and_fits_the_input_size(source: torch.nn.Module) -> None:
    white = torch.full((3, 80, 120), 255, dtype=torch.uint8)
    out = source.preprocess(white)
    assert out.shape == (1, 3, 64, 64)
    expected = [(1 - m) / s for m, s in zip(source.mean, source.std, strict=True)]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected))
    ramp = torch.linspace(0, 1, 128, dtype=torch.float64).expand(3, 64, 128)  # wider: cropped in the middle
    assert source.preprocess(ramp).dtype == torch.float64
    with pytest.raises(ValueError, match="3 channels"):
        source.preprocess(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"float images in 0\.\.1 .* got values in 255\.\.255: divide"):
        source.preprocess(white.float())  # a photo as floats, never divided by 255
    with pytest.raises(ValueError, match="normalised already"):
        source.preprocess(out)  # preprocessing twice


IMAGENET = ["resnet18", "resnet50", "resnet50d", "resnet26t", "seresnet50", "resnext50_32x4d", "resnet50_gn"]


@pytest.mark.parametrize("name", IMAGENET)
def test_every_imagenet_layout_takes_grey_input(name: str) -> None:
    """in_channels only changes the input's channel count: every stem (7x7, deep, SE, GN) follows."""
    result = resdsl.check(name, input_shape=(1, 224, 224))
    assert result.ok, result.diagnostics
    (net,) = result.networks
    first = next(layer for layer in net.layers() if layer.op == "conv")
    assert first.in_shapes[0][0] == 1


def test_a_deep_stem_adapts_its_first_conv(tmp_path: Path) -> None:
    rgb = resdsl.build_model("resnet26d", input_shape=SMALL)
    save_weights(rgb, tmp_path / "r26d.safetensors")
    grey = resdsl.build_model("resnet26d", input_shape=SMALL, in_channels=1, weights=tmp_path / "r26d.safetensors")
    assert grey.resdsl_load_report.adapted == ["conv1.0.weight (3 -> 1 channels)"]
    assert torch.equal(grey.conv1[0].weight, rgb.conv1[0].weight.sum(1, keepdim=True))


def test_saved_weights_are_ordinary_files(tmp_path: Path) -> None:
    """save_weights writes through a temporary file; the result gets the umask's mode, not
    mkstemp's private 0600."""
    import os

    model = resdsl.build_model("resnet20")
    path = tmp_path / "w.safetensors"
    umask = os.umask(0o022)
    try:
        resdsl.save_weights(model, path)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
