"""One entry of the catalog of diagnostic codes (see :mod:`resdsl.diagnostics.codes`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """A diagnostic code, explained once for `resdsl explain` and docs/errors.md.

    ``example`` is a spec that gives exactly this code, ``fix`` the same spec corrected (it gives
    no error). Both are written to ``example.arch`` next to ``files`` and checked with ``argv`` /
    ``fix_argv`` (``resdsl check example.arch`` unless said otherwise); tests/diagnostics/test_explain.py runs
    every one. ``runs=False`` only for a code no command can be made to give on purpose, with
    ``why`` saying so.
    """

    code: str
    summary: str  # one line for the table in docs/errors.md (markdown)
    explanation: str
    example: str
    fix: str
    files: tuple[tuple[str, str | bytes], ...] = ()  # other files next to example.arch: (name, text or bytes)
    argv: tuple[str, ...] = ("check", "example.arch")
    fix_argv: tuple[str, ...] | None = None  # default: argv
    runs: bool = True
    why: str = ""  # why the example cannot be run (runs=False)

    @property
    def fix_command(self) -> tuple[str, ...]:
        return self.argv if self.fix_argv is None else self.fix_argv

    def command(self, argv: tuple[str, ...]) -> str:
        return "resdsl " + " ".join(argv)
