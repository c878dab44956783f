"""The one source for what every diagnostic code means: ``resdsl explain CODE`` and docs/errors.md.

Each code has an :class:`~resdsl.diagnostics.codes.entry.Entry`: a one-line summary, an explanation,
a spec that gives the code and the same spec fixed. The entries live in one module per range
(:mod:`.syntax`, :mod:`.values`, :mod:`.shapes`, :mod:`.limits`, :mod:`.weights`, :mod:`.export`);
docs/errors.md is generated from
them (``python -m resdsl.diagnostics.codes > docs/errors.md``) and tests/diagnostics/test_explain.py fails when it
is stale, when a code of :data:`resdsl.diagnostics.CODES` has no entry, or when an example does not
give exactly its code (or its fix still gives an error).

To add a code: add it to ``CODES``, add an ``Entry`` to the module of its range (a new range gets a
new module, listed in ``_MODULES``, and a :class:`Section`), regenerate docs/errors.md.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from importlib import import_module

from resdsl.diagnostics.codes.entry import Entry

_MODULES = ("syntax", "values", "shapes", "limits", "weights", "features", "inference", "export", "importing")


@dataclass(frozen=True)
class Section:
    """A part of docs/errors.md: the codes starting with ``prefix``."""

    prefix: str
    title: str
    intro: str = ""
    outro: str = ""


SECTIONS = (
    Section("E0", "Syntax (E0xx)"),
    Section("E1", "Imports and definitions (E1xx)"),
    Section("E2", "Names, calls and values (E2xx)"),
    Section("E3", "Shapes (E3xx)"),
    Section("W4", "Lints (W4xx)", intro="Warnings do not change the exit code; they encode the ResNet paper's advice."),
    Section("E5", "Output files (E5xx)"),
    Section(
        "E6",
        "Limits (E6xx)",
        intro="A spec is a small program, and a few lines can describe a network no machine holds. These limits "
        "are checked before anything is unrolled or allocated; each message names the limit and how to raise "
        "it. `resdsl check` prints the estimated parameters and activation memory of every network it accepts.",
    ),
    Section(
        "E7",
        "Weights, fine-tuning and features (E7xx)",
        intro="Raised by `build_model(..., weights=..., freeze=..., head=...)`, `resdsl.weights` and `resdsl build "
        "--weights` (see [finetune.md](finetune.md)). Errors about a checkpoint are `resdsl.weights.WeightsError`s, "
        "whose `missing`, `unexpected` and `mismatched` list every problem.",
    ),
    Section(
        "W7",
        "Weights warnings (W7xx)",
        intro="Python warnings of category `resdsl.weights.WeightsWarning` carrying the diagnostic; the CLI prints "
        "them like the others.",
    ),
    Section(
        "E8",
        "Inference and export (E8xx)",
        intro='Inference builds (`build_model(spec, mode="inference")`) report E801-E805; `resdsl export` (and '
        "`resdsl.export_onnx`) E820-E826, and a file is never half written.",
    ),
    Section("E9", "Importing PyTorch models (E9xx)", intro="Raised by `resdsl import` and `resdsl.import_model`."),
)

LINT_NOTE = (
    "A lint that fires in many instances of one library line is printed once, with a note that counts the "
    'instances and names the first few. `--ignore W403` (repeatable; API: `check(..., ignore=["W403"])`) '
    "silences a lint code."
)


def entries() -> dict[str, Entry]:
    """Every entry, by code, in code order."""
    found = [e for name in _MODULES for e in import_module(f"{__name__}.{name}").ENTRIES]
    return {e.code: e for e in sorted(found, key=lambda e: e.code[1:])}


def _indent(text: str) -> str:
    return textwrap.indent(text.rstrip("\n"), "    ")


def _describe(content: str | bytes) -> str:
    return f"`{content.strip()}`" if isinstance(content, str) else f"({len(content)} bytes)"


def explain_text(entry: Entry) -> str:
    """What ``resdsl explain CODE`` prints: summary, explanation, example and fix."""
    from resdsl.diagnostics import CODES

    parts = [f"{entry.code}: {CODES.get(entry.code, entry.summary)}", "", textwrap.fill(entry.explanation, 100), ""]
    parts += [f"Example ({entry.command(entry.argv)}), example.arch:", "", _indent(entry.example), ""]
    for name, text in entry.files:
        shown = _indent(text) if isinstance(text, str) else f"    ({len(text)} bytes)"
        parts += [f"{name}:", "", shown, ""]
    if not entry.runs:
        parts += [f"(not run by the tests: {entry.why})", ""]
    fix = f"Fix ({entry.command(entry.fix_command)})" if entry.fix_command != entry.argv else "Fix"
    parts += [f"{fix}:", "", _indent(entry.fix)] if entry.fix != entry.example else [f"{fix}."]
    return "\n".join(parts) + "\n"


def render_docs() -> str:
    """docs/errors.md."""
    out = [
        "# Diagnostics reference",
        "",
        "<!-- Generated from resdsl/diagnostics/codes/ by `python -m resdsl.diagnostics.codes > docs/errors.md`;"
        " edit the catalog, not this file. -->",
        "",
        "Every diagnostic starts with `PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`, then notes, an excerpt with a",
        "caret under the offending text, and usually a `help:` line. `resdsl check --json` prints the same as",
        "the `diagnostics` list of one JSON object ([cli.md](cli.md)): objects with `file, line, column, end_line,",
        "end_column, severity, code, message, notes` and the diagnostic's `fixes`.",
        "Codes are stable: a code is never reused for another mistake. `resdsl explain CODE` prints a code's",
        "explanation, an example and its fix (the same text as below).",
        "",
        "`resdsl check` exits 0 when there are no errors (warnings allowed), 1 when there are, and 2 on a",
        "usage error (unknown option, malformed `--set` or `--input`).",
    ]
    catalog = entries()
    for section in SECTIONS:
        codes = [c for c in catalog if c.startswith(section.prefix)]
        if not codes:
            continue
        out += ["", f"## {section.title}", ""]
        if section.intro:
            out += [textwrap.fill(section.intro, 100), ""]
        out += ["| code | meaning |", "|---|---|"] + [f"| {c} | {catalog[c].summary} |" for c in codes]
        if section.prefix == "W4":
            out += ["", textwrap.fill(LINT_NOTE, 100)]
    out += [
        "",
        "## Every code: an example and its fix",
        "",
        "tests/diagnostics/test_explain.py runs each example below and expects exactly its code, and runs each fix and",
        "expects no error. An example is checked as `example.arch` with `resdsl check example.arch` unless",
        "it says otherwise (the shipped library, `std/blocks.arch` and the rest, is importable as usual).",
    ]
    for entry in catalog.values():
        out += ["", f"### {entry.code}", ""]
        if entry.argv != Entry.argv or entry.files or not entry.runs:
            how = f"`{entry.command(entry.argv)}`" + "".join(f", with `{n}`: {_describe(t)}" for n, t in entry.files)
            out += [f"{how}{'' if entry.runs else f' (not run: {entry.why})'}:", ""]
        out += ["```arch", entry.example.rstrip("\n"), "```", "", textwrap.fill(entry.explanation, 100), ""]
        if entry.fix == entry.example:
            out += [f"Fix: `{entry.command(entry.fix_command)}`."]
        else:
            fixed = "Fixed" + (f" (`{entry.command(entry.fix_command)}`)" if entry.fix_command != entry.argv else "")
            out += [f"{fixed}:", "", "```arch", entry.fix.rstrip("\n"), "```"]
    return "\n".join(out) + "\n"
