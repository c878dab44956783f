"""The pygls wiring of ``resdsl lsp``: document sync, debounced re-checks and the features.

A change to a document schedules a check after a quiet period (``DEBOUNCE_S``, or
``initializationOptions.debounce_ms``); the check reads every open buffer, so the open
documents that import the changed one are checked again with it. Saving, closing, or a
watched file changing on disk re-checks the dependants at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from resdsl._version import __version__
from resdsl.tools.lsp import completion, definition, diagnose, hover, symbols
from resdsl.tools.lsp.convert import uri_to_path
from resdsl.tools.lsp.workspace import Analysis, Workspace

DEBOUNCE_S = 0.2  # quiet time after a keystroke before the document is checked again

log = logging.getLogger(__name__)


class ResdslServer(LanguageServer):
    """A language server holding a :class:`Workspace` and the pending debounced checks."""

    def __init__(self) -> None:
        super().__init__("resdsl", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.files = Workspace()
        self.debounce = DEBOUNCE_S
        self.pending: dict[str, asyncio.TimerHandle] = {}

    def text(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def publish(self, uri: str) -> Analysis | None:
        """Check ``uri`` and send its diagnostics; never lets a failure stop the server."""
        if uri not in self.files.texts:
            return None
        try:
            analysis = self.files.analyse(uri)
            found = diagnose.diagnostics(self.files, analysis)
        except Exception as exc:  # an internal error must not take the editor's server down
            log.exception("checking %s failed", uri)
            self.window_show_message(
                types.ShowMessageParams(types.MessageType.Error, f"resdsl: internal error checking {uri}: {exc}")
            )
            return None
        version = self.workspace.get_text_document(uri).version
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, found, version))
        return analysis

    def refresh(self, uri: str, itself: bool = True) -> None:
        """Check ``uri`` (if open) and every open document that imports it."""
        if itself:
            self.publish(uri)
        path = uri_to_path(uri)
        if path is not None:
            for other in self.files.dependants(path):
                self.publish(other)

    def cancel(self, uri: str) -> bool:
        """Drop a pending check of ``uri``; whether there was one."""
        pending = self.pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        return pending is not None

    def schedule(self, uri: str) -> None:
        self.cancel(uri)
        loop = asyncio.get_running_loop()
        self.pending[uri] = loop.call_later(self.debounce, self._fire, uri)

    def _fire(self, uri: str) -> None:
        self.pending.pop(uri, None)
        self.refresh(uri)

    def analysis(self, uri: str) -> Analysis | None:
        """The latest analysis of ``uri``, checking it now if an edit is still pending."""
        if self.cancel(uri):
            self.refresh(uri)
        found = self.files.analyses.get(uri)
        if found is None and uri in self.files.texts:
            found = self.publish(uri)
        return found


server = ResdslServer()


@server.feature(types.INITIALIZE)
def initialize(ls: ResdslServer, params: types.InitializeParams) -> None:
    ls.files.encoding = str(ls.workspace.position_encoding or types.PositionEncodingKind.Utf16)
    options: Any = params.initialization_options
    if isinstance(options, dict) and isinstance(options.get("debounce_ms"), (int, float)):
        ls.debounce = max(float(options["debounce_ms"]), 0.0) / 1000


@server.feature(types.INITIALIZED)
def initialized(ls: ResdslServer, params: types.InitializedParams) -> None:
    """Ask the client to report .arch files changing on disk (a closed library edited by
    another program, a checkout), where it can register watchers."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace is not None else None
    if watched is not None and watched.dynamic_registration:
        options = types.DidChangeWatchedFilesRegistrationOptions([types.FileSystemWatcher(glob_pattern="**/*.arch")])
        registration = types.Registration("resdsl-arch-files", types.WORKSPACE_DID_CHANGE_WATCHED_FILES, options)
        ls.client_register_capability(types.RegistrationParams([registration]))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: ResdslServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.files.open(params.text_document.uri, params.text_document.text)
    ls.refresh(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: ResdslServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.files.open(uri, ls.text(uri))
    ls.schedule(uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: ResdslServer, params: types.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.cancel(uri)  # a save supersedes a pending check
    ls.refresh(uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ResdslServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.cancel(uri)
    ls.files.close(uri)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, []))
    ls.refresh(uri, itself=False)  # dependants now read the file from disk


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched(ls: ResdslServer, params: types.DidChangeWatchedFilesParams) -> None:
    for change in params.changes:
        ls.refresh(change.uri, itself=False)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: ResdslServer, params: types.HoverParams) -> types.Hover | None:
    analysis = ls.analysis(params.text_document.uri)
    return hover.hover(ls.files, analysis, params.position) if analysis is not None else None


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: ResdslServer, params: types.DefinitionParams) -> types.Location | None:
    analysis = ls.analysis(params.text_document.uri)
    return definition.definition(ls.files, analysis, params.position) if analysis is not None else None


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["(", ",", "=", " "]))
def on_completion(ls: ResdslServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    if uri in ls.files.texts:
        ls.files.open(uri, ls.text(uri))
    analysis = ls.files.analyses.get(uri) or ls.analysis(uri)
    items = completion.completions(ls.files, analysis, params.position) if analysis is not None else []
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_symbols(ls: ResdslServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    analysis = ls.analysis(params.text_document.uri)
    source = ls.files.parsed.get(params.text_document.uri) if analysis is not None else None
    if source is None or source.module is None:
        return []
    return symbols.symbols(source.module, ls.files.lines(source, source.file))


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix])
)
def on_code_action(ls: ResdslServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    analysis = ls.analysis(params.text_document.uri)
    return diagnose.code_actions(ls.files, analysis, params.range) if analysis is not None else []


class _OneLine(logging.Formatter):
    """Log lines on stderr (the editor's output panel) without tracebacks: a malformed
    message or an internal error is one line that says what happened."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"resdsl lsp: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        return text


def main() -> None:
    """Serve over stdin/stdout until the client says exit (or closes stdin)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    server.start_io()
