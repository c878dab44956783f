"""Diagnostics: the compiler-style text, the JSON form, and the documented code list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resdsl.diagnostics import CODES, ResdslError, SourceCache, error, format_diagnostic, to_json
from resdsl.syntax.ast import Span
from tests.conftest import ROOT

SOURCE = "network n() {\n    input 3 x 8 x 8\n    residual(identity)\n}\n"


def test_text_format_matches_the_design() -> None:
    d = error(
        "E301",
        "residual addition in layer2.0: shapes differ",
        Span("bad.arch", 3, 5, 3, 23),
        notes=["main branch  512 x 28 x 28   (conv3 at bad.arch:9:5)", "shortcut     256 x 56 x 56   (identity)"],
        help="use shortcut=projection",
    )
    text = format_diagnostic(d, SourceCache({"bad.arch": SOURCE}))
    assert text.splitlines() == [
        "bad.arch:3:5: error[E301]: residual addition in layer2.0: shapes differ",
        "  main branch  512 x 28 x 28   (conv3 at bad.arch:9:5)",
        "  shortcut     256 x 56 x 56   (identity)",
        "   3 |     residual(identity)",
        "     |     ^~~~~~~~~~~~~~~~~~",
        "  help: use shortcut=projection",
    ]


def test_json_has_the_contract_keys() -> None:
    d = error("E201", "unknown name 'x'", Span("f.arch", 1, 2, 1, 3), help="did you mean 'y'?")
    (obj,) = json.loads(to_json([d]))
    assert obj == {
        "file": "f.arch",
        "line": 1,
        "column": 2,
        "end_line": 1,
        "end_column": 3,
        "severity": "error",
        "code": "E201",
        "message": "unknown name 'x'",
        "notes": ["help: did you mean 'y'?"],
    }


def test_every_code_is_documented_and_every_documented_code_exists() -> None:
    doc = (ROOT / "docs" / "errors.md").read_text()
    documented = set(re.findall(r"^\| ([EW]\d{3}) \|", doc, flags=re.M))
    assert documented == set(CODES)


def test_error_carries_span_and_code() -> None:
    exc = ResdslError(error("E004", "cannot read x", Span("x.arch", 0, 0, 0, 0)))
    assert exc.code == "E004" and exc.span.file == "x.arch" and "x.arch: error[E004]" in str(exc)


def test_excerpt_is_skipped_when_the_file_is_gone(tmp_path: Path) -> None:
    d = error("E201", "unknown name", Span(str(tmp_path / "gone.arch"), 4, 1, 4, 2))
    assert format_diagnostic(d).count("\n") == 0


def test_every_op_is_documented_with_its_parameters() -> None:
    from resdsl.ops import OPS

    doc = (ROOT / "docs" / "language.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", doc, flags=re.M))
    for name, op in OPS.items():
        assert name in rows, f"op {name} is missing from docs/language.md"
        for p in op.params:
            assert f"`{p.name}`" in rows[name], f"{name}.{p.name} is not documented"


def _doc_examples() -> list[tuple[str, str]]:
    doc = (ROOT / "docs" / "errors.md").read_text()
    return re.findall(r"^### ([EW]\d{3})\n\n```arch\n(.*?)```", doc, flags=re.M | re.S)


def test_docs_have_an_example_for_every_limit_and_new_code() -> None:
    documented = {code for code, _ in _doc_examples()}
    assert {"E005", "W404", "E505", "E601", "E602", "E603", "E604", "E605"} <= documented


@pytest.mark.parametrize(("code", "text"), _doc_examples(), ids=[c for c, _ in _doc_examples()])
def test_doc_example_gives_its_code(code: str, text: str, tmp_path: Path) -> None:
    import resdsl

    spec = tmp_path / "example.arch"
    spec.write_text(text)
    result = resdsl.check(spec)
    assert code in {d.code for d in result.diagnostics}, [str(d) for d in result.diagnostics]


def test_repeats_of_one_error_are_folded_for_the_terminal_per_network() -> None:
    from resdsl.diagnostics import NETWORK_CONTEXT, Related, group_repeats

    def e302(path: str, network: str) -> object:
        context = Related(Span("n.arch", 1, 9, 1, 10), f"{NETWORK_CONTEXT} '{network}' (n.arch:1:9)")
        return error("E302", f"{path}.bn1: groupnorm: 64 channels", Span("lib.arch", 3, 5, 3, 9), related=[context])

    found = [e302("layer1.0", "a"), e302("layer1.1", "a"), e302("layer2.0", "a"), e302("layer1.0", "b")]
    assert group_repeats(found) == found  # the API keeps every error
    folded = group_repeats(found, errors=True)
    assert len(folded) == 2 and folded[1] == found[3]  # never across two networks
    assert folded[0].notes == ("3 times: layer1.0.bn1, layer1.1.bn1, layer2.0.bn1",)
    merge = error("E301", "residual addition in layer2.0: shapes differ", Span("lib.arch", 9, 5, 9, 9))
    again = error("E301", "residual addition in layer3.0: shapes differ", Span("lib.arch", 9, 5, 9, 9))
    assert group_repeats([merge, again], errors=True)[0].notes == ("2 times: layer2.0, layer3.0",)


@pytest.mark.parametrize(
    ("data", "line", "column", "byte"),
    [
        (b"\xff\xfe bad", 1, 1, 0xFF),
        (b"network n() {\n  # caf\xe9\n}\n", 2, 8, 0xE9),
        (b"\xef\xbb\xbfnetwork n() { # \xe2\x82\xac\xff\n}", 1, 18, 0xFF),  # after a BOM and a 3-byte character
        (b"a\r\nb\rc \x80", 3, 3, 0x80),  # lines end as the parser reads them: CRLF, and a lone CR
    ],
)
def test_text_that_is_not_utf8_is_reported_at_its_first_bad_byte(
    data: bytes, line: int, column: int, byte: int, tmp_path: Path
) -> None:
    """Regression: a file that is not UTF-8 was reported only as "UnicodeDecodeError"."""
    import resdsl

    spec = tmp_path / "bad.arch"
    spec.write_bytes(data)
    (d,) = resdsl.check(spec).diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E004", line, column)
    assert d.message.endswith(f"byte 0x{byte:02x} at line {line}, column {column} is not UTF-8")
    assert "save the file as UTF-8" in (d.help or "")
    excerpt = format_diagnostic(d).splitlines()
    assert excerpt[-2].index("^") - excerpt[-2].index("|") - 2 == column - 1  # the caret under the byte


def test_a_spec_read_from_disk_has_python_line_endings(tmp_path: Path) -> None:
    from resdsl.diagnostics.files import read_text

    spec = tmp_path / "crlf.arch"
    spec.write_bytes(b"a\r\nb\rc\n")
    assert read_text(spec) == "a\nb\nc\n" and read_text(spec, newlines=False) == "a\r\nb\rc\n"
