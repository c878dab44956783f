"""The server's view of the files: open buffers, each one's latest check, who imports whom.

Kept free of pygls so that it can be driven directly (the benchmark does). Every check reads
open buffers instead of the disk (``api.check(sources=...)``), so an unsaved edit of an
imported file shows in the files that import it; :meth:`Workspace.dependants` names those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types

from resdsl.api import CheckResult, check
from resdsl.ir import Network
from resdsl.syntax import ast
from resdsl.tools.lsp.convert import Lines, path_to_uri, uri_to_path


@dataclass
class Analysis:
    """One check of one open document."""

    uri: str
    path: Path | None
    text: str
    result: CheckResult
    seconds: float
    deps: set[Path] = field(default_factory=set)  # every file the check read (resolved)
    lines: dict[str, Lines] = field(default_factory=dict, repr=False)

    @property
    def module(self) -> ast.Module | None:
        program = self.result.program
        return program.modules.get(self.result.file) if program is not None else None

    @property
    def file(self) -> str:
        """The document's name as spans spell it."""
        return self.result.file


class Workspace:
    """Open documents and their latest analyses."""

    def __init__(self, encoding: str = types.PositionEncodingKind.Utf16) -> None:
        self.encoding = encoding
        self.texts: dict[str, str] = {}
        self.analyses: dict[str, Analysis] = {}
        self.parsed: dict[str, Analysis] = {}  # the latest analysis whose document parsed
        self._resolved: dict[str, Path] = {}

    # documents
    def open(self, uri: str, text: str) -> None:
        self.texts[uri] = text

    def close(self, uri: str) -> None:
        self.texts.pop(uri, None)
        self.analyses.pop(uri, None)
        self.parsed.pop(uri, None)

    def overlay(self) -> dict[str | Path, str]:
        out: dict[str | Path, str] = {}
        for uri, text in self.texts.items():
            path = uri_to_path(uri)
            if path is not None:
                out[path] = text
        return out

    # checking
    def analyse(self, uri: str) -> Analysis:
        """Check the open document ``uri`` as ``resdsl check`` would, from the open buffers."""
        text = self.texts[uri]
        path = uri_to_path(uri)
        start = time.perf_counter()
        spec: str | Path = path if path is not None else (text if "\n" in text or "{" in text else text + "\n")
        result = check(spec, sources=self.overlay())
        seconds = time.perf_counter() - start
        analysis = Analysis(uri, path, text, result, seconds)
        analysis.deps = {self.resolve(f) for f in result.sources}
        self.analyses[uri] = analysis
        if analysis.module is not None:
            self.parsed[uri] = analysis
        return analysis

    def dependants(self, changed: Path) -> list[str]:
        """Open documents (other than ``changed`` itself) whose last check read ``changed``."""
        return [
            uri for uri, a in self.analyses.items() if a.path != changed and changed in a.deps and uri in self.texts
        ]

    # helpers shared by the features
    def resolve(self, file: str) -> Path:
        """A span's file as an absolute path (cached: spans repeat a few names)."""
        path = self._resolved.get(file)
        if path is None:
            path = self._resolved[file] = Path(file).resolve()
        return path

    def uri(self, file: str) -> str:
        return path_to_uri(self.resolve(file))

    def lines(self, analysis: Analysis, file: str) -> Lines:
        """Column conversion for ``file`` as that analysis read it."""
        found = analysis.lines.get(file)
        if found is None:
            text = analysis.result.sources.get(file)
            if text is None:
                try:
                    text = self.resolve(file).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    text = ""
            found = analysis.lines[file] = Lines(text, self.encoding)
        return found

    def location(self, analysis: Analysis, span: ast.Span) -> types.Location:
        return types.Location(self.uri(span.file), self.lines(analysis, span.file).range(span))

    def networks_seeing(self, uri: str, file: str) -> list[tuple[Network, str]]:
        """Networks instantiating lines of ``file``: the document's own, then those of open
        documents importing it, each with the name of the spec it comes from."""
        out: list[tuple[Network, str]] = []
        target = self.resolve(file)
        own = self.analyses.get(uri)
        if own is not None:
            out += [(n, own.file) for n in own.result.networks]
        for other in self.dependants(target):
            if other != uri:
                a = self.analyses[other]
                out += [(n, a.file) for n in a.result.networks]
        return out
