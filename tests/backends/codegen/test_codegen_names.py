"""Names in generated code (issue #22): every name the generated module reserves works as a
spec parameter, renamed the same way wherever it is used; and ``__all__`` is sorted as ruff's
RUF022 sorts it, whatever the network and block names, checked with ruff itself."""

from __future__ import annotations

import ast as pyast
import inspect
import random
import subprocess
from pathlib import Path

import pytest
import torch

import resdsl
from resdsl.backends.codegen import _ruff, generate
from resdsl.backends.codegen.copied import copied_names, layer_classes
from resdsl.backends.codegen.expr import RESERVED
from resdsl.backends.codegen.files import export_order
from resdsl.syntax.parser import RESERVED_WORDS
from tests.backends.codegen.test_codegen_hostile import assert_same_network, load

# {n}: the name under test, a parameter of the network and of the block, read by a binding, a
# channel count, a block argument and a stage's repeat count
NAME_SPEC = """
block blk(planes, {n} = 1) {{
    width = planes * {n}
    conv1 = conv(width, k=3, p=1)
    bn1 = batchnorm()
    relu
    residual(projection)
}}

network net({n} = 1, num_classes = 3) {{
    input 3 x 8 x 8
    conv1 = conv(8 * {n}, k=3, p=1)
    bn1 = batchnorm()
    relu
    layer1 = stage(blk(8 * {n}, {n}={n}), repeat={n} + 1)
    avgpool = global_avgpool()
    fc = linear(num_classes)
}}
"""
RUFF_RULES = ["--select", "E,F,W,I,B,UP,RUF", "--ignore", "E501"]  # the project's own rules; comments run long


def test_the_template_names_are_reserved() -> None:
    """The names the template writes as arguments of its own functions are in the list."""
    assert {"zero_init_residual", "weights", "state_dict", "channels_last", "model", "m"} <= RESERVED


@pytest.mark.parametrize("name", sorted(RESERVED))
def test_every_reserved_name_is_a_parameter_like_any_other(name: str, tmp_path: Path) -> None:
    """A spec that uses a reserved name as a network and a block parameter generates a training
    module that constructs, runs and is build_model's network, whose factory takes the renamed
    keyword to every place the name is used; and an inference module whose from_trained passes
    it on. The language's own words cannot be parameters (E005) and are left out."""
    path = tmp_path / "names.arch"
    path.write_text(NAME_SPEC.format(n=name), encoding="utf-8")
    result = resdsl.check(path)
    if name in RESERVED_WORDS:
        assert result.diagnostics[0].code == "E005", result.diagnostics
        return
    assert result.ok, result.diagnostics
    net = result.networks[0]
    module = assert_same_network(generate(net), net, tmp_path)
    keyword = next(iter(inspect.signature(module.net).parameters))  # the spec's, renamed
    assert keyword != name or keyword not in RESERVED
    wider = module.net(**{keyword: 2}).eval()
    assert len(wider.layer1) == 3 and wider.conv1.out_channels == 16 and wider.layer1[2].conv1.out_channels == 32
    assert wider(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    out = tmp_path / "names_inference.py"
    out.write_text(generate(net, inference=True), encoding="utf-8")
    trained = resdsl.build_model(net).double().eval()
    served = load(out).from_trained(trained.state_dict(), channels_last=False, **{keyword: 1})
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(served(x), trained(x), rtol=1e-10, atol=1e-12)


ZERO_SPEC = """
block blk(planes, zero_init_residual = 1) {
    conv1 = conv(planes * zero_init_residual, k=3, p=1)
    bn1 = batchnorm()
    relu
    residual(projection)
}

network net(zero_init_residual = true, num_classes = 3) {
    input 3 x 8 x 8
    conv1 = conv(8, k=3, p=1)
    layer1 = stage(blk(8), repeat=2)
    avgpool = global_avgpool()
    fc = linear(num_classes)
}
"""


def test_a_network_parameter_named_zero_init_residual_is_the_switch(tmp_path: Path) -> None:
    """The spec's own zero_init_residual decides, as in build_model: renamed in the signature
    and where the constructor reads it."""
    path = tmp_path / "zero.arch"
    path.write_text(ZERO_SPEC, encoding="utf-8")
    net = resdsl.check(path).networks[0]
    code = generate(net)
    assert "if zero_init_residual_:" in code and "zero_init_residual: bool" not in code
    out = tmp_path / "zero.py"
    out.write_text(code, encoding="utf-8")
    module = load(out)
    assert not module.net().layer1[0].bn1.weight.any()  # zeroed, as build_model zeroes them
    assert not resdsl.build_model(net).layer1[0].bn1.weight.any()
    assert module.net(zero_init_residual_=False).layer1[0].bn1.weight.all()


def odd_spec(name: str) -> str:
    """A network called ``name`` with blocks whose classes sort by number and case."""
    blocks = "".join(
        f"block {name}{suffix}(planes) {{\n    conv1 = conv(planes, k=3, p=1)\n    bn1 = batchnorm()\n"
        "    residual(projection)\n}\n"
        for suffix in ("_blk", "10", "2", "02")
    )
    return blocks + (
        f"network {name}(c = 4) {{\n    input 3 x 8 x 8\n    meta {{ mean = [0.5, 0.5, 0.5]  std = [0.2, 0.2, 0.2] }}\n"
        f"    conv1 = conv(c, k=3, p=1)\n    b = {name}_blk(c)\n    b2 = {name}2(c)\n    b10 = {name}10(c)\n"
        f"    b02 = {name}02(c)\n    fc = linear(2)\n}}\n"
    )


ODD_NAMES = ["a", "A", "b_", "x", "AB", "Ab", "net2", "net10", "n010", "n01", "x_1", "_a", "Q9", "MEAN", "a_b_c"]


def test_generated_files_pass_ruff_whatever_the_names(tmp_path: Path) -> None:
    """One-letter, upper-case, numbered and underscored network and block names: training,
    inference and checkpointing modules all pass ruff check (RUF022 sorts __all__)."""
    files = []
    for i, name in enumerate(ODD_NAMES):
        spec = tmp_path / f"odd{i}.arch"
        spec.write_text(odd_spec(name), encoding="utf-8")
        result = resdsl.check(spec)
        assert result.ok, (name, result.diagnostics)
        net = result.networks[0]
        codes = {"train": generate(net), "inference": generate(net, inference=True)}
        codes["ckpt"] = generate(net, checkpoint=["b", "b2"], features=["b10", "b02"])
        for kind, code in codes.items():
            out = tmp_path / f"odd{i}_{kind}.py"
            out.write_text(code, encoding="utf-8")
            files.append(str(out))
    done = subprocess.run([_ruff(), "check", "--isolated", *RUFF_RULES, *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def random_names(rng: random.Random) -> list[str]:
    parts = ["a", "b", "A", "B", "Z", "_", "0", "1", "2", "9", "10", "01", "007", "x", "X", "net", "Net", "NET"]
    names = {"".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(2, 12))}
    return [n for n in names if n.isidentifier()]


def test_export_order_is_ruffs(tmp_path: Path) -> None:
    """export_order agrees with ruff's RUF022 on many random name lists (mixed case, digit runs
    with and without leading zeros, underscores, one-letter names); a list sorted otherwise
    is reported, so the rule really runs."""
    rng = random.Random(22)
    files = []
    for i in range(300):
        names = export_order(random_names(rng))
        path = tmp_path / f"all{i}.py"
        path.write_text(f"__all__ = [{', '.join(repr(n) for n in names)}]\n".replace("'", '"'), encoding="utf-8")
        files.append(str(path))
    control = tmp_path / "control.py"
    control.write_text('__all__ = ["A", "INPUT_SIZE", "a10", "a2"]\n', encoding="utf-8")  # plain sorted() order
    done = subprocess.run(
        [_ruff(), "check", "--isolated", "--select", "RUF022", "--output-format", "concise", *files, str(control)],
        capture_output=True,
        text=True,
    )
    assert done.stdout.splitlines()[0].startswith(f"{control}:1:11: RUF022"), done.stdout
    assert f"{control}:" in done.stdout and len([ln for ln in done.stdout.splitlines() if "RUF022" in ln]) == 1
    assert export_order(["A", "INPUT_SIZE", "a10", "a2", "B1", "b01", "b1"]) == [
        "B1", "INPUT_SIZE", "A", "a2", "a10", "b01", "b1"
    ]  # fmt: skip


def test_every_copied_helpers_top_level_name_is_reserved() -> None:
    # the layer classes are named by their table, not parsed again: each is one class's source
    for name, source in layer_classes().items():
        (node,) = pyast.parse(source).body
        assert isinstance(node, pyast.ClassDef) and node.name == name
    helpers = {"FlattenLinear", "LayerNorm2d", "DropPath", "ZeroPadShortcut", "make_shortcut", "with_bias"}
    assert helpers <= copied_names()
    assert copied_names() <= RESERVED
