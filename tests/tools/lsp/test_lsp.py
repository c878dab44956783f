"""`resdsl lsp` end to end: a real server process driven over stdio by an LSP client
(pytest-lsp). One server serves the whole module; each test opens its own files."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from resdsl.resources import library_dir
from resdsl.tools.lsp.convert import path_to_uri
from tests.conftest import ROOT

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

RESNET50 = """\
# ResNet-50 as in the design brief: the stages written out
import "std/blocks.arch"

network resnet50(num_classes = 1000) {
    input 3 x 224 x 224
    conv1   = conv(64, k=7, s=2, p=3)
    bn1     = batchnorm()
    relu
    maxpool = maxpool(k=3, s=2, p=1)
    layer1  = stage(bottleneck(64),  repeat=3)
    layer2  = stage(bottleneck(128), repeat=4, stride=2)
    layer3  = stage(bottleneck(256), repeat=6, stride=2)
    layer4  = stage(bottleneck(512), repeat=3, stride=2)
    avgpool = global_avgpool()
    fc      = linear(num_classes)
}
"""

# a block that widens its input but adds it unchanged: E301 at the residual line
GROW = """\
block grow(c) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    residual(identity)
}

network n() {
    input 8 x 16 x 16
    a = grow(16)
}
"""


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "resdsl", "lsp"], server_env=SERVER_ENV),
    scope="module",
)
async def client(lsp_client: LanguageClient):
    registrations: list[types.Registration] = []

    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams) -> None:  # the editor's side: remember it
        registrations.extend(params.registrations)

    lsp_client.registrations = registrations  # type: ignore[attr-defined]
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        initialization_options={"debounce_ms": 20},
    )
    result = await lsp_client.initialize_session(params)
    lsp_client.capabilities_result = result  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lsp")


async def published(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The next diagnostics published for ``uri``: the client files each publication under
    its uri; taking it out means the next call waits for a new one."""

    async def arrival() -> list[types.Diagnostic]:
        while uri not in client.diagnostics:
            await asyncio.sleep(0.01)
        return list(client.diagnostics.pop(uri))

    return await asyncio.wait_for(arrival(), 20)


def open_file(client: LanguageClient, path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    uri = path_to_uri(path)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="arch", version=1, text=text))
    )
    return uri


def replace(client: LanguageClient, uri: str, version: int, edits: list[types.TextEdit]) -> None:
    """Send edits as incremental changes, last first so earlier ranges stay valid."""
    ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)
    changes = [types.TextDocumentContentChangePartial(range=e.range, text=e.new_text) for e in ordered]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(uri=uri, version=version), changes)
    )


def at(text: str, needle: str, offset: int = 0) -> types.Position:
    """The position of ``needle`` (plus ``offset`` characters) in ``text``."""
    index = text.index(needle) + offset
    line = text.count("\n", 0, index)
    return types.Position(line, index - (text.rfind("\n", 0, index) + 1))


async def test_initialize_announces_the_features(client: LanguageClient) -> None:
    caps = client.capabilities_result.capabilities  # type: ignore[attr-defined]
    assert caps.hover_provider and caps.definition_provider and caps.document_symbol_provider
    assert caps.completion_provider is not None and "(" in (caps.completion_provider.trigger_characters or [])
    assert caps.code_action_provider


async def test_shape_error_at_its_range_then_fixed_by_an_edit(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "grow.arch", GROW)
    (diag,) = await published(client, uri)
    assert diag.code == "E301" and diag.severity == types.DiagnosticSeverity.Error
    assert diag.range == types.Range(types.Position(3, 4), types.Position(3, 22))  # residual(identity)
    assert "main branch  16 x 16 x 16" in diag.message and "shortcut     8 x 16 x 16" in diag.message
    # related information points at the other branch: the last conv of the main branch, the block input
    related = {(r.location.range.start.line, r.message.split(":")[0]) for r in diag.related_information or []}
    assert (2, "main branch") in related and (8, "shortcut input") in related
    # the editor types a fix: the network's input gets 16 channels, so the shapes agree
    start = at(GROW, "input 8", 6)
    edit = types.TextEdit(types.Range(start, types.Position(start.line, start.character + 1)), "16")
    replace(client, uri, 2, [edit])
    assert await published(client, uri) == []


async def test_code_action_fixes_e301(client: LanguageClient, folder: Path) -> None:
    text = GROW.replace("block grow", "block grow2").replace("grow(16)", "grow2(16)")
    uri = open_file(client, folder / "grow2.arch", text)
    (diag,) = await published(client, uri)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri), diag.range, types.CodeActionContext(diagnostics=[diag])
        )
    )
    assert actions, "a quick fix for E301"
    best = next(a for a in actions if isinstance(a, types.CodeAction) and a.is_preferred)
    assert best.kind == types.CodeActionKind.QuickFix and "projection" in best.title
    assert best.edit is not None and best.edit.changes is not None
    (edit,) = best.edit.changes[uri]
    assert edit.new_text == "projection" and edit.range.start == at(text, "identity")
    replace(client, uri, 2, [edit])
    assert await published(client, uri) == []


async def test_hover_on_a_stage_shows_its_output_shape(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "resnet50.arch", RESNET50)
    assert await published(client, uri) == []
    found = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at(RESNET50, "layer3", 2))
    )
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    assert "layer3: 1024 x 14 x 14" in found.contents.value
    assert "params 7,098,368" in found.contents.value  # torchvision's layer3 of ResNet-50
    # a line of a library block, hovered while resnet50 is open: one row per instance
    conv = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at(RESNET50, "conv(64", 1))
    )
    assert conv is not None and "conv(out, k=1, s=1, p=0" in conv.contents.value  # type: ignore[union-attr]
    kind = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at(RESNET50, "bottleneck(64)", 2))
    )
    assert kind is not None and "block bottleneck(planes, stride = 1" in kind.contents.value  # type: ignore[union-attr]


async def test_definition_of_a_block_in_the_shipped_library(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "resnet50_def.arch", RESNET50)
    await published(client, uri)
    found = await client.text_document_definition_async(
        types.DefinitionParams(types.TextDocumentIdentifier(uri), at(RESNET50, "bottleneck(128)", 3))
    )
    assert isinstance(found, types.Location)
    blocks = library_dir() / "std" / "blocks.arch"
    assert found.uri == path_to_uri(blocks)
    library = blocks.read_text(encoding="utf-8")
    assert found.range.start == at(library, "block bottleneck", len("block "))
    imported = await client.text_document_definition_async(
        types.DefinitionParams(types.TextDocumentIdentifier(uri), at(RESNET50, "std/blocks", 1))
    )
    assert isinstance(imported, types.Location) and imported.uri == path_to_uri(blocks)


async def test_completion_after_stage_offers_blocks(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "resnet50_complete.arch", RESNET50)
    await published(client, uri)
    where = at(RESNET50, "    avgpool")
    replace(client, uri, 2, [types.TextEdit(types.Range(where, where), "    layer5  = stage(\n")])
    found = await client.text_document_completion_async(
        types.CompletionParams(
            types.TextDocumentIdentifier(uri), types.Position(where.line, len("    layer5  = stage("))
        )
    )
    assert found is not None
    items = found.items if isinstance(found, types.CompletionList) else found
    labels = {i.label for i in items}
    assert {"bottleneck", "basic", "preact_bottleneck"} <= labels
    bottleneck = next(i for i in items if i.label == "bottleneck")
    assert bottleneck.detail is not None and "planes" in bottleneck.detail
    after_kind = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at(RESNET50, "repeat=3)", 0))
    )
    assert after_kind is not None
    labels = {i.label for i in (after_kind.items if isinstance(after_kind, types.CompletionList) else after_kind)}
    assert {"repeat=", "stride=", "shortcut="} <= labels


DROPS = """\
block cnx(dim, drop = 0.0) {
    conv1 = conv(dim, k=3, p=1)
    drop_path(drop)
    residual(identity)
}

network n() {
    input 8 x 8 x 8
    s = stage(cnx(8, drop=0.1 * net_index / (net_count - 1)), repeat=3)
    t = cnx(8, drop=0.1)
}
"""


async def test_instance_values_in_a_stage_block_hover_and_complete(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "drops.arch", DROPS)
    assert await published(client, uri) == []
    found = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at(DROPS, "net_index", 2))
    )
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    assert "net_index: int" in found.contents.value and "stage blocks of the whole network" in found.contents.value

    async def labels(needle: str) -> set[str]:
        items = await client.text_document_completion_async(
            types.CompletionParams(types.TextDocumentIdentifier(uri), at(DROPS, needle, len(needle)))
        )
        assert items is not None
        return {i.label for i in (items.items if isinstance(items, types.CompletionList) else items)}

    assert {"index", "count", "net_index", "net_count", "in_channels"} <= await labels("cnx(8, drop=")
    assert "net_index" not in await labels("t = cnx(8, drop=")  # a block outside a stage: not bound


async def test_imported_file_edits_recheck_the_importer(client: LanguageClient, folder: Path) -> None:
    lib = folder / "mylib.arch"
    lib_text = "block plain(c) {\n    conv1 = conv(c, k=3, p=1)\n    relu\n}\n"
    main_text = 'import "mylib.arch"\n\nnetwork m() {\n    input 3 x 8 x 8\n    a = plain(4)\n}\n'
    lib_uri = open_file(client, lib, lib_text)
    await published(client, lib_uri)
    main_uri = open_file(client, folder / "usesmylib.arch", main_text)
    assert await published(client, main_uri) == []
    # an unsaved edit of the library: its conv gets an 11x11 window, too large for the padded 8x8 map
    start = at(lib_text, "k=3", 2)
    window = types.Range(start, types.Position(start.line, start.character + 1))
    replace(client, lib_uri, 2, [types.TextEdit(window, "11")])
    (diag,) = await published(client, main_uri)
    assert diag.code == "E303"
    assert diag.range.start == at(main_text, "plain(4)")  # shown where main.arch makes the instance
    assert any(r.location.uri == lib_uri for r in diag.related_information or [])


async def test_outline_and_shortcut_hover(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "resnet50_outline.arch", RESNET50)
    await published(client, uri)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(types.TextDocumentIdentifier(uri))
    )
    assert symbols is not None
    (network,) = symbols
    assert isinstance(network, types.DocumentSymbol) and network.name == "resnet50"
    assert [c.name for c in network.children or []] == ["layer1", "layer2", "layer3", "layer4"]
    text = GROW.replace("block grow", "block grow3").replace("grow(16)", "grow3(16)")
    grow = open_file(client, folder / "grow3.arch", text)
    await published(client, grow)
    found = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(grow), at(text, "identity", 2))
    )
    assert found is not None and "adds the block input unchanged" in found.contents.value  # type: ignore[union-attr]


async def test_a_bare_identity_layer_hovers_as_the_op(client: LanguageClient, folder: Path) -> None:
    """``identity`` is a layer where a statement makes one (alone, named, or a side of a
    conditional layer) and the shortcut kind inside ``residual(...)``; the hover says which."""
    layers = "    identity\n    skip = relu if false else identity\n    residual(identity)"
    text = GROW.replace("    residual(identity)", layers)
    uri = open_file(client, folder / "bare_identity.arch", text)
    await published(client, uri)

    async def hovered(needle: str) -> str:  # the cursor on the needle's last word
        found = await client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), at(text, needle, len(needle) - 3))
        )
        assert found is not None
        return found.contents.value  # type: ignore[union-attr]

    for needle in ("\n    identity", "else identity"):
        shown = await hovered(needle)
        assert "Does nothing" in shown and "shortcut kind" not in shown, needle
    assert "shortcut kind `identity`" in await hovered("(identity")


async def test_a_closed_import_changed_on_disk_rechecks_the_importer(client: LanguageClient, folder: Path) -> None:
    lib = folder / "disklib.arch"
    lib.write_text("block one(c) {\n    conv1 = conv(c)\n}\n", encoding="utf-8")
    text = 'import "disklib.arch"\n\nnetwork d() {\n    input 3 x 8 x 8\n    a = one(4)\n}\n'
    uri = open_file(client, folder / "usesdisk.arch", text)
    assert await published(client, uri) == []
    registered = [r.method for r in client.registrations]  # type: ignore[attr-defined]
    assert types.WORKSPACE_DID_CHANGE_WATCHED_FILES in registered  # the server asked to hear of it
    lib.write_text("block one(c) {\n    conv1 = conv(c, k=12)\n}\n", encoding="utf-8")  # another program
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams([types.FileEvent(path_to_uri(lib), types.FileChangeType.Changed)])
    )
    (diag,) = await published(client, uri)
    assert diag.code == "E303"


async def test_a_guess_is_offered_but_not_preferred(client: LanguageClient, folder: Path) -> None:
    text = "network t() {\n    input 3 x 8 x 8\n    conv1 = conv(4)\n    bn1   = batchnrm()\n}\n"
    uri = open_file(client, folder / "typo.arch", text)
    (diag,) = await published(client, uri)
    assert diag.code == "E202" and diag.range.start == at(text, "batchnrm")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), diag.range, types.CodeActionContext([diag]))
    )
    (action,) = actions or []
    assert isinstance(action, types.CodeAction)
    assert action.title == "change 'batchnrm' to 'batchnorm'" and not action.is_preferred
    assert action.edit is not None and action.edit.changes is not None
    assert [e.new_text for e in action.edit.changes[uri]] == ["batchnorm"]


async def test_the_server_never_imports_torch() -> None:
    code = "import sys, resdsl.tools.lsp.server, resdsl.tools.lsp.hover; sys.exit('torch' in sys.modules)"
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=SERVER_ENV)
    assert await process.wait() == 0


PREACT = """\
block pre(c, stride = 1) {
    bn1   = batchnorm()
    act1  = relu()
    conv1 = conv(c, k=3, s=stride, p=1)
    residual(projection, project_from=act1)
}

network p() {
    input 4 x 8 x 8
    a = pre(8, stride=2)
}
"""


async def test_definitions_of_parameters_arguments_and_project_from(client: LanguageClient, folder: Path) -> None:
    uri = open_file(client, folder / "pre.arch", PREACT)
    assert await published(client, uri) == []

    async def jump(needle: str, offset: int) -> types.Position:
        found = await client.text_document_definition_async(
            types.DefinitionParams(types.TextDocumentIdentifier(uri), at(PREACT, needle, offset))
        )
        assert isinstance(found, types.Location) and found.uri == uri, needle
        return found.range.start

    assert await jump("s=stride", 3) == at(PREACT, "stride = 1")  # a parameter
    assert await jump("project_from=act1", len("project_from=") + 1) == at(PREACT, "act1  =")  # a layer
    assert await jump("stride=2", 1) == at(PREACT, "stride = 1")  # a named argument's parameter
    assert await jump("pre(8", 1) == at(PREACT, "pre(c")  # a block in the same file
    value = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at(PREACT, "s=stride", 3))
    )
    assert value is not None and "stride = 1" in value.contents.value  # type: ignore[union-attr]
    assert "stride = 2: a" in value.contents.value  # type: ignore[union-attr]  # its value in each instance
    completion = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), at(PREACT, "8, stride=2"))
    )
    assert completion is not None
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    details = {i.label: i.detail for i in items}
    assert details["c="] == "c" and details["stride="] == "stride = 1"  # the block's parameters, defaults


@pytest.mark.parametrize(
    ("spec", "needle", "shown"),
    [
        ("convnext.arch", "stages = stage(", "stages: 768 x 7 x 7"),  # ConvNeXt-T's defaults
        ("mobilenet.arch", "conv_head   = conv(", "conv_head: 1280 x 7 x 7"),
        ("regnet.arch", "s3 = stage(", "s3: 152 x 14 x 14"),  # RegNetX-200MF's defaults: 24, 56, 152, 368
        (
            "mobilenet.arch",
            "conv_pwl  = conv(",
            "blocks.3.0.conv_pwl: 64 x 14 x 14   params  12,288",
        ),  # a row per block
    ],
)
async def test_hover_shows_the_shapes_of_a_family_spec(
    client: LanguageClient, folder: Path, spec: str, needle: str, shown: str
) -> None:
    """A shipped family spec opened as it is: hovering a layer of its network gives its shape."""
    text = (library_dir() / "std" / spec).read_text(encoding="utf-8")
    uri = open_file(client, folder / f"family_{spec}", text)
    assert await published(client, uri) == []
    found = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), at(text, needle, 1))
    )
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    assert shown in found.contents.value, found.contents.value
