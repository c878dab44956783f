"""``# ignore: CODE`` comments (resdsl/diagnostics/ignores.py): a warning silenced at its own line,
and nothing else."""

from __future__ import annotations

from pathlib import Path

import resdsl
from resdsl.diagnostics.ignores import comment_of, ignored_codes

BIASED = """network n() {{
    input 3 x 32 x 32
    conv1 = conv(16, k=3, p=1, bias=true){a}
    bn1   = batchnorm(){b}
    pool  = global_avgpool()
    bn2   = batchnorm(){c}
}}
"""


def _codes(tmp_path: Path, a: str = "", b: str = "", c: str = "") -> list[str]:
    path = tmp_path / "biased.arch"
    path.write_text(BIASED.format(a=a, b=b, c=c))
    return sorted(d.code for d in resdsl.check(path).diagnostics)


def test_the_comment_is_what_follows_a_hash_outside_strings() -> None:
    assert comment_of("    x = conv(8)  # ignore: W401") == "# ignore: W401"
    assert comment_of('import "a#b.arch"  # ignore: W401') == "# ignore: W401"
    assert comment_of('import "a#b.arch"') is None
    assert ignored_codes("    bn = batchnorm()  # ignore: W401, W403 (timm's)") == {"W401", "W403"}
    assert ignored_codes("    bn = batchnorm()  # see W401") == frozenset()
    assert ignored_codes('    s = "# ignore: W401"') == frozenset()  # a string, not a comment


def test_a_warning_is_silenced_at_its_own_line_only(tmp_path: Path) -> None:
    assert _codes(tmp_path) == ["W401", "W403"]
    assert _codes(tmp_path, a="  # ignore: W401") == ["W403"]
    assert _codes(tmp_path, a="  # ignore: W403") == ["W401", "W403"]  # another code: kept
    assert _codes(tmp_path, b="  # ignore: W401") == ["W401", "W403"]  # another line: kept
    assert _codes(tmp_path, a="  # ignore: W401", c="  # ignore: W403") == []


def test_errors_are_never_silenced(tmp_path: Path) -> None:
    path = tmp_path / "bad.arch"
    path.write_text("network n() {\n    input 3 x 32 x 32\n    c = conv(64, k=3, groups=3)  # ignore: E302\n}\n")
    assert [d.code for d in resdsl.check(path).diagnostics] == ["E302"]


def test_the_shipped_resnest_silences_the_two_lints_its_timm_layout_trips() -> None:
    from resdsl.resources import library_dir

    assert resdsl.check("resnest14d").diagnostics == []
    family = library_dir() / "std" / "resnest.arch"
    text = family.read_text()
    assert "# ignore: W401" in text and "# ignore: W403" in text
    bare = text.replace("# ignore: W401", "").replace("# ignore: W403", "")
    found = resdsl.check("resnest14d", sources={family: bare}).diagnostics
    assert sorted(d.code for d in found) == ["W401", "W403"]  # what the comments silence
