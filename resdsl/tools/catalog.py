"""The networks of spec files, aliases included, with their depth, size and cost (what ``resdsl
list`` prints): by default every network the shipped files (``specs/*.arch``) define, or those of
the files named. Nothing is cached: each file is checked afresh, which is what keeps the figures
true to the files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdsl.api import CheckResult, check
from resdsl.diagnostics import Diagnostic
from resdsl.diagnostics.fixes import in_library
from resdsl.resources import data_root, shipped_specs


@dataclass(frozen=True)
class Entry:
    """One network of a file."""

    name: str
    base: str  # the network definition it instantiates (itself unless an alias)
    weighted_layers: int
    params: int
    macs: int
    input: tuple[int, ...]
    output: tuple[int, ...] | None
    file: str  # the defining file: relative to the shipped data (specs/resnet50.arch), else as named
    path: str  # the same, absolute

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "weighted_layers": self.weighted_layers,
            "params": self.params,
            "macs": self.macs,
            "gmacs": round(self.macs / 1e9, 3),
            "input": list(self.input),
            "output": None if self.output is None else list(self.output),
            "file": self.file,
            "path": self.path,
        }


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(data_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def _entries(result: CheckResult, shown: str) -> list[Entry]:
    path = Path(result.file)
    return [
        Entry(
            net.name,
            net.definition.name if net.definition is not None else net.name,
            net.weighted_layers,
            net.num_params,
            net.macs,
            tuple(net.input_shape),
            net.output_shape,
            shown,
            str(path.resolve()),
        )
        for net in result.networks
    ]


def _collect(specs: Iterable[str | Path]) -> tuple[list[Entry], list[CheckResult]]:
    """Check each spec: its entries (``file``: a shipped file relative to the shipped data, another
    as ``check`` names it), and the results with errors."""
    entries: list[Entry] = []
    failed: list[CheckResult] = []
    for spec in specs:
        result = check(spec)
        if not result.ok:
            failed.append(result)
        else:
            entries += _entries(result, _display(Path(result.file)) if in_library(result.file) else result.file)
    return entries, failed


def catalog() -> tuple[list[Entry], list[CheckResult]]:
    """Every shipped network in file order, and the check results that found problems."""
    return _collect(shipped_specs())


def file_catalog(specs: Iterable[str]) -> tuple[list[Entry], list[CheckResult], list[str]]:
    """The networks of the files (or shipped names) given, in order; the check results that found
    problems (a missing or broken file: its diagnostics); and the files that define no network."""
    entries: list[Entry] = []
    failed: list[CheckResult] = []
    empty: list[str] = []
    for spec in specs:
        found, bad = _collect([spec])
        entries += found
        failed += bad
        if not found and not bad:
            empty.append(spec)
    return entries, failed, empty


def diagnostics(failed: list[CheckResult]) -> list[Diagnostic]:
    return [d for result in failed for d in result.diagnostics]


def catalog_text(entries: list[Entry]) -> str:
    """An aligned plain-text table, one network a line."""
    header = ["network", "depth", "params", "GMACs", "input", "base", "file"]
    right = {"depth", "params", "GMACs"}
    cells = [header] + [
        [
            e.name,
            str(e.weighted_layers),
            f"{e.params:,}",
            f"{e.macs / 1e9:.3f}",
            " x ".join(map(str, e.input)),
            e.base,
            e.file,
        ]
        for e in entries
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            v.rjust(w) if h in right else v.ljust(w) for v, w, h in zip(row, widths, header, strict=True)
        ).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
