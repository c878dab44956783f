"""Diagnostics that name the override behind them (``--set KEY=VALUE``, ``build_model(KEY=...)``).

An override's value is parsed with :func:`~resdsl.diagnostics.span.override_file` as its file, so
a layer made from it (``--set norm=groupnorm(7)``) keeps that as the place of its arguments: the
checker then notes :func:`comes_from`. :func:`name_overrides` completes those notes with the value
as given, and notes on every other error in the shipped library which overrides it was checked
with: the user's mistake is more likely in them than in the library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from resdsl.diagnostics import Diagnostic
from resdsl.diagnostics.fixes import in_library
from resdsl.diagnostics.span import is_override, override_file


def comes_from(argument: str, value: Any, file: str) -> str:
    """The note on a layer argument written in an override: ``groups=7 comes from --set norm``."""
    return f"{argument}={value} comes from {file}"


def name_overrides(diagnostics: list[Diagnostic], overrides: Mapping[str, Any]) -> list[Diagnostic]:
    """``diagnostics`` with the overrides named: ``... comes from --set norm=groupnorm(7)``, and
    ``checked with --set shortcut=identity`` on an error in the shipped library that no
    argument traces to one."""
    if not overrides:
        return diagnostics
    written = {
        override_file(k): f"{override_file(k)}={v if isinstance(v, str) else repr(v)}" for k, v in overrides.items()
    }
    out = []
    for d in diagnostics:
        notes = [_with_value(note, written) for note in d.notes]
        traced = notes != list(d.notes)
        if d.is_error and not traced and not is_override(d.span.file) and in_library(d.span.file):
            notes.append(f"checked with {', '.join(written.values())}")
        out.append(dataclasses.replace(d, notes=tuple(notes)) if notes != list(d.notes) else d)
    return out


def _with_value(note: str, written: Mapping[str, str]) -> str:
    for file, full in written.items():
        if note.endswith(f" comes from {file}"):
            return note.removesuffix(file) + full
    return note
