"""`resdsl graph`: DOT for every shipped network, SVG rendered by Graphviz with the stage
clusters and the merges findable, --depth folding, atomic writes, a clear error without dot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import resdsl
from resdsl.ir import Scope
from resdsl.tools.cli import cli
from resdsl.tools.graph import GraphError, output_format, render, to_digraph, write_atomic
from resdsl.tools.summary import is_merge
from tests.conftest import ROOT, shipped_spec_files

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@pytest.mark.parametrize("path", shipped_spec_files(), ids=lambda p: p.stem)
def test_every_shipped_spec_writes_a_dot_file(path: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{path.stem}.dot"
    result = CliRunner().invoke(cli, ["graph", str(path), "-o", str(out), "--depth", "2"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    nested = [  # a top-level group and its first group (layer1 and layer1.0, stages and stages.0)
        (outer, next(inner for inner in outer.items if isinstance(inner, Scope)))
        for outer in resdsl.compile(path).root.items
        if isinstance(outer, Scope) and any(isinstance(inner, Scope) for inner in outer.items)
    ]
    first, inner = nested[0]
    assert f"subgraph cluster_{first.path} {{" in text and f'"[{inner.path}]"' in text
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind


def test_full_graph_has_every_layer_cluster_and_merge() -> None:
    net = resdsl.compile("resnet18")
    source = to_digraph(net).source
    for layer in net.layers():
        assert f'"{layer.id}" [' in source or f"\t{layer.id} [" in source
    clusters = [line.split()[1] for line in source.splitlines() if line.strip().startswith("subgraph")]
    assert len(clusters) == 4 + 8 and all(c.strip('"').startswith("cluster_") for c in clusters)
    merges = [layer for layer in net.layers() if is_merge(layer)]
    assert len(merges) == 8 and source.count("class=merge") == 8
    assert 'label="projection, stride 2\n64 x 56 x 56"' in source  # layer2.0's shortcut edge
    assert source.count('label="identity\n') == 5
    assert 'label="64 x 56 x 56"' in source  # shapes on the edges


def test_project_from_shortcut_starts_at_its_tap() -> None:
    source = to_digraph(resdsl.compile("preact_resnet164")).source
    assert '"layer2.0.relu1" -> "layer2.0.downsample" [label="projection, stride 2\n64 x 32 x 32"' in source
    assert '"layer1.17.downsample" -> "layer2.0.downsample"' not in source  # the port it does not read


@pytest.mark.parametrize(("depth", "nodes"), [(1, ["[layer1]", "[layer2]", "[layer3]"]), (2, ["[layer3.110]"])])
def test_depth_collapses_scopes_into_nodes(depth: int, nodes: list[str]) -> None:
    source = to_digraph(resdsl.compile("preact_resnet1001"), depth).source
    for node in nodes:
        assert f'"{node}" [' in source
    assert "class=merge" not in source  # every merge is inside a collapsed scope
    if depth == 1:
        assert "subgraph" not in source
        assert '"[layer2]" -> "[layer3]" [label="128 x 16 x 16"]' in source
        assert source.count(" -> ") == 9  # input conv1 layer1-3 bn relu avgpool fc output: a chain


def test_depth_0_is_one_node() -> None:
    source = to_digraph(resdsl.compile("resnet20"), 0).source
    assert '"[resnet20]" [' in source and source.count(" -> ") == 2


@needs_dot
def test_svg_renders_with_stage_clusters_and_merges(tmp_path: Path) -> None:
    out = tmp_path / "resnet50.svg"
    result = CliRunner().invoke(cli, ["graph", "resnet50", "-o", str(out)])
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    groups = list(root.iter(f"{SVG}g"))
    clusters = {g.findtext(f"{SVG}title") for g in groups if g.get("class") == "cluster"}
    assert {"cluster_layer1", "cluster_layer2", "cluster_layer3", "cluster_layer4"} <= clusters
    assert "cluster_layer3.5" in clusters and len(clusters) == 4 + 16
    merges = [g for g in groups if "merge" in (g.get("class") or "").split()]
    assert len(merges) == 16
    assert {"".join(g.itertext()).strip().split()[-1] for g in merges} == {"+"}
    texts = {(t.text or "").strip() for t in root.iter(f"{SVG}text")}
    assert {"projection, stride 2", "identity", "256 x 56 x 56", "layer2: 4 x bottleneck"} <= texts


@needs_dot
@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_png_and_pdf_render(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"net{suffix}"
    result = CliRunner().invoke(cli, ["graph", "preact_resnet1001", "--depth", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] in (b"\x89PNG", b"%PDF")


def test_missing_dot_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    """The CLI, run by this very interpreter with a PATH that holds nothing (so no ``dot``).

    The interpreter is not copied or linked elsewhere: a venv's or conda env's python finds its
    site-packages from where it lives, and a link to it in a bare folder would not (lark missing)."""
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "net.svg"
    done = subprocess.run(
        [sys.executable, "-m", "resdsl", "graph", "resnet18", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "`dot` program is not on PATH" in done.stderr and "apt-get install graphviz" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]  # no partial picture
    done = subprocess.run(
        [sys.executable, "-m", "resdsl", "graph", "resnet18", "-o", str(tmp_path / "net.dot")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and (tmp_path / "net.dot").read_text().startswith("digraph"), done.stderr


def test_unknown_suffix_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["graph", "resnet18", "-o", str(tmp_path / "net.jpg")])
    assert result.exit_code == 2 and ".svg" in result.output
    with pytest.raises(GraphError):
        output_format("net.txt")
    assert output_format("a/net.DOT") is None and output_format("net.svg") == "svg"


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "net.dot"
    out.write_text("old")

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(resdsl.ResdslError) as info:
        write_atomic(out, render(resdsl.compile("resnet20"), None))
    assert info.value.diagnostics[0].code == "E502"
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["net.dot"]


def test_graph_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom resdsl.tools.cli import main\n"
        f"try:\n    main(['graph', 'resnet50', '-o', {str(tmp_path / 'n.dot')!r}, '--depth', '1'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "main_summary = ['summary', 'resnet50', '--depth', '1']\n"
        "try:\n    main(main_summary)\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr


def test_any_merge_op_is_drawn_as_a_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only the residual: an op whose table entry has ``merge`` set (a gating multiply
    without a shortcut) is a circle with its operator, its side input a dashed edge."""
    import dataclasses

    from resdsl import ops
    from resdsl.tools.summary import summary_rows_list

    monkeypatch.setitem(ops.OPS, "gate", dataclasses.replace(ops.OPS["residual"], name="gate", merge=ops.Merge("*")))
    net = resdsl.compile("resnet20")
    layer = net.layer("layer2.1.downsample")
    layer.op, layer.shortcut = "gate", None
    source = to_digraph(net).source
    assert '"layer2.1.downsample" [label="*" class=merge' in source
    assert '"layer2.0.relu_1" -> "layer2.1.downsample" [label="32 x 16 x 16" class=side style=dashed]' in source
    (row,) = [r for r in summary_rows_list(net) if r.op == "gate"]
    assert row.name is None  # a multiply runs no module of its own
    assert {r.name: r.op for r in summary_rows_list(net, 2)}["layer2.0"] == "basic (zero_pad, stride 2)"
