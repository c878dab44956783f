"""Robustness: random byte mutations of shipped specs yield diagnostics, never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.diagnostics import CODES
from tests.conftest import SPECS

SOURCES = [p.read_bytes() for p in sorted(SPECS.glob("*.arch")) + sorted((SPECS / "std").glob("*.arch"))]
_DIR = Path(tempfile.mkdtemp(prefix="resdsl-fuzz-"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(
                st.binary(min_size=1, max_size=4) | st.sampled_from([b"(", b")", b"{", b"}", b"=", b"/", b"0"])
            )
        elif kind == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif data:
            end = min(len(data), pos + draw(st.integers(1, 20)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_only_ever_give_diagnostics(data: bytes) -> None:
    path = _DIR / "mutant.arch"
    path.write_bytes(data)
    result = resdsl.check(path)  # must not raise
    for d in result.diagnostics:
        assert d.code in CODES and d.span.file
        if d.span.file.endswith("mutant.arch") and d.span.line:
            assert d.span.line >= 1 and d.span.column >= 1
