"""`resdsl fmt`: the canonical layout, comments kept, idempotent, meaning unchanged.

Meaning is compared twice over: the AST with spans blanked, and what `resdsl check` makes of the
spec (every network's layers with their ops, arguments, shapes, parameters and MACs, and the
diagnostic codes). The property tests draw programs from the front-end fuzzer's grammar-aware
generator (tests/fuzz_gen.py) and sprinkle comments over them; others shuffle the layout of the
shipped specs, which must come back exactly as shipped.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Token

import resdsl
from resdsl.diagnostics import ResdslError
from resdsl.syntax.parser import parse
from resdsl.tools.cli import cli
from resdsl.tools.fmt import _strip_spans, _tree_and_comments, format_text
from tests.conftest import SPECS
from tests.fuzz_gen import MAIN, generated_case

SHIPPED = sorted(SPECS.glob("*.arch")) + sorted((SPECS / "std").glob("*.arch"))
FAST = settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


def tokens(text: str) -> list[Token]:
    """Every token of a spec, in order (comments aside)."""
    tree, _ = _tree_and_comments(text)
    return sorted(tree.scan_values(lambda v: isinstance(v, Token)), key=lambda t: t.start_pos or 0)


def comments(text: str) -> list[str]:
    return [str(c).rstrip() for c in _tree_and_comments(text)[1]]


def meaning(spec: Path) -> Any:
    """What `resdsl check` makes of a spec: diagnostic codes, and each network layer by layer."""
    result = resdsl.check(spec)
    nets = [
        (
            net.name,
            repr(net.params),
            net.input_shape,
            repr(net.meta),
            [(ly.path, ly.op, repr(ly.attrs), ly.shape, ly.params, ly.macs) for ly in net.layers()],
            sorted(net.graph.edges),
        )
        for net in result.networks
    ]
    return sorted(d.code for d in result.diagnostics), nets


def with_comments(text: str, picks: list[int], rng: random.Random) -> tuple[str, int]:
    """``text`` with a comment after each picked token: at the end of the line or on a line of its own."""
    toks = tokens(text)
    out, prev, added = [], 0, 0
    for i in sorted({p % len(toks) for p in picks}) if toks else []:
        end = toks[i].end_pos or 0
        out.append(text[prev:end])
        out.append(rng.choice([f"  # c{added}\n", f"\n# c{added}\n", f" #c{added} \n"]))
        prev, added = end, added + 1
    out.append(text[prev:])
    return "".join(out), added


def assert_same_meaning(before: str, after: str, tmp_path: Path, other: dict[str, str] | None = None) -> None:
    assert _strip_spans(parse(after)) == _strip_spans(parse(before))
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    for name, text in (other or {}).items():
        (tmp_path / name).write_text(text)
    (folder / "a.arch").write_text(before)
    first = meaning(folder / "a.arch")
    (folder / "a.arch").write_text(after)
    assert meaning(folder / "a.arch") == first


def test_shipped_specs_are_in_the_canonical_layout() -> None:
    for spec in SHIPPED:
        text = spec.read_text()
        assert format_text(text, str(spec)) == text, f"run: resdsl fmt {spec}"
    result = CliRunner().invoke(cli, ["fmt", "--check", str(SPECS)])
    assert result.exit_code == 0, result.output


def test_a_conditional_layer_statement_is_kept() -> None:
    text = "network n(act = true) {\n    input 3 x 8 x 8\n    relu   if act   else identity\n    fc = linear(2)\n}\n"
    out = format_text(text)
    assert "\n    relu if act else identity\n" in out and format_text(out) == out


def test_layout_rules() -> None:
    messy = (
        '\n\n# header\nimport   "std/blocks.arch"\n\n\n\nblock b(c,k=3,) {relu  x=c*-(c+1)//2  y=[1,2,]\n'
        "  z = x if c>=1 else -y[0]   # why\n  longer_name=conv(c,   # first\n  k=k)\n\n\n"
        '    q = identity() #q\n}\nnetwork n(width=16)\n{ input 3x8   x8\n  meta {mean=[0.5]  note="x"}\n'
        "  a=conv(width,k=3,\n p=1)\n  relu\n  # stage\n  s=stage(b(width),repeat=2)\n}\n"
        "network m = n(width=8)   # alias\n"
    )
    assert format_text(messy) == (
        "# header\n"
        'import "std/blocks.arch"\n'
        "\n"
        "block b(c, k = 3) {\n"
        "    relu\n"
        "    x           = c * -(c + 1) // 2\n"
        "    y           = [1, 2]\n"
        "    z           = x if c >= 1 else -y[0]  # why\n"
        "    longer_name = conv(c,                 # first\n"
        "                       k=k)\n"
        "\n"
        "    q = identity()  #q\n"
        "}\n"
        "network n(width = 16) {\n"
        "    input 3 x 8 x 8\n"
        '    meta { mean = [0.5]  note = "x" }\n'
        "    a = conv(width, k=3,\n"
        "             p=1)\n"
        "    relu\n"
        "    # stage\n"
        "    s = stage(b(width), repeat=2)\n"
        "}\n"
        "network m = n(width=8)  # alias\n"
    )


def test_a_spec_with_comments_in_every_position_keeps_them_all(tmp_path: Path) -> None:
    text = (SPECS / "cifar_resnet.arch").read_text()
    every = list(range(len(tokens(text))))
    commented, added = with_comments(text, every, random.Random(1))
    commented = "# first\n" + commented + "# last"
    assert added == len(every)
    out = format_text(commented)
    assert comments(out) == comments(commented) and len(comments(out)) == len(comments(text)) + added + 2
    assert format_text(out) == out
    assert_same_meaning(commented, out, tmp_path)


def test_leading_numbers_of_alike_values_line_up() -> None:
    text = (
        "network n() {\n    input 3 x 8 x 8\n    a = stage(b(8, k=1), repeat=1)\n    bb = stage(b(16, k=1))\n"
        "    c = stage(b(128, k=1),\n              repeat=2)  # c\n    d = conv(8, k=1)\n\n"
        "    e = stage(b(1, k=1))\n}\n"
    )
    assert format_text(text) == (
        "network n() {\n    input 3 x 8 x 8\n"
        "    a  = stage(b(8,   k=1), repeat=1)\n"
        "    bb = stage(b(16,  k=1))\n"
        "    c  = stage(b(128, k=1),\n"
        "               repeat=2)  # c\n"
        "    d  = conv(8, k=1)\n"
        "\n"
        "    e = stage(b(1, k=1))\n}\n"
    )


def test_comments_inside_empty_bodies_lists_and_multiline_meta() -> None:
    text = (
        "block e() {\n# alone\n}\nblock f() {}\nnetwork n() {\n  input 3 x 8 x 8\n  meta {\n    a = 1 # one\n\n"
        "    long = [1, # in a list\n 2]\n  # before the brace\n  }\n  c = conv(8 # arg\n  )\n}\n# end\n"
    )
    out = format_text(text)
    assert comments(out) == comments(text)
    assert "block f() {}\n" in out and "    meta {\n        a = 1  # one\n\n        long = [1,  # in a list\n" in out
    assert format_text(out) == out


@FAST
@given(index=st.integers(0, 10**6), picks=st.lists(st.integers(0, 10**4), max_size=25), seed=st.integers(0, 99))
def test_random_programs_keep_meaning_and_comments(
    index: int, picks: list[int], seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    case = generated_case(index)
    try:
        text = case.files[MAIN].decode("utf-8")
        parse(text)
    except (UnicodeDecodeError, ResdslError):
        return  # a program the generator broke on purpose: nothing to format (see test_unparsable_file...)
    text, added = with_comments(text, picks, random.Random(seed))
    out = format_text(text)
    assert format_text(out) == out, "not idempotent"
    assert comments(out) == comments(text) and len(comments(out)) >= added
    other = {k: v.decode("utf-8", "replace") for k, v in case.files.items() if k != MAIN}
    assert_same_meaning(text, out, tmp_path_factory.mktemp("case"), other)


def _meta_ranges(text: str) -> list[tuple[int, int]]:
    tree, _ = _tree_and_comments(text)
    return [(t.meta.start_pos, t.meta.end_pos) for t in tree.iter_subtrees() if t.data == "meta_stmt"]


def _wordy(ch: str) -> bool:
    return ch.isalnum() or ch in '_".'


def shuffled_layout(text: str, rng: random.Random) -> str:
    """The same tokens with other spacing: spaces, tabs, none where punctuation allows, line breaks
    inside brackets (never after a comma, where a break is the author's choice, nor in a one-line meta)."""
    toks, metas = tokens(text), _meta_ranges(text)
    out, prev = [text[: toks[0].start_pos]], toks[0]
    out.append(str(prev))
    depth = 1 if str(prev) in "([" else 0
    for tok in toks[1:]:
        gap = text[prev.end_pos : tok.start_pos]
        if "\n" in gap or "#" in gap:
            new = gap.rstrip(" \t") + rng.choice(["", " ", "\t", "        "])
        else:
            punct = not (str(prev)[-1].isalnum() or str(prev)[-1] in '_".') or not (
                str(tok)[0].isalnum() or str(tok)[0] in '_".'
            )
            choices = [" ", "  ", "\t", *([""] * punct)]
            in_meta = any(a <= (tok.start_pos or 0) < b for a, b in metas)
            if depth and prev.type != "COMMA" and not in_meta:
                choices.append("\n   ")
            new = rng.choice(choices)
        out += [new, str(tok)]
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(str(tok), 0)
        prev = tok
    out.append(text[prev.end_pos :])
    return "".join(out)


@FAST
@given(which=st.integers(0, len(SHIPPED) - 1), seed=st.integers(0, 10**6))
def test_any_layout_of_a_shipped_spec_formats_back_to_it(which: int, seed: int) -> None:
    text = SHIPPED[which].read_text()
    messy = shuffled_layout(text, random.Random(seed))
    assert _strip_spans(parse(messy)) == _strip_spans(parse(text))
    assert format_text(messy) == text


def test_check_diff_and_write(tmp_path: Path) -> None:
    good, messy = tmp_path / "good.arch", tmp_path / "sub" / "messy.arch"
    messy.parent.mkdir()
    good.write_text("network n = m(a=1)\n")
    messy.write_text("network n = m( a = 1 )\n")
    messy.chmod(0o640)
    runner = CliRunner()
    checked = runner.invoke(cli, ["fmt", "--check", str(tmp_path)])
    assert checked.exit_code == 1 and f"would reformat {messy}" in checked.output and str(good) not in checked.output
    diff = runner.invoke(cli, ["fmt", "--diff", str(messy)])
    assert diff.exit_code == 0 and "-network n = m( a = 1 )\n+network n = m(a=1)\n" in diff.output
    assert messy.read_text() == "network n = m( a = 1 )\n"  # --check and --diff write nothing
    written = runner.invoke(cli, ["fmt", str(tmp_path)])
    assert written.exit_code == 0 and messy.read_text() == "network n = m(a=1)\n"
    assert messy.stat().st_mode & 0o777 == 0o640 and sorted(p.name for p in messy.parent.iterdir()) == ["messy.arch"]
    assert runner.invoke(cli, ["fmt", "--check", str(tmp_path)]).exit_code == 0


def test_a_windows_file_keeps_its_line_endings(tmp_path: Path) -> None:
    """CRLF in, CRLF out: formatting changes the layout, not the file's line endings, and a
    canonical CRLF file is not reported as one to reformat."""
    spec = tmp_path / "win.arch"
    spec.write_bytes(b"# a comment\r\nnetwork n = m( a = 1 )\r\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["fmt", str(spec)]).exit_code == 0
    assert spec.read_bytes() == b"# a comment\r\nnetwork n = m(a=1)\r\n"
    assert runner.invoke(cli, ["fmt", "--check", str(spec)]).exit_code == 0
    assert format_text("network n = m( a = 1 )\n") == "network n = m(a=1)\n"  # LF stays LF


def test_a_byte_order_mark_and_each_line_ending_stay(tmp_path: Path) -> None:
    """fmt changes the layout only: a UTF-8 byte-order mark stays, every line it leaves as it was
    keeps its bytes (LF or CRLF in a mixed file), a changed line keeps its own ending, and lines
    it adds take the file's usual one."""
    bom = "\ufeff".encode()
    runner = CliRunner()
    spec = tmp_path / "bom.arch"
    spec.write_bytes(bom + b"# a comment\r\nnetwork n = m( a = 1 )\r\n")
    assert runner.invoke(cli, ["fmt", str(spec)]).exit_code == 0
    assert spec.read_bytes() == bom + b"# a comment\r\nnetwork n = m(a=1)\r\n"
    assert runner.invoke(cli, ["fmt", "--check", str(spec)]).exit_code == 0
    mixed = tmp_path / "mixed.arch"
    mixed.write_bytes(bom + b"# lf\nnetwork n = m( a = 1 )\r\n# crlf\r\n# lf again\nnetwork k = m( )\n")
    assert runner.invoke(cli, ["fmt", str(mixed)]).exit_code == 0
    assert mixed.read_bytes() == bom + b"# lf\nnetwork n = m(a=1)\r\n# crlf\r\n# lf again\nnetwork k = m()\n"
    assert runner.invoke(cli, ["fmt", "--check", str(mixed)]).exit_code == 0  # canonical: no ending is "fixed"
    grown = tmp_path / "grown.arch"  # one line becomes five, each with the file's CRLF
    grown.write_bytes(bom + b"block b(c) { conv1 = conv(c, k=1)  bn1 = batchnorm() }\r\n")
    assert runner.invoke(cli, ["fmt", str(grown)]).exit_code == 0
    written = grown.read_bytes()
    assert written.startswith(bom + b"block b(c) {\r\n") and written.count(b"\r\n") == written.count(b"\n") == 4
    assert written.decode("utf-8-sig").replace("\r\n", "\n") == format_text(
        "block b(c) { conv1 = conv(c, k=1)  bn1 = batchnorm() }\n"
    )
    done = runner.invoke(cli, ["fmt", "-"], input="\ufeffnetwork n = m( a = 1 )\n")
    assert done.exit_code == 0 and done.output == "\ufeffnetwork n = m(a=1)\n"


def test_unparsable_file_gets_its_diagnostic_and_is_left_alone(tmp_path: Path) -> None:
    bad, fine = tmp_path / "bad.arch", tmp_path / "fine.arch"
    bad.write_text("network n( {\n")
    fine.write_text("network n = m( )\n")
    result = CliRunner().invoke(cli, ["fmt", str(bad), str(fine), str(tmp_path / "missing.arch")])
    assert result.exit_code == 1
    assert re.search(r"bad\.arch:1:12: error\[E001\]", result.output)
    assert "error[E004]: cannot read" in result.output and "missing.arch" in result.output
    assert bad.read_text() == "network n( {\n" and fine.read_text() == "network n = m()\n"


def test_output_keeps_every_token() -> None:
    """The printer only re-spaces: the tokens out are the tokens in, less trailing commas."""
    text = "block b(c,) {\n  x = conv(c, k=[1, 2,],)\n}\nnetwork n() { input 3x8x 8 }\n"
    toks = [str(t) for t in tokens(text)]
    expected = [t for i, t in enumerate(toks) if not (t == "," and toks[i + 1] in ")]")]
    expected[expected.index("3x8x 8")] = "3 x 8 x 8"
    assert [str(t) for t in tokens(format_text(text))] == expected
    for spec in SHIPPED:
        text = spec.read_text()
        assert [str(t) for t in tokens(format_text(shuffled_layout(text, random.Random(0))))] == [
            str(t) for t in tokens(text)
        ]


def test_a_symbolic_link_stays_a_link(tmp_path: Path) -> None:
    real, link = tmp_path / "real.arch", tmp_path / "link.arch"
    real.write_text("network n = m( )\n")
    link.symlink_to(real)
    assert CliRunner().invoke(cli, ["fmt", str(link)]).exit_code == 0
    assert link.is_symlink() and real.read_text() == "network n = m()\n"


def test_standard_input_to_standard_output() -> None:
    runner = CliRunner()
    done = runner.invoke(cli, ["fmt", "-"], input="network n = m( a = 1 )  # x\n")
    assert done.exit_code == 0 and done.output == "network n = m(a=1)  # x\n"
    broken = runner.invoke(cli, ["fmt", "-"], input="network n( {\n")
    assert broken.exit_code == 1 and "<stdin>:1:12: error[E001]" in broken.output and "network n(" in broken.output


def test_a_read_only_file_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "ro.arch"
    spec.write_text("network n = m( )\n")
    spec.chmod(0o444)
    if os.access(spec, os.W_OK):  # root may write anything: let the check see the file as others do
        monkeypatch.setattr("resdsl.tools.fmt_files.os.access", lambda path, mode: False)
    result = CliRunner().invoke(cli, ["fmt", str(spec)])
    assert result.exit_code == 1 and "error[E502]: cannot write" in result.output
    assert spec.read_text() == "network n = m( )\n" and os.listdir(tmp_path) == ["ro.arch"]


def test_deep_nesting_formats_or_gets_a_diagnostic(tmp_path: Path) -> None:
    """The deepest expression the parser accepts formats; brackets around brackets past any use are
    refused with E602 (the file is left alone), never a RecursionError."""
    deepest = "network n() {\n    input 3 x 8 x 8\n    a = conv(" + "-" * 97 + "8)\n}\n"
    assert format_text(deepest) == deepest
    parens = "network n() {\n    input 3 x 8 x 8\n    a = conv(" + "(" * 1000 + "8" + ")" * 1000 + ")\n}\n"
    spec = tmp_path / "deep.arch"
    spec.write_text(parens)
    result = CliRunner().invoke(cli, ["fmt", str(spec)])
    assert result.exit_code == 1 and "error[E602]" in result.output and spec.read_text() == parens
