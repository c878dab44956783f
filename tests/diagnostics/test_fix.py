"""`resdsl check --fix` and the fixes diagnostics carry (resdsl/diagnostics/fixes.py): the same edits the
language server offers as code actions, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from resdsl.api import check
from resdsl.diagnostics.files import keep_endings
from resdsl.diagnostics.files import replace_file as write_atomic
from resdsl.diagnostics.fixes import Edit, apply_edits
from resdsl.diagnostics.fixplan import plan_fixes
from resdsl.syntax.ast import Span
from resdsl.tools.cli import cli
from tests.conftest import TESTS

# three fixable problems: two E301 (a stage's shortcut= and a block argument) and a W401
FIXABLE = """\
import "std/blocks.arch"

network n(num_classes = 10) {
    input 3 x 32 x 32
    conv1  = conv(16, k=3, p=1, bias=true)
    bn1    = batchnorm()
    relu
    layer1 = stage(basic(16), repeat=2)
    layer2 = stage(basic(32), repeat=2, stride=2, shortcut=identity)
    layer3 = stage(basic(64, shortcut=identity), repeat=2, stride=2)
    avgpool = global_avgpool()
    fc      = linear(num_classes)
}
"""
FIXED = (
    FIXABLE.replace(", bias=true", "")
    .replace("shortcut=identity)", "shortcut=projection)")
    .replace("basic(64, shortcut=identity)", "basic(64, shortcut=projection)")
)

# a user block whose default kind is wrong where it widens: the fix adds an argument
DEFAULTED = """\
block grow(c, stride = 1, shortcut = identity) {
    conv1 = conv(c, k=3, s=stride, p=1)
    bn1   = batchnorm()
    residual(shortcut)
}

block widen(shortcut = identity) {
    conv1 = conv(32, k=1)
    residual(shortcut)
}

network n() {
    input 8 x 16 x 16
    a = grow(8)
    b = grow(16)
    c = widen
}
"""


def run_fix(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["check", "--fix", *args])
    return result.exit_code, result.stdout, result.stderr


def test_fix_rewrites_the_file_and_says_what_changed(tmp_path: Path) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(FIXABLE, encoding="utf-8")
    code, out, err = run_fix(str(spec))
    assert code == 0, err
    assert spec.read_text(encoding="utf-8") == FIXED
    assert f"fixed {spec}:9:60: use shortcut=projection" in err
    assert f"fixed {spec}:10:39: use shortcut=projection" in err
    assert f"fixed {spec}:5:31: drop bias=true" in err
    assert "3 fixes applied" in err
    lines = [line for line in err.splitlines() if line.startswith("fixed ")]  # in file order, 5 before 10
    assert [line.split(":")[1] for line in lines] == ["5", "9", "10"]
    assert "n: 14 weighted layers" in out  # the re-check after the fixes is clean
    assert check(spec).diagnostics == []


def test_fix_is_idempotent(tmp_path: Path) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(FIXABLE, encoding="utf-8")
    run_fix(str(spec))
    before = spec.read_bytes()
    code, _out, err = run_fix(str(spec))
    assert code == 0
    assert spec.read_bytes() == before
    assert "no mechanical fixes to apply" in err and "fixed " not in err


def test_unfixable_errors_are_still_reported(tmp_path: Path) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(FIXABLE.replace("avgpool = global_avgpool()", "avgpool = global_avgpoo()"), encoding="utf-8")
    code, _out, err = run_fix(str(spec))
    assert code == 1
    assert "error[E202]: unknown op or block 'global_avgpoo'" in err
    assert "3 fixes applied" in err
    text = spec.read_text(encoding="utf-8")
    assert "bias=true" not in text and "identity" not in text and "global_avgpoo()" in text


def test_a_defaulted_kind_is_fixed_with_an_argument(tmp_path: Path) -> None:
    spec = tmp_path / "grow.arch"
    spec.write_text(DEFAULTED, encoding="utf-8")
    code, _out, err = run_fix(str(spec))
    text = spec.read_text(encoding="utf-8")
    assert "b = grow(16, shortcut=projection)" in text
    assert "a = grow(8)\n" in text  # no mismatch there, nothing to do
    # `widen` is named without parentheses: no certain place for an argument, so the error stays
    assert code == 1 and "c = widen\n" in text
    assert "error[E301]: residual addition in c: shapes differ" in err


def test_json_output_stays_json_with_fix(tmp_path: Path) -> None:
    import json

    spec = tmp_path / "net.arch"
    spec.write_text(FIXABLE, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--fix", "--json", str(spec)])
    report = json.loads(result.stdout)  # the fix lines went to stderr
    assert report["diagnostics"] == [] and [n["name"] for n in report["networks"]] == ["n"]


def test_the_shipped_library_is_never_edited() -> None:
    from resdsl.diagnostics import error
    from resdsl.diagnostics.fixes import Fix, in_library
    from resdsl.resources import library_dir

    blocks = str(library_dir() / "std" / "blocks.arch")
    assert in_library(blocks) and not in_library("/tmp/x.arch")
    fix = Fix("edit the library", (Edit(Span(blocks, 14, 5, 14, 13), "identity"),))
    d = error("E301", "residual addition: shapes differ", Span(blocks, 14, 5, 14, 23), fixes=[fix])
    plan = plan_fixes([d], {blocks: (library_dir() / "std" / "blocks.arch").read_text(encoding="utf-8")})
    assert plan.texts == {} and plan.applied == [] and len(plan.skipped) == 1
    # a library block instantiated wrongly by a user's spec: the fix edits the user's call
    result = check('import "std/blocks.arch"\nnetwork n() {\n input 8 x 4 x 4\n a = basic(16, shortcut=identity)\n}\n')
    (e301,) = result.errors
    assert e301.span.file.endswith("blocks.arch")
    assert [e.span.file for f in e301.fixes for e in f.edits] == ["<string>", "<string>"]


def test_fix_keeps_line_endings_and_a_byte_order_mark(tmp_path: Path) -> None:
    """A CRLF file stays CRLF, a byte-order mark stays, and in a file that mixes endings every
    line keeps its own: only the fixed lines' text changes, byte for byte."""
    bom = "\ufeff".encode()
    spec = tmp_path / "crlf.arch"
    spec.write_bytes(bom + FIXABLE.replace("\n", "\r\n").encode())
    code, _out, err = run_fix(str(spec))
    assert code == 0 and "3 fixes applied" in err, err
    assert spec.read_bytes() == bom + FIXED.replace("\n", "\r\n").encode()
    endings = ["\r\n" if i % 3 else "\n" for i in range(FIXABLE.count("\n"))]
    mixed = tmp_path / "mixed.arch"

    def ended(text: str) -> bytes:
        return bom + "".join(line + end for line, end in zip(text.splitlines(), endings, strict=True)).encode()

    mixed.write_bytes(ended(FIXABLE))
    code, _out, err = run_fix(str(mixed))
    assert code == 0 and "3 fixes applied" in err, err
    assert mixed.read_bytes() == ended(FIXED)
    assert run_fix(str(mixed))[2].endswith("no mechanical fixes to apply\n")


def test_keep_endings() -> None:
    """The new text's content, with the old text's byte-order mark and line endings where lines
    match; a lone CR is content (a comment may hold one), never a line break to rewrite."""
    assert keep_endings("a\r\nb\nc", "a\nB\nc\n") == "a\r\nB\nc\r\n"  # a new final newline: the usual one
    assert keep_endings("\ufeffa\r\nb\r\n", "a\nx\ny\nb\n") == "\ufeffa\r\nx\r\ny\r\nb\r\n"
    assert keep_endings("a\n", "\ufeffa\r\n") == "a\n"  # the BOM and endings are the old file's
    assert keep_endings("# x\ry\r\n", "# x\ry\nz\n") == "# x\ry\r\nz\r\n"
    assert keep_endings("", "a\nb") == "a\nb" and keep_endings("a\r\n", "") == ""


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(FIXABLE, encoding="utf-8")
    spec.chmod(0o640)

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    code, _out, err = run_fix(str(spec))
    assert code == 1 and "E502" in err and "No space left on device" in err
    assert spec.read_text(encoding="utf-8") == FIXABLE  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.arch"]  # no temporary file left
    monkeypatch.undo()
    write_atomic(spec, "x")
    assert spec.read_text(encoding="utf-8") == "x" and spec.stat().st_mode & 0o777 == 0o640


def test_apply_edits() -> None:
    text = "\ufeffab\ncd\n"
    assert apply_edits(text, [Edit(Span("f", 1, 2, 1, 3), "X"), Edit(Span("f", 2, 1, 2, 1), ">")]) == "\ufeffaX\n>cd\n"
    with pytest.raises(ValueError):
        apply_edits(text, [Edit(Span("f", 1, 1, 1, 3), ""), Edit(Span("f", 1, 2, 1, 3), "y")])


GUESSES = """\
import "std/blcoks.arch"

network g(width = 64) {
    input 3 x 32 x 32
    conv1  = conv(16, kernal=3, p=1)
    bn1    = batchnrm()
    layer1 = stage(basic(16, stride=2), repeat=2)
    half   = width / 3
}
"""


def test_guesses_are_offered_but_never_applied(tmp_path: Path) -> None:
    spec = tmp_path / "guess.arch"
    spec.write_text(GUESSES, encoding="utf-8")
    titles = {(d.code, f.title, f.safe) for d in check(spec).diagnostics for f in d.fixes}
    assert ("E101", 'change to import "std/blocks.arch"', False) in titles
    assert ("E203", "change 'kernal' to 'kernel'", False) in titles
    assert ("E202", "change 'batchnrm' to 'batchnorm'", False) in titles
    assert ("E208", "use // to round down", False) in titles
    code, _out, err = run_fix(str(spec))
    assert code == 1 and "no mechanical fixes to apply" in err
    assert spec.read_text(encoding="utf-8") == GUESSES
    # what an editor gets when a person takes them (W404 shows once the import resolves)
    fixed_import = GUESSES.replace("blcoks", "blocks")
    spec.write_text(fixed_import, encoding="utf-8")
    result = check(spec)
    edits = [e for d in result.diagnostics for e in d.fixes[0].edits if d.fixes]
    assert apply_edits(fixed_import, edits) == (
        fixed_import.replace("kernal", "kernel")
        .replace("batchnrm", "batchnorm")
        .replace("basic(16, stride=2), repeat=2)", "basic(16), repeat=2, stride=2)")
        .replace("width / 3", "width // 3")
    )


def test_a_network_parameter_default_is_fixed_where_it_is_written(tmp_path: Path) -> None:
    text = (
        'import "std/blocks.arch"\n\nnetwork np(shortcut = identity) {\n    input 3 x 32 x 32\n'
        "    conv1  = conv(16, k=3, p=1)\n    layer1 = stage(basic(16, shortcut=shortcut), repeat=2)\n"
        "    layer2 = stage(basic(32, shortcut=shortcut), repeat=2, stride=2)\n}\n"
    )
    spec = tmp_path / "np.arch"
    spec.write_text(text, encoding="utf-8")
    code, _out, err = run_fix(str(spec))
    assert code == 0, err
    assert spec.read_text(encoding="utf-8") == text.replace("shortcut = identity", "shortcut = projection")


def test_an_alias_argument_is_fixed_where_it_is_written(tmp_path: Path) -> None:
    """The addition is in the shipped library (never edited); the kind comes from the user's
    alias, so that is where the fix goes: its argument, or a new one when it passes none."""
    spec = tmp_path / "mine.arch"
    text = 'import "cifar_resnet.arch"\n\nnetwork mine = cifar_resnet(n=1, shortcut=identity)\n'
    spec.write_text(text, encoding="utf-8")
    code, _out, err = run_fix(str(spec))
    assert code == 0, err
    assert spec.read_text(encoding="utf-8") == text.replace("shortcut=identity", "shortcut=projection")
    base = (
        'import "std/blocks.arch"\n\nnetwork base(shortcut = identity) {\n    input 3 x 32 x 32\n'
        "    conv1  = conv(16, k=3, p=1)\n    layer1 = stage(basic(32, shortcut=shortcut), stride=2)\n}\n"
    )
    (tmp_path / "base.arch").write_text(base, encoding="utf-8")
    user = tmp_path / "user.arch"
    user.write_text('import "base.arch"\n\nnetwork user = base()\n', encoding="utf-8")
    code, _out, err = run_fix(str(user))
    assert code == 0, err
    assert user.read_text(encoding="utf-8") == 'import "base.arch"\n\nnetwork user = base(shortcut=projection)\n'
    spec.write_text(text, encoding="utf-8")
    code, _out, err = run_fix(str(spec), "--set", "shortcut=identity")  # the value comes from --set
    assert code == 1 and spec.read_text(encoding="utf-8") == text and "no mechanical fixes to apply" in err


BROKEN = sorted((TESTS / "broken").glob("*.arch"))


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_every_fix_in_the_broken_corpus_does_what_it_says(path: Path, tmp_path: Path) -> None:
    """Each fix, made alone, gives text that parses and removes its diagnostic; a safe one adds
    no new code (a guess may: checking goes further once a name is right). The safe ones made
    by ``check --fix`` together leave none of the codes they fixed."""
    copy = tmp_path / path.name
    text = path.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    before = check(copy)
    codes = {d.code for d in before.diagnostics}
    for d in before.diagnostics:
        for fix in d.fixes:
            fixed = apply_edits(text, [e for e in fix.edits if e.span.file == before.file])
            after = check(copy, sources={copy: fixed})
            new = {x.code for x in after.diagnostics} - codes
            assert not (new and fix.safe), (fix.title, new)
            assert not any(x.code.startswith("E00") for x in after.diagnostics), fix.title
            assert not [x for x in after.diagnostics if (x.code, x.span) == (d.code, d.span) and x.notes == d.notes]
    if any(f.safe for d in before.diagnostics for f in d.fixes):
        code, _out, _err = run_fix(str(copy))
        fixed_codes = {d.code for d in before.diagnostics if any(f.safe for f in d.fixes)}
        assert not fixed_codes & {x.code for x in check(copy).diagnostics}
        assert code == (1 if check(copy).errors else 0)


FORGOT = """\
# mine.arch: a network without its import

# the network
network mine() {
    input 3 x 32 x 32
    conv1  = conv(16, k=3, p=1)
    layer1 = stage(basic(16), repeat=2)
    layer2 = stage(bottleneck(8), stride=2)
}
"""


def test_a_forgotten_library_import_is_named_and_added(tmp_path: Path) -> None:
    """Regression: `stage(basic(64))` without the import said only "unknown op or block 'basic'"."""
    spec = tmp_path / "mine.arch"
    spec.write_text(FORGOT, encoding="utf-8")
    found = [d for d in check(spec).diagnostics if d.code == "E202"]
    assert [d.span.line for d in found] == [7, 8]
    assert (
        found[0].help
        == "'basic' is defined in the shipped library: add import \"std/blocks.arch\" at the top of the file"
    )
    assert [(f.title, f.safe) for f in found[0].fixes] == [('add import "std/blocks.arch"', True)]
    code, out, err = run_fix(str(spec))
    assert code == 0, err
    assert err.count("fixed ") == 1 and "1 fix applied" in err  # one import for both names
    # above the network and its comment, below the file's own header
    assert spec.read_text(encoding="utf-8") == FORGOT.replace(
        "# the network", 'import "std/blocks.arch"\n\n# the network'
    )
    assert "mine: 8 weighted layers" in out  # conv1, 2 x 2 in layer1, 3 in the bottleneck


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('import "other.arch"\nnetwork n() {\n  input 3 x 8 x 8\n  b = basic(4)\n}', 2),  # after the last import
        ("network n() {\n  input 3 x 8 x 8\n  b = basic(4)\n}", 1),  # no final newline
    ],
)
def test_the_import_goes_after_the_imports(tmp_path: Path, text: str, where: int) -> None:
    (tmp_path / "other.arch").write_text("block other(c) {\n  conv1 = conv(c)\n}\n", encoding="utf-8")
    spec = tmp_path / "net.arch"
    spec.write_text(text, encoding="utf-8")
    run_fix(str(spec))
    lines = spec.read_text(encoding="utf-8").split("\n")
    assert lines[where - 1] == 'import "std/blocks.arch"'
    assert check(spec).ok


@pytest.mark.parametrize(
    "text",
    [
        # an import that is not found may be the one meant
        'import "std/blocsk.arch"\nnetwork n() {\n  input 3 x 8 x 8\n  b = basic(4)\n}\n',
        # the library file would bring a second squeeze_excite
        "block squeeze_excite(c) {\n  relu\n}\nnetwork n() {\n  input 3 x 8 x 8\n  b = basic(4)\n}\n",
    ],
)
def test_an_uncertain_import_is_only_offered(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "net.arch"
    spec.write_text(text, encoding="utf-8")
    (e202,) = [d for d in check(spec).diagnostics if d.code == "E202"]
    assert "std/blocks.arch" in (e202.help or "")
    assert [f.safe for f in e202.fixes] == [False]
    run_fix(str(spec))
    assert spec.read_text(encoding="utf-8") == text
