"""Errors and warnings: one exception type with a span, stable codes, and their rendering.

Every stage reports problems as :class:`Diagnostic` values. A stage that can go on after a
problem collects it in a :class:`Collector`; a stage that cannot raises :class:`ResdslError`,
which carries one or more diagnostics. The CLI renders both the same way, like a compiler:
``PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`` followed by notes, an excerpt with a caret and a hint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resdsl.diagnostics.fixes import Fix
from resdsl.diagnostics.span import NO_SPAN, Span

# Stable diagnostic codes. docs/errors.md documents each one; tests/diagnostics/test_diagnostics.py checks
# that the two lists agree, so a code cannot be added or renamed silently.
CODES: dict[str, str] = {
    # syntax
    "E001": "syntax error: unexpected token",
    "E002": "syntax error: unexpected character",
    "E003": "syntax error: unexpected end of file",
    "E004": "file cannot be read",
    "E005": "reserved word used as a name",
    "E006": "unknown escape in a string",
    # imports and definitions
    "E101": "import not found",
    "E102": "import cycle",
    "E103": "duplicate definition",
    "E104": "network not found",
    # names, calls and values
    "E201": "unknown name",
    "E202": "unknown op, block or network",
    "E203": "unknown parameter",
    "E204": "missing required argument",
    "E205": "wrong argument type",
    "E206": "duplicate layer name",
    "E207": "recursion between blocks",
    "E208": "division is not exact",
    "E209": "division by zero",
    "E210": "too many positional arguments",
    "E211": "statement is not a layer",
    "E212": "invalid operands",
    "E213": "invalid value",
    "E214": "argument given twice",
    "E215": "network has no input shape",
    "E216": "unknown override",
    "E217": "misplaced statement",
    "E218": "net_count not known before placing",
    "E219": "spec parameter given as a build option",
    "E220": "value outside a function's domain",
    "E221": "comprehension over something that is not a list",
    "E222": "loop variable shadows a name",
    "E223": "drop-path rate outside [0, 1)",
    # shapes
    "E301": "residual shapes differ",
    "E302": "channels not divisible by groups",
    "E303": "window larger than input",
    "E304": "linear input mismatch",
    "E305": "conv input channels mismatch",
    "E306": "shortcut cannot reach the main branch's shape",
    "E307": "op needs a spatial input",
    "E308": "gate cannot scale the input",
    "E309": "concatenated maps differ",
    "E310": "split does not divide the channels",
    "E311": "heads do not divide the embedding width",
    "E312": "patch size does not divide the input",
    "E313": "position embedding length differs from the tokens",
    "E398": "radix does not divide the channels",
    # lints
    "W401": "conv with bias right before batchnorm",
    "W402": "stage halves the map without doubling the width",
    "W403": "batchnorm over a single value per channel",
    "W404": "stride set inside a stage's block",
    # output files
    "E501": "output file would be overwritten",
    "E502": "output file cannot be written",
    "E503": "name cannot be used in generated code",
    "E504": "generated code cannot be formatted",
    "E505": "layer name is reserved",
    "E506": "stage cannot be written in generated code",
    "E507": "shortcut kind decided per block cannot be a parameter in generated code",
    "E508": "named shortcut parts with a run-time shortcut kind in generated code",
    # ONNX export
    "E820": "onnx package not installed",
    "E821": "weights file cannot be read",
    "E822": "weights do not fit the network",
    "E823": "invalid batch size",
    "E824": "export would overwrite a foreign file",
    "E825": "model too large for one ONNX file",
    "E826": "op has no ONNX form",
    # limits: inputs that would exhaust time or memory are refused before anything is built
    "E601": "too many layers",
    "E602": "nesting too deep",
    "E603": "too many parameters",
    "E604": "too much activation memory",
    "E605": "number too large",
    # weights and fine-tuning (resdsl.weights, resdsl.weights.finetune)
    "E701": "weights file cannot be read",
    "E702": "checkpoint would run code",
    "E703": "no state_dict in the checkpoint",
    "E704": "weights do not fit the network",
    "E705": "no such module to freeze",
    "E706": "fine-tuning option without its subject",
    "E707": "weights file cannot be written",
    "E708": "head cannot be added",
    "W720": "preprocessing differs from the weights'",
    "W721": "classifier tensor kept at initialisation",
    # feature outputs and gradient checkpointing (resdsl/ir/features.py)
    "E740": "no such top-level layer to return as a feature",
    "E741": "feature is not a spatial map",
    "E742": "layer named twice",
    "E743": "no feature outputs named",
    "E744": "a single layer named to checkpoint",
    "E745": "no such top-level layer to checkpoint",
    "E746": "no stages to checkpoint",
    "E747": "checkpointed layer is dropped by the feature outputs",
    # inference builds (fold.py)
    "E801": "weights cannot be folded",
    "E802": "unknown build mode",
    "E803": "training option in an inference build",
    "E804": "compiled inference build without a C++ compiler",
    "E805": "inference option in a training build",
    # resdsl import (resdsl/importing/): a PyTorch model the language cannot express, or cannot rebuild
    "E901": "model cannot be traced",
    "E902": "forward with more than one input",
    "E903": "module or function has no op",
    "E904": "module structure has no spec form",
    "E905": "imported spec does not rebuild the model",
    "E906": "model cannot be loaded",
    "E910": "gate inside an nn.Sequential",
    "E911": "shortcut registered before its branch",
    "E912": "layer named with a reserved word",
}


@dataclass(frozen=True)
class Related:
    """Another place that explains a diagnostic (the other branch of an addition, the call
    that made a block instance); editors show it as related information."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    """One message about a source span; ``fixes`` are mechanical repairs (resdsl.diagnostics.fixes)."""

    severity: str  # "error" | "warning"
    code: str
    message: str
    span: Span = NO_SPAN
    notes: tuple[str, ...] = ()
    help: str | None = None
    fixes: tuple[Fix, ...] = ()
    related: tuple[Related, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        """The compiler-style text without a source excerpt (``format_diagnostic`` adds one)."""
        lines = [format_header(self), *(f"  {note}" for note in self.notes)]
        if self.help:
            lines.append(f"  help: {self.help}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        notes = list(self.notes) + ([f"help: {self.help}"] if self.help else [])
        return {
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "notes": notes,
        }


def error(
    code: str,
    message: str,
    span: Span = NO_SPAN,
    notes: Iterable[str] = (),
    help: str | None = None,
    fixes: Iterable[Fix] = (),
    related: Iterable[Related] = (),
) -> Diagnostic:
    assert code in CODES, code
    return Diagnostic("error", code, message, span, tuple(notes), help, tuple(fixes), tuple(related))


def warning(
    code: str,
    message: str,
    span: Span = NO_SPAN,
    notes: Iterable[str] = (),
    help: str | None = None,
    fixes: Iterable[Fix] = (),
    related: Iterable[Related] = (),
) -> Diagnostic:
    assert code in CODES, code
    return Diagnostic("warning", code, message, span, tuple(notes), help, tuple(fixes), tuple(related))


class ResdslError(Exception):
    """The one exception type resdsl raises for bad input; it carries its diagnostics."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        # the notes and help too, so that a traceback or a notebook shows the whole report
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def span(self) -> Span:
        return self.diagnostics[0].span if self.diagnostics else NO_SPAN

    @property
    def code(self) -> str:
        return self.diagnostics[0].code if self.diagnostics else ""


# How the note that names the network being checked begins (``Collector.within("network", ...)``).
NETWORK_CONTEXT = "while checking network"


@dataclass(frozen=True)
class Context:
    """Where checking is, for problems found in another file: ``note`` is added to every
    diagnostic whose file is not ``home`` (a library block's error names its instance)."""

    kind: str  # "network" | "block": per kind, the innermost context applies
    home: str
    note: str
    span: Span | None = None  # where the instance is made (becomes related information)


@dataclass
class Collector:
    """Gathers diagnostics so that one run reports every problem, not only the first.

    A stack of :class:`Context` (entered with :meth:`within`) says where checking is; each
    diagnostic added gets the innermost applicable note of each kind, so stages never edit
    messages after the fact.
    """

    items: list[Diagnostic] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        innermost: dict[str, Context] = {}
        for context in reversed(self.contexts):
            if context.kind not in innermost and diagnostic.span.file != context.home:
                innermost[context.kind] = context
        found = [innermost[kind] for kind in ("block", "network") if kind in innermost]
        if found:
            related = tuple(Related(c.span, c.note) for c in found if c.span is not None)
            diagnostic = dataclasses.replace(
                diagnostic,
                notes=(*diagnostic.notes, *(c.note for c in found)),
                related=(*diagnostic.related, *related),
            )
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    @contextlib.contextmanager
    def within(self, kind: str, home: str, note: str, span: Span | None = None) -> Iterator[None]:
        self.contexts.append(Context(kind, home, note, span))
        try:
            yield
        finally:
            self.contexts.pop()

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.span.file, d.span.line, d.span.column, d.code)


def ordered(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Errors and warnings by position (file, line, column): how a reader goes through a file."""
    return sorted(diagnostics, key=sort_key)


def group_repeats(diagnostics: Sequence[Diagnostic], errors: bool = False) -> list[Diagnostic]:
    """One warning per (code, place): a library block that trips a lint in 26 instances gives one
    warning that says how many times and where, not 26 copies. Errors are folded too with
    ``errors`` (what the terminal shows; the API, ``--json`` and the editor keep every instance,
    each with its own related places)."""
    first: dict[tuple[object, ...], int] = {}
    where: dict[int, list[str]] = {}
    out: list[Diagnostic] = []
    for d in diagnostics:
        networks = tuple(r for r in d.related if r.message.startswith(NETWORK_CONTEXT))  # never across two
        key = (d.severity, d.code, d.span, networks)
        foldable = bool(d.span.line) and (errors or not d.is_error)
        if not foldable or key not in first:
            if foldable:
                first[key] = len(out)
                where[len(out)] = [_place(d.message)]
            out.append(d)
            continue
        where[first[key]].append(_place(d.message))
    for index, places in where.items():
        if len(places) > 1:
            d = out[index]
            shown = ", ".join(places[:4]) + (", ..." if len(places) > 4 else "")
            out[index] = dataclasses.replace(d, notes=(*d.notes, f"{len(places)} times: {shown}"))
    return out


def _place(message: str) -> str:
    """Where in the network a message says it is: ``layer3.0.bn2: ...`` or ``... in layer2.0: ...``."""
    found = re.match(r"([\w.#]+): ", message) or re.search(r"\bin ([\w.#]+)", message)
    return found.group(1) if found else message.split(":", 1)[0]


# -- rendering ----------------------------------------------------------------------------


def format_header(d: Diagnostic) -> str:
    where = f"{d.span.file}:{d.span.line}:{d.span.column}" if d.span.line else d.span.file
    return f"{where}: {d.severity}[{d.code}]: {d.message}"


def _lines(text: str) -> list[str]:
    """Lines as the parser counts them: at "\n" only (str.splitlines also splits at form feeds,
    U+2028 and more, which would shift every excerpt after them)."""
    return [line.removesuffix("\r") for line in text.lstrip("\ufeff").split("\n")]


class SourceCache:
    """Reads source lines for excerpts, once per file."""

    def __init__(self, sources: dict[str, str] | None = None) -> None:
        self._lines: dict[str, list[str]] = {}
        for name, text in (sources or {}).items():
            self._lines[name] = _lines(text)

    def line(self, file: str, number: int) -> str | None:
        if file not in self._lines:
            try:  # bytes that are not UTF-8 (reported as E004) show as U+FFFD, one character each
                self._lines[file] = _lines(Path(file).read_text(encoding="utf-8", errors="replace"))
            except OSError:
                self._lines[file] = []
        lines = self._lines[file]
        return lines[number - 1] if 0 < number <= len(lines) else None


def format_diagnostic(d: Diagnostic, sources: SourceCache | None = None) -> str:
    """The compiler-style text: header, notes, source excerpt with caret, help."""
    out = [format_header(d)]
    out.extend(f"  {note}" for note in d.notes)
    text = (sources or SourceCache()).line(d.span.file, d.span.line) if d.span.line else None
    if text is not None:
        number = str(d.span.line)
        gutter = " " * (len(number) + 4)
        raw_start = max(d.span.column - 1, 0)
        # columns count characters, a tab being one; the excerpt shows tabs as spaces, so the
        # caret is placed under the expanded text
        start = len(text[:raw_start].expandtabs(4))
        if d.span.end_line == d.span.line and d.span.end_column > d.span.column:
            end = len(text[: d.span.end_column - 1].expandtabs(4))
        else:
            end = len(text.expandtabs(4).rstrip())
        width = max(end - start, 1)
        text = text.expandtabs(4)
        out.append(f"   {number} | {text}")
        out.append(f"{gutter}| {' ' * start}^{'~' * (width - 1)}")
    if d.help:
        out.append(f"  help: {d.help}")
    return "\n".join(out)


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)
