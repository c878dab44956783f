"""The Pygments lexer for .arch: registered under the name "arch", no error token on valid text.

"Valid" covers every shipped spec and the parts of the broken corpus (tests/broken/,
tests/fuzz_regressions/) that the language's lexer accepts: a file may be wrong in grammar or
meaning and still consist of valid tokens. Only characters the language does not use (what
`resdsl check` reports as E002) may become error tokens, and each E002 must be one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments import lex
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Keyword, Name, Number, Operator, _TokenType

from resdsl.diagnostics import ResdslError
from resdsl.syntax.parser import parse
from resdsl.tools.pygments_lexer import CONSTANTS, FORMS, KEYWORDS, OPS, SHORTCUTS, ArchLexer
from tests.conftest import ROOT, SPECS, TESTS

SHIPPED = sorted(SPECS.glob("*.arch")) + sorted((SPECS / "std").glob("*.arch")) + sorted(ROOT.glob("examples/*.arch"))
CORPUS = sorted((TESTS / "broken").glob("*.arch")) + sorted((TESTS / "fuzz_regressions").glob("*.arch"))


def errors(text: str) -> list[tuple[int, int]]:
    """(line, column) of every error token."""
    found, offset = [], 0
    for kind, value in lex(text, ArchLexer()):
        if kind in Error:
            line = text.count("\n", 0, offset) + 1
            found.append((line, offset - (text.rfind("\n", 0, offset) + 1) + 1))
        offset += len(value)
    return found


@pytest.mark.parametrize("spec", SHIPPED, ids=[p.name for p in SHIPPED])
def test_no_error_token_in_a_shipped_spec(spec: Path) -> None:
    assert errors(spec.read_text()) == []


@pytest.mark.parametrize("spec", CORPUS, ids=[p.name for p in CORPUS])
def test_only_characters_the_language_does_not_use_are_errors(spec: Path) -> None:
    text = spec.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    try:
        parse(text, spec.name)
        bad: set[tuple[int, int]] = set()
    except ResdslError as exc:
        bad = {(d.span.line, d.span.column) for d in exc.diagnostics if d.code == "E002"}
    found = errors(text)
    assert bad <= set(found)
    lines = text.split("\n")
    for line, column in found:  # nothing that could start a token of the language
        assert re.match(r'[\sA-Za-z_0-9#"(){}\[\],=+\-*/%<>!.]', lines[line - 1][column - 1]) is None or bad


def test_tokens_of_a_spec() -> None:
    text = 'network n(w = 2) {\n    input 3 x 8 x 8\n    c = conv(w, k=3)  # hi\n    relu\n    s = "a\\"b"\n}\n'
    kinds = [(k, v) for k, v in lex(text, ArchLexer()) if v.strip()]
    assert kinds[:3] == [(Keyword.Declaration, "network"), (Name.Function, "n"), (_tok("Punctuation"), "(")]
    assert (
        (Number.Integer, "3 x 8 x 8") in kinds and (Name.Builtin, "conv") in kinds and (Name.Builtin, "relu") in kinds
    )
    assert (Name.Variable, "c") in kinds and (_tok("Comment.Single"), "# hi") in kinds
    assert errors("a = conv(8) @ 'x'\n") == [(1, 13), (1, 15), (1, 17)]
    numbers = [(k, v) for k, v in lex("w = [make_divisible(c ** 2) for c in ws if not c]\n", ArchLexer()) if v.strip()]
    assert (Name.Builtin, "make_divisible") in numbers and (Operator, "**") in numbers
    assert (Keyword, "for") in numbers and (Keyword, "in") in numbers and (Keyword, "not") in numbers
    assert (Name, "len") in [(k, v) for k, v in lex("len = 3\nx = len\n", ArchLexer())]  # a value named len


def test_input_sizes_that_are_expressions() -> None:
    """``input 3 x s x s``: the separators are operators, the sizes names, the next line as ever."""
    kinds = [(k, v) for k, v in lex("input 3 x s * 2 x s\nx = conv(8)\n", ArchLexer()) if v.strip()]
    assert kinds == [
        (Keyword, "input"),
        (Number.Integer, "3"),
        (Operator, "x"),
        (Name, "s"),
        (Operator, "*"),
        (Number.Integer, "2"),
        (Operator, "x"),
        (Name, "s"),
        (Name.Variable, "x"),
        (Operator, "="),
        (Name.Builtin, "conv"),
        (_tok("Punctuation"), "("),
        (Number.Integer, "8"),
        (_tok("Punctuation"), ")"),
    ]


def _tok(name: str) -> _TokenType:
    import pygments.token

    kind = pygments.token.Token
    for part in name.split("."):
        kind = getattr(kind, part)
    return kind


def test_word_lists_follow_the_language() -> None:
    from resdsl.ops import OPS as OP_TABLE
    from resdsl.ops.shortcut import SHORTCUT_KINDS
    from resdsl.syntax.ast import BUILTIN_FORMS
    from resdsl.syntax.parser import RESERVED_WORDS

    assert set(OPS) == set(OP_TABLE) and set(OPS) | set(FORMS) >= set(BUILTIN_FORMS)
    assert set(SHORTCUTS) == set(SHORTCUT_KINDS) and set(KEYWORDS) | set(CONSTANTS) == RESERVED_WORDS


def test_registered_through_the_entry_point(tmp_path: Path) -> None:
    """Pygments finds the lexer by name through the entry point that pyproject.toml declares.

    The installed resdsl may predate the entry point (an editable install made earlier), so the
    declaration is also installed on its own: a distribution's metadata with only that entry point,
    on the path of a fresh interpreter, which then asks Pygments for the lexer named "arch"."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'^\[project\.entry-points\."pygments\.lexers"\]\narch = "([^"]+)"$', pyproject, re.M)
    assert declared, "pyproject.toml registers no pygments lexer"
    dist = tmp_path / "resdsl_lexer_probe-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: resdsl-lexer-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[pygments.lexers]\narch = {declared.group(1)}\n")
    probe = (
        "from pygments.lexers import get_lexer_by_name, get_lexer_for_filename\n"
        "print(type(get_lexer_by_name('arch')).__module__, get_lexer_for_filename('x.arch').name)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=1) == ["resdsl.tools.pygments_lexer", f"{ArchLexer.name}\n"]
    installed = [e for e in entry_points(group="pygments.lexers") if e.name == "arch"]
    if installed:  # resdsl installed from this pyproject: the same in this process
        assert get_lexer_by_name("arch").name == get_lexer_for_filename("resnet50.arch").name == ArchLexer.name
