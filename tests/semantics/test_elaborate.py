"""Elaboration: imports, parameters, arithmetic, stages, naming — spec to IR graph."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

import resdsl
from resdsl.api import parse_override
from resdsl.diagnostics import Collector, ResdslError
from resdsl.semantics.elaborate import Elaborator, Failed, Program, ShortcutKind
from resdsl.syntax.parser import parse_expr


def evaluate(text: str, **env: object) -> object:
    collector = Collector()
    try:
        return Elaborator(Program("<t>"), collector).eval(parse_expr(text), dict(env))
    except Failed:
        return collector.items[0].code


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("64 * 4 / 64 * 32", 128),  # ResNeXt width: exact division stays whole
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("-3 + 1", -2),
        ("[1, 2, 3][1]", 2),
        ("0.5 * 3", 1.5),
        ("1 / 2.0", 0.5),
        ("7 / 2", "E208"),
        ("1 // 0", "E209"),
        ('"a" * 2', "E212"),
        ("[1][3]", "E213"),
        ("nope + 1", "E201"),
    ],
)
def test_integer_arithmetic(text: str, value: object) -> None:
    assert evaluate(text) == value


def test_override_values_are_parsed_in_the_language() -> None:
    assert parse_override("n", "18") == 18
    assert parse_override("flag", "true") is True
    assert parse_override("shortcut", "projection") == "projection"
    assert parse_override("depths", "[1, 2, 3, 4]") == [1, 2, 3, 4]
    with pytest.raises(ResdslError):
        parse_override("n", "1 +")


def test_graph_is_networkx_with_module_paths() -> None:
    net = resdsl.compile("resnet50")
    g = net.graph
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    layer = net.layer("layer2.0.conv1")
    assert layer.op == "conv" and layer.path == "layer2.0.conv1" and layer.shape == (128, 56, 56)
    assert layer.span.file.endswith("std/blocks.arch") and layer.span.line == 33
    # a residual addition has two inputs: main branch (port 0) and branch input (port 1)
    add = net.layer("layer2.0.downsample")
    ports = {e["port"]: p for p, e in g.pred[add.id].items()}
    assert ports[0] == "layer2.0.bn3" and ports[1] == "layer1.2.relu_2"  # the third anonymous relu
    assert add.shortcut is not None and add.shortcut.kind == "projection" and add.shortcut.stride == 2


def test_stage_first_block_takes_stride_and_shortcut() -> None:
    net = resdsl.compile("resnet18")
    stage = next(s for s in net.root.scopes() if s.path == "layer2")
    first, second = [s for s in stage.items]
    assert first.args["stride"] == 2 and second.args["stride"] == 1  # type: ignore[union-attr]
    assert [s.name for s in stage.items] == ["0", "1"]
    net = resdsl.compile("resnet20", shortcut="projection_all")
    blocks = [s for s in net.root.scopes() if s.kind == "block"]
    assert all(b.args["shortcut"] == "projection_all" for b in blocks)


def test_anonymous_layers_share_one_stateless_module() -> None:
    net = resdsl.compile("resnet50")
    relus = [layer for layer in net.layers() if layer.op == "relu" and layer.path.startswith("layer1.0.")]
    assert len(relus) == 3 and {r.module for r in relus} == {"relu"}
    assert all(r.inplace for r in relus)
    # the network-level relu reads bn1, which nothing else reads: in place is safe
    assert net.layer("relu").inplace


def test_relu_is_not_inplace_on_a_value_a_shortcut_reads(tmp_path: Path) -> None:
    spec = tmp_path / "p.arch"
    spec.write_text(
        'import "std/blocks.arch"\n'
        "block r(c) {\n  relu\n  conv1 = conv(c, k=3, p=1)\n  residual(identity)\n}\n"
        "network n() {\n  input 3 x 8 x 8\n  c = conv(4, k=3, p=1)\n"
        "  b = preact_basic(8, stride=2)\n  q = r(8)\n}\n"
    )
    net = resdsl.compile(spec)
    assert not net.layer("q.relu").inplace  # it reads the block input, which the shortcut also reads
    assert net.layer("b.relu1").inplace  # it reads bn1, which nothing else reads
    add = net.layer("b.downsample")
    assert net.shortcut_source(add) == "b.relu1"  # the projection branches off after BN-ReLU


def test_aliases_and_overrides() -> None:
    net = resdsl.compile("resnet110")
    assert net.params == {"n": 18, "num_classes": 10, "shortcut": "zero_pad"}
    assert net.name == "resnet110"
    net = resdsl.compile("resnet110", num_classes=100)
    assert net.output_shape == (100,)
    with pytest.raises(ResdslError) as info:
        resdsl.compile("resnet110", num_clases=100)
    assert info.value.code == "E216"


def test_imports_relative_and_library(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mine.arch").write_text(
        'import "std/blocks.arch"\nblock twice(c) {\n  a = basic(c)\n  b = basic(c)\n}\n'
    )
    (tmp_path / "net.arch").write_text(
        'import "lib/mine.arch"\nimport "std/blocks.arch"\n'  # diamond: std/blocks twice is fine
        "network n() {\n  input 3 x 8 x 8\n  c = conv(4, k=3, p=1)\n  t = twice(4)\n}\n"
    )
    net = resdsl.compile(tmp_path / "net.arch")
    assert net.layer("t.b.conv2").shape == (4, 8, 8)


def test_import_cycle_and_missing(tmp_path: Path) -> None:
    (tmp_path / "a.arch").write_text('import "b.arch"\n')
    (tmp_path / "b.arch").write_text('import "a.arch"\nimport "zzz.arch"\n')
    result = resdsl.check(tmp_path / "a.arch")
    assert sorted(d.code for d in result.diagnostics) == ["E101", "E102"]


def test_block_defaults_may_use_earlier_parameters(tmp_path: Path) -> None:
    (tmp_path / "d.arch").write_text(
        "block b(c, width = c * 2) {\n  conv1 = conv(width, k=1)\n}\n"
        "network n() {\n  input 3 x 4 x 4\n  x1 = b(8)\n  x2 = b(8, width=3)\n}\n"
    )
    net = resdsl.compile(tmp_path / "d.arch")
    assert net.layer("x1.conv1").shape == (16, 4, 4) and net.layer("x2.conv1").shape == (3, 4, 4)


def test_every_error_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "e.arch").write_text(
        "network a() {\n  input 3 x 8 x 8\n  c = conv(4, kk=1)\n  d = conv(x)\n}\n"
        "network b() {\n  input 3 x 8 x 8\n  p = maxpool(k=20)\n}\n"
    )
    result = resdsl.check(tmp_path / "e.arch")
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("E203", 3), ("E201", 4), ("E303", 8)]


def test_plain_network_has_no_additions() -> None:
    plain = resdsl.compile("resnet20", shortcut="none")
    assert not [layer for layer in plain.layers() if layer.op == "residual"]
    assert plain.num_params == resdsl.compile("resnet20").num_params  # option A adds no parameters


# -- reliability regressions ------------------------------------------------------------------


@pytest.mark.parametrize("op", ["maxpool", "avgpool()", "maxpool(s=2)"])
def test_pooling_without_a_window_says_which_argument(op: str) -> None:
    result = resdsl.check(f"network n() {{\n  input 3 x 8 x 8\n  p = {op}\n}}\n")
    (d,) = result.diagnostics
    assert d.code == "E204" and "needs argument 'k'" in d.message


def test_stride_inside_a_stages_block_is_a_lint() -> None:
    spec = 'import "std/blocks.arch"\nnetwork n() {\n  input 3 x 32 x 32\n  c = conv(64, k=3, p=1)\n' \
        "  layer1 = stage(bottleneck(16, stride=2), repeat=2)\n}\n"  # fmt: skip
    _w402, d = resdsl.check(spec).diagnostics  # W402: the map shrinks 4x, which is the point
    assert d.code == "W404" and d.severity == "warning" and (d.span.line, d.span.column) == (5, 33)
    assert "stage(bottleneck(...), repeat=2, stride=2)" in (d.help or "")
    single = spec.replace("repeat=2", "repeat=1")
    assert [d.code for d in resdsl.check(single).diagnostics] == ["W402"]


def test_every_reserved_layer_name_is_reported_in_one_run() -> None:
    spec = (
        'import "std/blocks.arch"\nnetwork n() {\n  input 3 x 8 x 8\n  forward = conv(8)\n  training = relu()\n'
        '  lambda = conv(8)\n  eval = stage(basic(8), repeat=2)\n  to = relu()\n  residual(identity, name="class")\n}\n'
    )
    result = resdsl.check(spec)
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("E505", n) for n in range(4, 10)]


def test_dropout_probability_must_be_a_probability() -> None:
    (d,) = resdsl.check("network n() {\n  input 8\n  d = dropout(1.5)\n}\n").diagnostics
    assert d.code == "E213" and "at most 1" in d.message


def test_activations_before_an_addition_are_not_overwritten_in_place() -> None:
    spec = "network n() {{\n  input 4 x 8 x 8\n  c = conv(4, k=3, p=1)\n  b = batchnorm()\n  {act}\n" \
        "  residual(identity)\n  relu\n}}\n"  # fmt: skip
    for act in ["relu", "leaky_relu(0.1)", "sigmoid", "silu"]:  # backward reads their outputs
        net = resdsl.compile(spec.format(act=act))
        residual = next(layer for layer in net.layers() if layer.op == "residual")
        assert not residual.inplace, act
    net = resdsl.compile(spec.format(act="ident = identity()"))  # looks through to batchnorm: safe
    assert next(layer for layer in net.layers() if layer.op == "residual").inplace


def test_the_python_api_takes_what_users_pass() -> None:
    net = resdsl.compile("resnet20", input_shape="3x64x64")
    assert net.input_shape == (3, 64, 64)
    assert resdsl.compile("resnet20", input_shape="3 x 48 x 48").input_shape == (3, 48, 48)
    bad = resdsl.check("resnet20", input_shape="3x64xfoo")
    assert [d.code for d in bad.diagnostics] == ["E213"] and "std/" not in str(bad.diagnostics[0])
    assert parse_override("depths", (1, 1, 1)) == [1, 1, 1]
    text = "network n(depths = [2, 2]) {\n  input 3 x 8 x 8\n  c = conv(depths[0] * 4)\n}\n"
    assert resdsl.compile(text, depths=(3, 3)).output_shape == (12, 8, 8)
    result = resdsl.check("network n() {\n  input 3 x 8 x 8\n  c = conv(plane)\n}\n")
    assert str(result.diagnostics[0]).startswith("<string>:3:12: error[E201]: unknown name 'plane'")
    assert repr(result) == "CheckResult(file='<string>', networks=['n'], errors=1, warnings=0)"


def test_an_import_typo_gets_a_suggestion() -> None:
    (d,) = resdsl.check('import "std/block.arch"\nnetwork n() {\n  input 3 x 8 x 8\n  relu\n}\n').diagnostics
    assert d.code == "E101" and d.help == 'did you mean "std/blocks.arch"?'


# -- layers of layers, choices and conditions -------------------------------------------------

CONSTRUCTS = """
block se_module(c, reduction = 16) {
    pool = global_avgpool()
    fc1  = conv(c // reduction, k=1, bias=true)
    relu
    fc2  = conv(c, k=1, bias=true)
    sigmoid
}
network n(norm = batchnorm, deep = true) {
    input 3 x 32 x 32
    conv1 = sequential(conv(16, k=3, s=2, p=1), norm(), relu, conv(32 if deep else 16, k=3, p=1))
    bn1 = norm(eps=1e-3)
    relu
    se = gate(se_module(32 if deep else 16, reduction=4))
    c2 = conv(32, k=3, p=1)
    bn2 = norm
    residual(projection, norm=norm)
}
network n_gn = n(norm = groupnorm(4), deep = false)
"""


def test_sequential_groups_number_their_layers_like_nn_sequential() -> None:
    net = resdsl.compile(CONSTRUCTS, network="n")
    paths = [layer.path for layer in net.layers() if layer.path.startswith("conv1")]
    assert paths == ["conv1.0", "conv1.1", "conv1.2", "conv1.3"]
    group = next(s for s in net.root.scopes() if s.kind == "sequential")
    assert group.path == "conv1" and net.layer(group.output).shape == (32, 16, 16)


def test_a_gate_multiplies_its_branch_back_onto_its_input() -> None:
    net = resdsl.compile(CONSTRUCTS, network="n")
    (mul,) = [layer for layer in net.layers() if layer.op == "mul"]
    x, gate = net.inputs(mul.id)
    assert net.layer(x).path == "relu" and net.layer(gate).path.startswith("se.")
    assert net.layer(gate).shape == (32, 1, 1) and mul.shape == (32, 16, 16)


def test_layer_valued_parameters_choose_the_normalization() -> None:
    net = resdsl.compile(CONSTRUCTS, network="n")
    bn1 = next(layer for layer in net.layers() if layer.path == "bn1")
    assert bn1.op == "batchnorm" and bn1.attrs["eps"] == 1e-3
    gn = resdsl.compile(CONSTRUCTS, network="n_gn")
    ops = {layer.path: layer.op for layer in gn.layers()}
    assert ops["conv1.1"] == ops["bn1"] == ops["bn2"] == "groupnorm"
    assert next(layer for layer in gn.layers() if layer.path == "bn1").attrs == {
        "groups": 4,
        "eps": 1e-3,
        "affine": True,
    }
    residual = next(layer for layer in gn.layers() if layer.op == "residual")
    assert residual.shortcut is not None and residual.shortcut.norm_op == "groupnorm"


def test_conditions_choose_values_and_only_evaluate_the_chosen_side() -> None:
    assert resdsl.compile(CONSTRUCTS, network="n_gn").output_shape == (32, 16, 16)
    assert evaluate("1 if 2 > 1 else 1 // 0") == 1
    assert evaluate('"v1" == "v1"') is True and evaluate("3 != 3") is False
    assert evaluate("1 if 3 else 2") == "E212"
    assert evaluate('1 < "a"') == "E212"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("g = gate(conv(8, k=1))", "E308"),  # 8 channels cannot scale 4
        ("g = gate(global_avgpool(), relu)", "E210"),
        ("m = mul()", "E217"),
        ("s = sequential()", "E204"),
        ("s = sequential(3)", "E205"),
        ("c = conv(4)\n  residual(projection, norm=relu)", "E205"),
    ],
)
def test_misuse_of_the_new_forms(body: str, code: str) -> None:
    result = resdsl.check(f"network n() {{\n  input 4 x 8 x 8\n  {body}\n}}\n")
    assert code in [d.code for d in result.diagnostics], [str(d) for d in result.diagnostics]


def test_spec_text_with_imports_and_no_braces_is_source_not_a_path() -> None:
    """A shipped alias file's text (a comment, an import with a '/', no braces) is source text."""
    from resdsl.api import shipped_names

    text = shipped_names()["resnet50"].read_text()
    assert "{" not in text and "/" in text
    result = resdsl.check(text)
    assert result.ok, result.diagnostics
    assert result.networks[0].num_params == 25_557_032


def test_an_unchanged_file_is_parsed_once_and_an_edited_one_again(tmp_path: Path) -> None:
    """The loader reuses the (immutable) AST of a file whose text it has parsed before: the
    library under every compile, a spec compiled again. Edits, and syntax errors, are not reused."""
    first, second = resdsl.check("resnet50"), resdsl.check("resnet50")
    assert first.program is not None and second.program is not None
    assert all(second.program.modules[f] is m for f, m in first.program.modules.items())
    spec = tmp_path / "net.arch"
    spec.write_text("network net() {\n    input 3 x 8 x 8\n    conv1 = conv(4, k=3)\n}\n", encoding="utf-8")
    assert resdsl.compile(spec).num_params == 4 * 3 * 9
    spec.write_text("network net() {\n    input 3 x 8 x 8\n    conv1 = conv(8, k=3)\n}\n", encoding="utf-8")
    assert resdsl.compile(spec).num_params == 8 * 3 * 9
    spec.write_text("network net() {\n    input 3 x 8 x 8\n    conv1 = conv(8, k=3\n}\n", encoding="utf-8")
    for _ in range(2):
        assert [d.code for d in resdsl.check(spec).diagnostics] == ["E001"]


CHOICE = """\
network n(act = true) {
    input 3 x 8 x 8
    conv1 = conv(4, k=3, p=1)
    relu if act else identity
    gelu if act == false else conv(4, k=1 // 0)
    fc = linear(2)
}
"""


def _ops(net: resdsl.Network) -> list[str]:
    return [layer.op for layer in net.layers() if layer.op != "input"]


def test_an_anonymous_conditional_layer_places_the_chosen_side() -> None:
    """Regression: `relu if act else identity` on its own line gave four errors (unknown name 'if' ...)."""
    net = resdsl.compile(CHOICE, act=False)  # only the chosen side is evaluated: not conv(4, k=1 // 0)
    assert _ops(net) == ["conv", "identity", "gelu", "linear"]
    assert [layer.name for layer in net.layers()][2:4] == ["identity", "gelu"]
    chosen = resdsl.check(CHOICE, {"act": True})  # now the conv's 1 // 0 is evaluated
    assert [(d.code, d.span.line) for d in chosen.diagnostics] == [("E209", 5)]


def test_a_bare_identity_statement_is_the_identity_layer() -> None:
    """Regression: a bare `identity` was refused as 'computes a shortcut kind, not a layer'."""
    spec = "network n() {\n  input 3 x 8 x 8\n  conv1 = conv(4)\n  identity\n  identity()\n  sc = identity\n}\n"
    net = resdsl.compile(spec)
    assert _ops(net) == ["conv", "identity", "identity"]
    kept = resdsl.compile(
        'import "std/blocks.arch"\nnetwork m(sc = identity) {\n  input 16 x 8 x 8\n'
        "  layer1 = stage(basic(16, shortcut=sc))\n}\n"
    )
    assert kept.num_params > 0  # a parameter holding identity is still the shortcut kind


def test_misused_forms_say_what_is_wrong(tmp_path: Path) -> None:
    spec = tmp_path / "bad.arch"
    spec.write_text(
        'import "std/blocks.arch"\n'
        "block b(c) {\n  conv1 = conv(c, k=3, p=1)\n  residual(add)\n}\n"
        "network n() {\n  input 4 x 8 x 8\n  a = sequential(4)\n  g = gate(stage(basic(4)))\n"
        "  x = b(4)\n  s = stage(basic(4), shortcut=zeropad)\n}\n",
        encoding="utf-8",
    )
    found = {d.span.line: d for d in resdsl.check(spec).diagnostics}
    assert found[8].code == "E205" and "sequential takes ops, blocks, sequential groups or stages" in found[8].message
    assert found[9].message == "gate takes ops, blocks or sequential groups, not a stage"
    assert "on a line of its own" in (found[9].help or "")
    kinds = "identity, zero_pad, projection, projection_all, avgpool_projection, identity_if_same, none"
    assert (found[4].code, found[4].message) == ("E201", "unknown shortcut kind 'add'")
    assert found[4].help == f"the kinds: {kinds}" and "conv" not in found[4].help
    assert found[11].help == f"did you mean 'zero_pad'? (the kinds: {kinds})"
    assert [f.edits[0].text for f in found[11].fixes] == ["zero_pad"]


IDENTITIES = """\
block twice(c) {
    conv1 = conv(c, k=3, p=1)
    residual(identity)
    conv2 = conv(c, k=3, p=1)
    residual(identity)
    conv3 = conv(c * 2, k=3, s=2, p=1)
    residual(projection)
}

network n() {
    input 4 x 8 x 8
    b1 = twice(4)
}
"""


def test_identity_residuals_need_no_name() -> None:
    """Regression: a second residual(identity) in a block was E206 until it got name=."""
    net = resdsl.compile(IDENTITIES)
    residuals = [layer for layer in net.layers() if layer.op == "residual"]
    assert [r.shortcut.kind for r in residuals if r.shortcut] == ["identity", "identity", "projection"]
    twice = IDENTITIES.replace("residual(projection)", "residual(projection)\n    residual(projection_all)")
    (dup,) = [d for d in resdsl.check(twice).diagnostics if d.code == "E206"]  # two modules, one name
    assert dup.span.line == 8 and dup.notes == ("first defined at <string>:7:5",)
    by_kind = IDENTITIES.replace("block twice(c)", "block twice(c, sc = identity)").replace("(identity)", "(sc)")
    assert "E206" in [d.code for d in resdsl.check(by_kind).diagnostics]  # a kind that may make a module


NAMED_STAGES = """
import "std/blocks.arch"
network named() {
    input 3 x 32 x 32
    conv1 = conv(16, k=3, p=1)
    s1 = stage(basic(16), repeat=2, prefix="b", start=1)
    s2 = stage(basic(32), repeat=3, stride=2, prefix="block")
    pool = global_avgpool()
    fc = linear(10)
}
"""


def test_a_stage_names_its_blocks_by_prefix_and_start(tmp_path: Path) -> None:
    """timm's RegNet keys read s1.b1.conv1, DenseNet's denseblock1.denselayer1: a stage's
    prefix= and start= name its blocks; the default stays nn.Sequential's 0, 1, ..."""
    spec = tmp_path / "named.arch"
    spec.write_text(NAMED_STAGES)
    net = resdsl.compile(str(spec))
    blocks = [s.path for s in net.root.scopes() if s.kind == "block"]
    assert blocks == ["s1.b1", "s1.b2", "s2.block0", "s2.block1", "s2.block2"]
    keys = list(resdsl.build_model(net).state_dict())
    assert "s1.b1.conv1.weight" in keys and "s2.block0.downsample.0.weight" in keys
    assert not any(k.startswith(("s1.0", "s2.0")) for k in keys)


def test_a_stage_prefix_may_end_in_a_hyphen(tmp_path: Path) -> None:
    """torchvision's RegNet names its blocks block1-0, block1-1: keys of the stage's
    nn.Sequential, never attributes, so a hyphen may join prefix and number."""
    spec = tmp_path / "named.arch"
    spec.write_text(NAMED_STAGES.replace('prefix="block"', 'prefix="block2-"'))
    keys = list(resdsl.build_model(str(spec)).state_dict())
    assert "s2.block2-0.conv1.weight" in keys and "s2.block2-2.conv2.weight" in keys


@pytest.mark.parametrize("prefix", ['"1b"', '"b.c"', '"b c"', '"1-"', '"b+"'])
def test_a_stage_prefix_that_makes_no_module_name_is_refused(tmp_path: Path, prefix: str) -> None:
    spec = tmp_path / "bad.arch"
    spec.write_text(NAMED_STAGES.replace('prefix="block"', f"prefix={prefix}"))
    (d,) = resdsl.check(str(spec)).diagnostics
    assert d.code == "E213" and d.span.line == 7 and "module names" in d.message
    assert spec.read_text().splitlines()[6][d.span.column - 1 :].startswith(f"prefix={prefix}")


BOUND_TWICE = """
block unit(c) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm(momentum=MOMENTUM)
    residual("zero_pad")
}
network net() {
    input 3 x 8 x 8
    a = unit(4)
    b = unit(8)
}
"""


def elaborate_text(text: str) -> tuple[object, Collector]:
    collector = Collector()
    program = resdsl.semantics.elaborate.load(Path("t.arch"), collector, text=text)
    (definition,) = program.own_networks()
    return Elaborator(program, collector).network(definition), collector


def test_a_call_site_bound_in_every_instance_takes_each_instances_values() -> None:
    # the evaluator keeps a call site's plan and its literals' values: only those may repeat
    net, collector = elaborate_text(BOUND_TWICE.replace("MOMENTUM", "0.2"))
    assert not collector.items and net is not None
    attrs = {layer.path: layer.attrs for layer in net.layers()}  # type: ignore[attr-defined]
    assert [attrs[f"{b}.conv1"]["out"] for b in "ab"] == [4, 8]
    assert [(attrs[f"{b}.conv1"]["k"], attrs[f"{b}.conv1"]["p"]) for b in "ab"] == [(3, 1), (3, 1)]
    assert [attrs[f"{b}.bn1"]["momentum"] for b in "ab"] == [0.2, 0.2]
    kinds = [attrs[f"{b}.downsample"]["shortcut"] for b in "ab"]
    assert kinds == ["zero_pad", "zero_pad"] and all(isinstance(k, ShortcutKind) for k in kinds)  # the word made a kind


def test_a_literal_that_does_not_suit_is_reported_in_every_instance() -> None:
    # a literal is kept only once it bound cleanly, so each instance reports the mistake
    _net, collector = elaborate_text(BOUND_TWICE.replace("MOMENTUM", "2"))
    assert [d.code for d in collector.items] == ["E213", "E213"]


def test_input_sizes_are_expressions_of_the_networks_parameters() -> None:
    """``input 3 x img_size x img_size``: each alias or override sizes the input; the declared
    shape is kept beside the one checked at (another given with --input)."""
    spec = (
        "network n(img_size = 32, c = 3) {\n  input c x img_size // 2 * 2 x img_size\n  conv1 = conv(8, k=3)\n}\n"
        "network big = n(img_size=65)\n"
    )
    result = resdsl.check(spec)
    assert result.ok, [str(d) for d in result.diagnostics]
    shapes = {net.name: (net.input_shape, net.declared_input) for net in result.networks}
    assert shapes == {"n": ((3, 32, 32), (3, 32, 32)), "big": ((3, 64, 65), (3, 64, 65))}
    (net,) = resdsl.check(spec, network="n", overrides={"img_size": 17, "c": 1}).networks
    assert net.input_shape == (1, 16, 17) and net.layer("conv1").shape == (8, 14, 15)
    (net,) = resdsl.check(spec, network="n", input_shape=(3, 9, 9)).networks
    assert net.input_shape == (3, 9, 9) and net.declared_input == (3, 32, 32)


@pytest.mark.parametrize(
    ("size", "code", "message"),
    [
        ("img_size / 3", "E208", "32 / 3 is not a whole number"),
        ("img_size * 0.5", "E205", "input size img_size * 0.5 of network 'n' is 16.0, not a whole number"),
        ("img_size - 32", "E213", "input size img_size - 32 of network 'n' is 0; sizes must be at least 1"),
        ('"big"', "E205", "input size \"big\" of network 'n' is 'big', not a whole number"),
        ("width", "E201", "width"),
    ],
)
def test_a_bad_input_size_is_reported_at_that_size(size: str, code: str, message: str) -> None:
    result = resdsl.check(f"network n(img_size = 32) {{\n  input 3 x {size} x img_size\n  c = conv(8)\n}}\n")
    (d,) = result.diagnostics
    assert (d.code, d.span.line, d.span.column) == (code, 2, 13) and message in d.message
