"""The corpus of deliberately broken specs: each gives the right code at the right place.

Every file under tests/broken/ ends with ``# expect: CODE [FILE:]LINE:COL`` lines; the JSON
output of ``resdsl check`` must report exactly those, and its text output each of them (repeats of
one error folded into one).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from resdsl.tools.cli import cli
from tests.conftest import TESTS

BROKEN = sorted(p for p in (TESTS / "broken").glob("*.arch") if p.name != "cycle_b.arch")
EXPECT = re.compile(r"^# expect: ([EW]\d{3}) (?:(\S+\.arch):)?(\d+):(\d+)$", re.M)
HEADER = re.compile(r"^(\S+\.arch):(\d+):(\d+): (error|warning)\[([EW]\d{3})\]: ", re.M)


def expected(path: Path) -> list[tuple[str, str, int, int]]:
    out = []
    for code, file, line, col in EXPECT.findall(path.read_text()):
        out.append((code, file or path.name, int(line), int(col)))
    return sorted(out)


def test_corpus_is_large_enough() -> None:
    codes = {e[0] for p in BROKEN for e in expected(p)}
    assert len(BROKEN) >= 30
    assert sum(1 for p in BROKEN if any(e[0] == "E301" for e in expected(p))) >= 5
    assert len(codes) >= 28


def _normalise(file: str, path: Path) -> str:
    # library files are reported where they live (source tree or installed package)
    return "std/" + file.split("std/", 1)[1] if "std/" in file else Path(file).name


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_text_output(path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    want = expected(path)
    assert result.exit_code == (1 if any(c.startswith("E") for c, *_ in want) else 0), result.output
    got = sorted(
        (code, _normalise(f, path), int(line), int(col)) for f, line, col, _sev, code in HEADER.findall(result.output)
    )
    # repeats of one error in one network are shown once, with a note saying how many times
    assert sorted(set(got)) == sorted(set(want)), result.output
    assert len(got) == len(want) or "times:" in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_json_output(path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "--json", str(path)])
    report = json.loads(result.stdout)
    items = report["diagnostics"]
    got = sorted((d["code"], _normalise(d["file"], path), d["line"], d["column"]) for d in items)
    assert got == expected(path)
    for d in items:
        assert d["severity"] in ("error", "warning") and d["end_line"] >= d["line"] and isinstance(d["notes"], list)
        assert isinstance(d["fixes"], list)
    assert report["errors"] == sum(d["severity"] == "error" for d in items)
    assert report["networks"] == [] or report["errors"] == 0  # a file with errors reports no figures
