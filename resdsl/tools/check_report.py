"""What ``resdsl check`` reports: each network's figures and the diagnostics, as text or as JSON.

The text line and the JSON object of a network are made from one :class:`Figures` value, so the
two always carry the same numbers. The JSON document is a stable format (docs/cli.md, "check
--json"): an object with ``version`` (1), ``networks``, ``diagnostics``, ``errors`` and
``warnings``. Keys are only ever added, in a new version, never renamed or removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resdsl.api import CheckResult
from resdsl.diagnostics import Diagnostic
from resdsl.diagnostics.fixes import Edit, Fix
from resdsl.ir import Network
from resdsl.ir.features import Feature
from resdsl.ops import fmt_shape
from resdsl.semantics.limits import activation_bytes, human_bytes

JSON_VERSION = 1


@dataclass(frozen=True)
class Figures:
    """One checked network's size and cost, as ``check`` prints them."""

    name: str
    file: str  # the spec given to check (the file the text line names in parentheses)
    weighted_layers: int
    parameters: int
    macs: int
    input: tuple[int, ...]
    output: tuple[int, ...] | None
    activation_bytes: int  # one sample's activations in training, float32 (resdsl.semantics.limits)
    features: tuple[Feature, ...] = ()

    @classmethod
    def of(cls, net: Network, result: CheckResult) -> Figures:
        return cls(
            net.name,
            result.file,
            net.weighted_layers,
            net.num_params,
            net.macs,
            tuple(net.input_shape),
            None if net.output_shape is None else tuple(net.output_shape),
            activation_bytes(net),
            tuple(result.features.get(net.name, [])),
        )

    def text(self) -> list[str]:
        """The network's line, then one line per feature output."""
        line = (
            f"{self.name}: {self.weighted_layers} weighted layers, {self.parameters:,} parameters, "
            f"{self.macs / 1e9:.3f} GMACs, output {fmt_shape(self.output)}, "
            f"{human_bytes(self.activation_bytes)} activations per sample  ({self.file})"
        )
        return [line, *(f"  feature {f.describe()}" for f in self.features)]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "weighted_layers": self.weighted_layers,
            "parameters": self.parameters,
            "macs": self.macs,
            "input": list(self.input),
            "output": None if self.output is None else list(self.output),
            "activation_bytes": self.activation_bytes,
            "features": [{"name": f.name, "shape": list(f.shape), "stride": f.stride} for f in self.features],
        }


def figures(results: Sequence[CheckResult]) -> list[Figures]:
    """The networks of every result without errors (a file with errors reports no figures)."""
    return [Figures.of(net, r) for r in results if r.ok for net in r.networks]


def _edit_json(edit: Edit) -> dict[str, Any]:
    s = edit.span
    return {
        "file": s.file,
        "line": s.line,
        "column": s.column,
        "end_line": s.end_line,
        "end_column": s.end_column,
        "text": edit.text,
    }


def _fix_json(fix: Fix) -> dict[str, Any]:
    return {"title": fix.title, "safe": fix.safe, "edits": [_edit_json(e) for e in fix.edits]}


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    """The diagnostic's contract keys (:meth:`Diagnostic.to_json`) and its fixes."""
    return {**d.to_json(), "fixes": [_fix_json(f) for f in d.fixes]}


def report(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The ``check --json`` document (version :data:`JSON_VERSION`)."""
    diagnostics = [d for r in results for d in r.diagnostics]
    errors = sum(d.is_error for d in diagnostics)
    return {
        "version": JSON_VERSION,
        "networks": [f.as_json() for f in figures(results)],
        "diagnostics": [diagnostic_json(d) for d in diagnostics],
        "errors": errors,
        "warnings": len(diagnostics) - errors,
    }


def report_json(results: Sequence[CheckResult]) -> str:
    return json.dumps(report(results), indent=2)
