"""The front end: grammar coverage, spans, syntax errors in the language's words, round trip."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from resdsl.diagnostics import ResdslError
from resdsl.syntax import ast
from resdsl.syntax.parser import parse, parse_expr
from tests.arch_text import modules, show_module, strip

SAMPLE = """\
import "std/blocks.arch"   # the shipped library
# a comment line
block pre(planes, stride = 1, shortcut = projection) {
    width = planes * 4 / 2
    bn1   = batchnorm()
    relu1 = relu
    conv1 = conv(width, k=3, s=stride, p=1)
    residual(shortcut, project_from=relu1)
}

network net(num_classes = 10, depths = [2, 2], flag = true, scale = 0.5) {
    input 3 x 32 x 32
    meta { mean = [0.5, 0.5, 0.5]  std = [0.25, 0.25, 0.25]  dataset = "toy" }
    conv1  = conv(16, k=3, p=1)
    relu
    layer1 = stage(pre(16), repeat=depths[0], stride=2)
    fc     = linear(num_classes)
}

network small = net(num_classes=2)
"""


def test_sample_covers_the_language() -> None:
    m = parse(SAMPLE, "sample.arch")
    assert [i.path for i in m.imports] == ["std/blocks.arch"]
    block, net, alias = m.definitions
    assert isinstance(block, ast.BlockDef) and block.name == "pre"
    assert [p.name for p in block.params] == ["planes", "stride", "shortcut"]
    assert block.params[0].default is None and block.params[1].default == ast.IntLit(1, block.params[1].default.span)
    width = block.body[0]
    assert isinstance(width, ast.Assign) and isinstance(width.value, ast.BinOp) and width.value.op == "/"
    assert isinstance(block.body[2], ast.Assign) and block.body[2].value == ast.Name("relu", block.body[2].value.span)
    residual = block.body[4]
    assert isinstance(residual, ast.LayerStmt) and isinstance(residual.value, ast.Call)
    assert residual.value.args[1].name == "project_from"
    assert isinstance(net, ast.NetworkDef)
    assert isinstance(net.body[0], ast.InputStmt) and [d.value for d in net.body[0].dims] == [3, 32, 32]  # type: ignore[attr-defined]
    meta = net.body[1]
    assert isinstance(meta, ast.MetaStmt) and [e.name for e in meta.entries] == ["mean", "std", "dataset"]
    assert isinstance(net.body[3], ast.LayerStmt) and net.body[3].value.id == "relu"  # type: ignore[union-attr]
    stage = net.body[4].value  # type: ignore[union-attr]
    assert isinstance(stage, ast.Call) and isinstance(stage.args[1].value, ast.Index)
    assert [p.default.value for p in net.params[2:]] == [True, 0.5]  # type: ignore[union-attr]
    assert isinstance(alias, ast.NetworkAlias) and alias.target.func == "net"


def test_spans_point_at_the_source() -> None:
    m = parse(SAMPLE, "sample.arch")
    conv1 = m.definitions[1].body[2]  # type: ignore[union-attr]
    assert (conv1.span.line, conv1.span.column) == (14, 5)
    assert (conv1.name_span.line, conv1.name_span.column, conv1.name_span.end_column) == (14, 5, 10)
    call = conv1.value
    assert (call.span.line, call.span.column, call.span.end_column) == (14, 14, 32)
    assert call.args[1].span.column == 23  # k=3
    assert m.definitions[1].span.file == "sample.arch"


def test_precedence_and_associativity() -> None:
    e = parse_expr("1 + 2 * 3 - 4 // 2 % 3")
    assert e.op == "-" and e.left.op == "+" and e.left.right.op == "*"  # type: ignore[union-attr]
    e = parse_expr("8 / 4 / 2")
    assert e.left.op == "/" and isinstance(e.right, ast.IntLit)  # type: ignore[union-attr]
    e = parse_expr("-(1 + 2) * 3")
    assert e.op == "*" and isinstance(e.left, ast.Neg)  # type: ignore[union-attr]


def test_power_and_boolean_precedence_follow_python() -> None:
    e = parse_expr("-2 ** 2")  # the power binds first: -(2 ** 2)
    assert isinstance(e, ast.Neg) and e.operand.op == "**"  # type: ignore[attr-defined]
    e = parse_expr("2 ** 3 ** 2")  # right-associative
    assert e.op == "**" and isinstance(e.left, ast.IntLit) and e.right.op == "**"  # type: ignore[union-attr]
    e = parse_expr("2 ** -1")  # a unary minus on the right
    assert e.op == "**" and isinstance(e.right, ast.Neg)  # type: ignore[union-attr]
    e = parse_expr("2 * 3 ** 2")
    assert e.op == "*" and e.right.op == "**"  # type: ignore[union-attr]
    e = parse_expr("a or b and not c == d")  # or < and < not < comparisons
    assert e.op == "or" and e.right.op == "and"  # type: ignore[union-attr]
    assert isinstance(e.right.right, ast.Not) and e.right.right.operand.op == "=="  # type: ignore[union-attr]
    e = parse_expr("x if s == 1 and c == 64 else y")  # a boolean test, no parentheses needed
    assert isinstance(e, ast.Cond) and e.test.op == "and"  # type: ignore[union-attr]
    e = parse_expr("a and b and c")  # left-associative
    assert e.op == "and" and e.left.op == "and"  # type: ignore[union-attr]


def test_builtin_calls_and_comprehensions_parse_with_spans() -> None:
    e = parse_expr("make_divisible(c * 0.75, divisor=8)")
    assert isinstance(e, ast.FuncCall) and e.func == "make_divisible" and [a.name for a in e.args] == [None, "divisor"]
    assert (e.func_span.column, e.func_span.end_column, e.span.end_column) == (1, 15, 36)
    assert isinstance(parse_expr("conv(8)"), ast.Call)  # an op stays a layer call
    e = parse_expr("[c * 2 for c in widths if c > 8]")
    assert isinstance(e, ast.ListComp) and len(e.loops) == 1
    (loop,) = e.loops
    assert loop.name == "c" and isinstance(loop.iterable, ast.Name) and loop.cond.op == ">"  # type: ignore[union-attr]
    assert (loop.name_span.column, loop.iterable.span.column, loop.cond.span.column) == (12, 17, 27)  # type: ignore[union-attr]
    assert (e.span.column, e.span.end_column) == (1, 33)
    e = parse_expr("[a * b for a in xs for b in range(a)]")
    assert isinstance(e, ast.ListComp) and [loop.name for loop in e.loops] == ["a", "b"]
    assert all(loop.cond is None for loop in e.loops)
    e = parse_expr("[a if t else b for x in xs]")  # the item may be a conditional
    assert isinstance(e, ast.ListComp) and isinstance(e.item, ast.Cond)
    assert ast.children(e) == (e.item, e.loops[0].iterable)  # what walk and name resolution read


@pytest.mark.parametrize("text", ["v = [x for true in xs]", "v = [x for in in xs]", "and = 3", "v = [x for for in xs]"])
def test_the_new_keywords_are_reserved(text: str) -> None:
    import resdsl

    result = resdsl.check(f"network n(xs = [1]) {{\n    input 3 x 8 x 8\n    {text}\n}}\n")
    codes = [d.code for d in result.diagnostics]
    assert codes and set(codes) <= {"E001", "E005"}, codes
    assert result.diagnostics[0].span.line == 3


def test_shapes_with_and_without_spaces() -> None:
    for text in ("3x224x224", "3 x 224 x 224", "3  x 224x224"):
        m = parse(f"network n() {{ input {text} }}")
        sizes = m.definitions[0].body[0].dims  # type: ignore[union-attr]
        columns = [21 + found.start() for found in re.finditer(r"\d+", text)]  # each size's own span
        assert [(d.value, d.span.column) for d in sizes] == list(zip((3, 224, 224), columns, strict=True))


def test_input_sizes_may_be_expressions_of_the_parameters() -> None:
    """``x`` separates sizes where white space and a size follow it; elsewhere it is a name."""
    m = parse("network n(s = 8, xs = 2) {\n    input 3 x s * xs x (s + 1)\n    x = conv(8)\n    x\n}\n")
    stmt, layer, bare = m.definitions[0].body  # type: ignore[union-attr]
    assert isinstance(stmt, ast.InputStmt) and len(stmt.dims) == 3
    assert isinstance(stmt.dims[1], ast.BinOp) and stmt.dims[1].op == "*"
    assert (stmt.dims[2].span.line, stmt.dims[2].span.column) == (2, 25)
    assert isinstance(layer, ast.Assign) and layer.name == "x" and isinstance(bare, ast.LayerStmt)


def test_statements_may_share_a_line() -> None:
    m = parse("network n() { input 3 x 8 x 8 conv1 = conv(8) relu  bn = batchnorm() }")
    assert len(m.definitions[0].body) == 4  # type: ignore[union-attr]


def test_a_conditional_layer_on_its_own_line_is_one_layer_statement() -> None:
    text = (
        "network n(act = true, deep = 2) {\n  input 3 x 8 x 8\n  relu if act else identity\n"
        "  conv(8, k=3) if deep > 1 else gelu if act else identity\n  x = 1\n}\n"
    )
    body = parse(text).definitions[0].body  # type: ignore[union-attr]
    assert len(body) == 4
    first, second = body[1], body[2]
    assert isinstance(first, ast.LayerStmt) and strip(first.value) == ast.Cond(
        ast.Name("act"), ast.Name("relu"), ast.Name("identity")
    )
    assert (first.span.line, first.span.column, first.span.end_column) == (3, 3, 28)
    assert isinstance(second, ast.LayerStmt) and isinstance(second.value, ast.Cond)
    assert isinstance(second.value.then, ast.Call) and isinstance(second.value.orelse, ast.Cond)


@pytest.mark.parametrize(
    ("text", "code", "line", "column"),
    [
        ("network n() {\n  conv1 = conv(16 k=3)\n}", "E001", 2, 19),
        ("network n() {\n  x = 'a'\n}", "E002", 2, 7),
        ("network n() {\n  conv1 = conv(16)\n", "E003", 2, 19),
        ("block b( { }", "E001", 1, 10),
        ("network n() { = }", "E001", 1, 15),
        ("network 3n() { }", "E001", 1, 9),
        ("import std\n", "E001", 1, 8),
    ],
)
def test_syntax_errors_are_in_the_languages_words(text: str, code: str, line: int, column: int) -> None:
    with pytest.raises(ResdslError) as info:
        parse(text, "bad.arch")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.file, d.span.line, d.span.column) == (code, "bad.arch", line, column)
    # no raw lark terminal names such as LPAR, RPAR, NAME, $END, __ANON
    assert not re.search(r"\b(LPAR|RPAR|LBRACE|RBRACE|COMMA|EQUAL|NAME|INT|FLOAT|SHAPE|STRING)\b|\$END|__", d.message)


def test_expected_tokens_are_listed() -> None:
    with pytest.raises(ResdslError) as info:
        parse("network n() {\n  conv1 = conv(16 k=3)\n}")
    assert "expected ')', ','" in info.value.diagnostics[0].message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_random_valid_specs_round_trip(module: ast.Module) -> None:
    text = show_module(module)
    parsed = parse(text, "<test>")
    assert strip(parsed) == strip(module), text


def test_independent_syntax_errors_are_all_reported_without_follow_ons() -> None:
    text = (
        "network n() {\n    input 3 x 32 x 32\n    conv1 = conv(16 k=3)\n    relu\n"
        "    conv2 = conv(16, k=3,, p=1)\n    name = 'x'\n}\n"
    )
    with pytest.raises(ResdslError) as info:
        parse(text, "bad.arch")
    assert [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics] == [
        ("E001", 3, 21),
        ("E001", 5, 26),
        ("E002", 6, 12),
    ]


# -- reliability: what files people actually save ------------------------------------------


def test_a_byte_order_mark_is_not_part_of_the_spec(tmp_path: Path) -> None:
    import resdsl

    spec = tmp_path / "bom.arch"
    spec.write_bytes(b"\xef\xbb\xbfnetwork n() {\n  input 3 x 8 x 8\n  relu\n}\n")
    assert resdsl.check(spec).ok
    assert resdsl.check("\ufeffnetwork n() {\n  input 3 x 8 x 8\n  relu\n}\n").ok


def test_the_caret_sits_under_the_mistake_with_tab_indentation() -> None:
    import resdsl
    from resdsl.diagnostics import SourceCache, format_diagnostic

    text = "network n() {\n\tinput 3 x 8 x 8\n\tc = conv(4, k=3, p=1)\n\t\tresidual(identity)\n}\n"
    (d,) = resdsl.check(text).diagnostics
    lines = format_diagnostic(d, SourceCache({"<string>": text})).splitlines()
    excerpt, caret = next((a, b) for a, b in itertools.pairwise(lines) if "| " in a and "residual(" in a)
    column = excerpt.index("residual")
    assert caret.index("^") == column and caret.count("~") == len("residual(identity)") - 1


@pytest.mark.parametrize(
    "text",
    [
        "network n() {\n  input 3 x 8 x 8\n  input = conv(8)\n}\n",
        "network n() {\n  input 3 x 8 x 8\n  meta = conv(8)\n}\n",
        "block network() {\n  relu\n}\n",
        "network import() {\n  input 3 x 8 x 8\n  relu\n}\n",
        "block b(block) {\n  relu\n}\n",
        "network n(true = 3) {\n  input 3 x 8 x 8\n  relu\n}\n",
        "network n() {\n  input 3 x 8 x 8\n  c = conv(8)\n  false = relu()\n}\n",
        "network n() {\n  input 3 x 8 x 8\n  relu\n  if = conv(8)\n}\n",
        "network n() {\n  input 3 x 8 x 8\n  else = 3\n}\n",
    ],
)
def test_reserved_words_as_names_say_so(text: str) -> None:
    import resdsl

    result = resdsl.check(text)
    e005 = [d for d in result.diagnostics if d.code == "E005"]
    assert e005, [str(d) for d in result.diagnostics]
    assert "reserved word" in e005[0].message and "rename it" in (e005[0].help or "")


def test_block_network_and_import_name_layers_inside_a_body() -> None:
    """Keywords only where a file's statements start: inside braces they are names wherever they
    stand (also after a call, where LALR's merged lookaheads would let the lexer read a keyword),
    so a layer keeps a PyTorch attribute such as torchvision's ``self.block`` in its keys
    (``import``, a Python keyword, cannot be a module attribute: E505)."""
    import resdsl

    text = (
        "block b(c) {\n  x = conv(c, k=3, p=1)\n  block = relu()\n  network = conv(c, k=1)\n}\n\n"
        "network n() {\n  input 3 x 8 x 8\n  y = b(8)\n  block = b(8)\n  network = b(8)\n}\n"
        "network m = n()\n"
    )
    result = resdsl.check(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    keys = [k for k in resdsl.build_model(text, network="n").state_dict() if k.endswith("weight")]
    assert keys == [f"{a}.{b}.weight" for a in ("y", "block", "network") for b in ("x", "network")]


def test_the_language_reference_lists_the_reserved_words() -> None:
    from resdsl.diagnostics.codes import entries
    from resdsl.syntax.parser import RESERVED_WORDS
    from tests.conftest import ROOT

    reference = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    listed = re.search(r"Reserved words: `([a-z ]+)`", reference)
    assert listed is not None and set(listed.group(1).split()) == RESERVED_WORDS
    e005 = re.search(r"`([a-z ]+)`", entries()["E005"].summary)
    assert e005 is not None and set(e005.group(1).split()) == RESERVED_WORDS


def test_walk_reads_every_sub_expression_in_source_order() -> None:
    """ast.walk is built on ast.children, the one description of each node's shape."""
    expr = parse_expr("f(a + -b[c], d if e else [g, 1])")
    names = [n.id for n in ast.walk(expr) if isinstance(n, ast.Name)]
    assert names == ["a", "b", "c", "e", "d", "g"]  # a condition's test comes before its sides
    assert [type(n).__name__ for n in ast.walk(expr, into_calls=False)] == ["Call"]


def test_walk_survives_nesting_deeper_than_the_python_stack() -> None:
    expr: ast.Expr = ast.Name("x")
    for _ in range(5000):
        expr = ast.Neg(expr)
    assert sum(1 for _ in ast.walk(expr)) == 5001


def test_an_expression_visitor_dispatches_on_the_node_class() -> None:
    class Names(ast.ExprVisitor[None]):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def visit_Name(self, expr: ast.Name) -> None:
            self.seen.append(expr.id)

    visitor = Names()
    visitor.visit(parse_expr("a * (b - c[d])"))  # generic_visit walks what has no method
    assert visitor.seen == ["a", "b", "c", "d"]


def test_each_expression_visitor_class_dispatches_to_its_own_methods() -> None:
    # the methods are looked up once per (visitor class, node class): a subclass's own
    # method wins however the classes were used before
    class Base(ast.ExprVisitor[str]):
        def visit_Name(self, expr: ast.Name) -> str:
            return "base"

        def generic_visit(self, expr: ast.Expr) -> str:
            return "other"

    class Child(Base):
        def visit_Name(self, expr: ast.Name) -> str:
            return "child"

    class Grandchild(Child):
        def generic_visit(self, expr: ast.Expr) -> str:
            return "grandchild"

    name, number = ast.Name("x"), ast.IntLit(1)
    assert (Base().visit(name), Base().visit(number)) == ("base", "other")
    assert (Child().visit(name), Child().visit(number)) == ("child", "other")
    assert (Grandchild().visit(name), Grandchild().visit(number)) == ("child", "grandchild")
