"""Choosing and applying the fixes of many diagnostics at once: what ``check --fix`` writes.

Separate from :mod:`resdsl.diagnostics.fixes` (which diagnostics carry) so the two import in one
direction only: a diagnostic holds fixes, and a plan reads diagnostics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from resdsl.diagnostics import Diagnostic
from resdsl.diagnostics.fixes import Edit, Fix, apply_edits, in_library


@dataclass
class FixPlan:
    """What ``check --fix`` would do: new text per file and the fixes chosen."""

    texts: dict[str, str] = field(default_factory=dict)  # file -> fixed text (changed files only)
    applied: list[tuple[Diagnostic, Fix]] = field(default_factory=list)
    skipped: list[tuple[Diagnostic, str]] = field(default_factory=list)  # (diagnostic, why)


def plan_fixes(diagnostics: Iterable[Diagnostic], sources: dict[str, str]) -> FixPlan:
    """Choose the first safe fix of each diagnostic and apply them to ``sources``.

    Fixes editing the shipped library, or clashing with a fix already chosen, are skipped
    (a second run picks the latter up once the first is in). The same fix reported by two
    diagnostics (a library block instantiated twice) is made once.
    """
    plan = FixPlan()
    chosen: dict[str, list[Edit]] = {}
    seen: set[tuple[Edit, ...]] = set()
    for d in diagnostics:
        fix = next((f for f in d.fixes if f.safe), None)
        if fix is None:
            continue
        if fix.edits in seen:
            continue
        if any(in_library(f) or f not in sources for f in fix.files):
            plan.skipped.append((d, "it would edit a file outside the spec (the shipped library)"))
            continue
        trial = {f: [*chosen.get(f, []), *(e for e in fix.edits if e.span.file == f)] for f in fix.files}
        try:
            for f, edits in trial.items():
                apply_edits(sources[f], edits)
        except ValueError:
            plan.skipped.append((d, "it overlaps another fix; run again"))
            continue
        chosen.update(trial)
        seen.add(fix.edits)
        plan.applied.append((d, fix))
    for f, edits in chosen.items():
        new = apply_edits(sources[f], edits)
        if new != sources[f]:
            plan.texts[f] = new
    return plan
