"""The editor on numbers and lists: hover shows a builtin call's signature, doc line and value
(per instance where a block's arguments differ, the whole list inside a comprehension), and
completion offers the builtins with their doc lines and a builtin's named parameters."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from resdsl.tools.lsp.completion import completions
from resdsl.tools.lsp.convert import path_to_uri
from resdsl.tools.lsp.hover import hover
from resdsl.tools.lsp.workspace import Analysis, Workspace

SPEC = """\
block mb(c, mult = 1.0) {
    conv1 = conv(make_divisible(c * mult), k=3, p=1)
    relu
}

network n(w = 0.75) {
    input 3 x 32 x 32
    widths = [make_divisible(x * w) for x in [32, 64, 96] if x > 16]
    stem = conv(make_divisible(32 * 0.75), k=3, p=1)
    layer1 = stage(mb(widths[1], mult=w), repeat=1)
    layer2 = mb(max(widths), mult=2.0)
    fc = linear(10)
}
"""


def _open(tmp_path: Path, text: str = SPEC) -> tuple[Workspace, Analysis, str]:
    path = tmp_path / "n.arch"
    path.write_text(text, encoding="utf-8")
    ws = Workspace()
    uri = path_to_uri(path)
    ws.open(uri, text)
    return ws, ws.analyse(uri), uri


def _hover(ws: Workspace, analysis: Analysis, needle: str, offset: int = 1) -> str:
    for number, line in enumerate(SPEC.split("\n")):
        if needle in line:
            found = hover(ws, analysis, types.Position(number, line.index(needle) + offset))
            assert found is not None and isinstance(found.contents, types.MarkupContent)
            return found.contents.value
    raise AssertionError(needle)


def test_hover_shows_a_calls_signature_and_value(tmp_path: Path) -> None:
    ws, analysis, _ = _open(tmp_path)
    assert analysis.result.ok
    text = _hover(ws, analysis, "make_divisible(32")
    assert "make_divisible(v, divisor=8, min_value=None, round_limit=0.9)" in text and "timm's make_divisible" in text
    assert "make_divisible(32 * 0.75) = 24" in text
    assert "max(widths) = 72" in _hover(ws, analysis, "max(widths")


def test_hover_in_a_block_shows_each_instances_value(tmp_path: Path) -> None:
    ws, analysis, _ = _open(tmp_path)
    text = _hover(ws, analysis, "make_divisible(c")
    assert "make_divisible(c * mult) = 40: layer1.0" in text and "make_divisible(c * mult) = 144: layer2" in text


def test_hover_in_a_comprehension_shows_the_list(tmp_path: Path) -> None:
    ws, analysis, _ = _open(tmp_path)
    text = _hover(ws, analysis, "make_divisible(x")
    assert "[make_divisible(x * w) for x in [32, 64, 96] if x > 16] = [24, 48, 72]" in text


def test_completion_offers_the_builtins_and_their_named_parameters(tmp_path: Path) -> None:
    ws, analysis, uri = _open(tmp_path)
    typed = SPEC.replace("conv(make_divisible(32 * 0.75), k=3", "conv(make_divisible(32 * 0.75, ")
    ws.texts[uri] = typed
    line = next(i for i, text in enumerate(typed.split("\n")) if "0.75, " in text)
    items = completions(ws, analysis, types.Position(line, len("    stem = conv(make_divisible(32 * 0.75, ")))
    labels = [i.label for i in items]
    assert labels[:3] == ["divisor=", "min_value=", "round_limit="] and "w" in labels
    functions = {i.label: i for i in items if i.kind == types.CompletionItemKind.Function}
    names = "round ceil floor int float min max abs log sqrt len sum range linspace make_divisible"
    assert list(functions) == names.split()
    assert functions["range"].detail == "range(n) / range(start, stop, step=1)"
    doc = functions["round"].documentation
    assert isinstance(doc, types.MarkupContent) and "halves to the even one" in doc.value
    ws.texts[uri] = SPEC.replace("max(widths)", "max(")  # min and max take no named arguments
    line = next(i for i, text in enumerate(SPEC.split("\n")) if "max(widths" in text)
    column = SPEC.split("\n")[line].index("max(") + 4
    assert not [i for i in completions(ws, analysis, types.Position(line, column)) if i.label.endswith("=")]


SIZED = """\
network n(img_size = 32) {
    input 3 x img_size x img_size
    conv1 = conv(8, k=3, p=1)
}

network big = n(img_size=48)
"""


def test_hover_on_an_input_statement_shows_each_networks_shape(tmp_path: Path) -> None:
    """``input 3 x img_size x img_size``: the shape of every network the statement serves, and
    on the parameter its value in each."""
    ws, analysis, _ = _open(tmp_path, SIZED)
    assert analysis.result.ok
    line = SIZED.split("\n")[1]
    on_keyword = hover(ws, analysis, types.Position(1, line.index("input") + 1))
    on_size = hover(ws, analysis, types.Position(1, line.index("img_size") + 1))
    assert on_keyword is not None and isinstance(on_keyword.contents, types.MarkupContent)
    assert "n: input 3 x 32 x 32" in on_keyword.contents.value
    assert "big: input 3 x 48 x 48" in on_keyword.contents.value
    assert on_size is not None and isinstance(on_size.contents, types.MarkupContent)
    assert "img_size = 48: big" in on_size.contents.value and "n: input 3 x 32 x 32" in on_size.contents.value
