"""The shipped networks: every network that ``specs/*.arch`` defines, aliases included, with
its depth, size and cost (what ``resdsl list`` prints). Nothing is cached: each file is
checked afresh, which is what keeps the figures true to the files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdsl.api import CheckResult, check
from resdsl.diagnostics import Diagnostic
from resdsl.resources import data_root, shipped_specs


@dataclass(frozen=True)
class Entry:
    """One shipped network."""

    name: str
    base: str  # the network definition it instantiates (itself unless an alias)
    weighted_layers: int
    params: int
    macs: int
    input: tuple[int, ...]
    output: tuple[int, ...] | None
    file: str  # the defining file, relative to the shipped data (specs/resnet50.arch)
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


def catalog() -> tuple[list[Entry], list[CheckResult]]:
    """Every shipped network in file order, and the check results that found problems."""
    entries: list[Entry] = []
    failed: list[CheckResult] = []
    for path in shipped_specs():
        result = check(path)
        if not result.ok:
            failed.append(result)
            continue
        for net in result.networks:
            entries.append(
                Entry(
                    net.name,
                    net.definition.name if net.definition is not None else net.name,
                    net.weighted_layers,
                    net.num_params,
                    net.macs,
                    tuple(net.input_shape),
                    net.output_shape,
                    _display(path),
                    str(path.resolve()),
                )
            )
    return entries, failed


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
