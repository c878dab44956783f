"""Hover on a transformer: layers on tokens show their N x C shape beside the maps before them."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from resdsl.tools.lsp.convert import path_to_uri
from resdsl.tools.lsp.hover import hover
from resdsl.tools.lsp.workspace import Workspace

SPEC = """\
import "std/vit.arch"

network tiny(embed_dim = 192) {
    input 3 x 224 x 224
    patch_embed = patch_embed(embed_dim, 16)
    cls_token   = class_token()
    pos_embed   = pos_embed(197)
    blocks      = stage(vit_block(embed_dim, 3), repeat=2)
    pool        = token_pool("token")
    head        = linear(10)
}
"""


def _hover(tmp_path: Path, needle: str) -> str:
    path = tmp_path / "tiny.arch"
    path.write_text(SPEC, encoding="utf-8")
    ws = Workspace()
    uri = path_to_uri(path)
    ws.open(uri, SPEC)
    analysis = ws.analyse(uri)
    assert analysis.result.ok
    number, line = next((i, text) for i, text in enumerate(SPEC.split("\n")) if needle in text)
    found = hover(ws, analysis, types.Position(number, line.index(needle) + 1))
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    return found.contents.value


def test_hover_shows_token_shapes(tmp_path: Path) -> None:
    assert "patch_embed: 196 x 192" in _hover(tmp_path, "patch_embed =")
    assert "blocks: 197 x 192" in _hover(tmp_path, "blocks")
    assert "pool: 192" in _hover(tmp_path, "pool ")
