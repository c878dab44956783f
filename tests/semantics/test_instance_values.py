"""Values per instance: a stage's block arguments read ``index``, ``count``, ``net_index``,
``net_count`` and ``in_channels``, bound for each block. Checked against timm's drop-path rule,
against the checker's own shapes, in both back ends (float64), and where they are not bound."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
import torch
from click.testing import CliRunner

import resdsl
from resdsl.backends.codegen import generate
from resdsl.diagnostics import Collector, ResdslError
from resdsl.ir import Network, Scope
from resdsl.runtime.layers import DropPath
from resdsl.semantics.count import Count, LayerCounter
from resdsl.syntax.loader import load
from resdsl.tools.cli import cli
from tests.conftest import shipped_spec_files

CNX = """
block cnx(dim, drop = 0.0) {
    conv_dw = conv(dim, k=7, p=3, groups=dim, bias=true)
    norm    = layernorm(eps=1e-6)
    fc1     = conv(dim * 4, k=1, bias=true)
    gelu
    fc2     = conv(dim, k=1, bias=true)
    gamma   = layer_scale(1e-6)
    drop_path(drop)
    residual(identity)
}

block down(dim) {
    norm = layernorm(eps=1e-6)
    conv = conv(dim, k=2, s=2, bias=true)
}

# timm's layout: stages.N.downsample, stages.N.blocks.M
block cnx_stage(dim, depth, rate, s = 2) {
    downsample = conv(dim, k=s, s=s, bias=true)
    blocks     = stage(cnx(dim, drop=rate * net_index / (net_count - 1)), repeat=depth)
}
"""

# three stages of 2, 2, 3 blocks written in the network
FLAT = (
    CNX
    + """
network convnext_flat(drop_path_rate = 0.3, depths = [2, 2, 3], num_classes = 10) {
    input 3 x 32 x 32
    stem      = conv(16, k=2, s=2, bias=true)
    stem_norm = layernorm(eps=1e-6)
    stage0    = stage(cnx(16, drop=drop_path_rate * net_index / (net_count - 1)), repeat=depths[0])
    down1     = down(32)
    stage1    = stage(cnx(32, drop=drop_path_rate * net_index / (net_count - 1)), repeat=depths[1])
    down2     = down(64)
    stage2    = stage(cnx(64, drop=drop_path_rate * net_index / (net_count - 1)), repeat=depths[2])
    pool      = global_avgpool()
    flatten
    head_norm = layernorm(over="last")
    fc        = linear(num_classes)
}
"""
)

# the same blocks as a stage of stages, each stage a block holding its own stage of blocks
NESTED = (
    CNX
    + """
network convnext_nested(drop_path_rate = 0.3, depths = [2, 2, 3], dims = [16, 32, 64]) {
    input 3 x 32 x 32
    stem   = conv(16, k=2, s=2, bias=true)
    stages = stage(cnx_stage(dims[index], depths[index], drop_path_rate, s=1 if index == 0 else 2), repeat=3)
    pool   = global_avgpool()
    fc     = linear(10)
}
"""
)

# a MobileNetV2 stage: the first block expands by 1, the others by 6
INVERTED = """
block inverted(c, in_c, expand = 6, stride = 1, shortcut = projection) {
    width = in_c * expand
    conv1 = conv(width, k=1)
    bn1   = batchnorm()
    relu6
    conv2 = conv(width, k=3, s=stride, p=1, groups=width)
    bn2   = batchnorm()
    relu6
    conv3 = conv(c, k=1)
    bn3   = batchnorm()
    residual(shortcut)
}

network mb(n = 3) {
    input 3 x 32 x 32
    stem = conv(16, k=3, p=1)
    bn   = batchnorm()
    relu6
    s1   = stage(inverted(24, in_channels, expand=1 if index == 0 else 6), repeat=n, stride=2, shortcut=projection)
    last = 4
    s2   = stage(inverted(32, in_channels, expand=6 if index < count - 1 else last), repeat=n, stride=2)
    pool = global_avgpool()
    fc   = linear(10)
}
"""

# DenseNet: layers whose bottleneck follows their input, and a stage whose width grows by 8
DENSE = """
block dense_layer(growth, width) {
    norm1 = batchnorm()
    relu1 = relu()
    conv1 = conv(width, k=1)
    norm2 = batchnorm()
    relu2 = relu()
    conv2 = conv(growth, k=3, p=1)
    concat()
}

block transition(c) {
    norm = batchnorm()
    relu
    conv = conv(c, k=1)
    pool = avgpool(k=2)
}

block widen(c) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    relu
}

network dense(growth = 8) {
    input 3 x 32 x 32
    conv0  = conv(16, k=3, p=1)
    block1 = stage(dense_layer(growth, width=in_channels // 2 + 4), repeat=4)
    trans1 = transition(24)
    block2 = stage(dense_layer(growth, width=in_channels), repeat=3)
    grow   = stage(widen(in_channels + 8), repeat=3)
    pool   = global_avgpool()
    fc     = linear(10)
}
"""

# channels that double at every block: no single loop says them
DOUBLING = """
block dbl(c) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    relu
}

block grp(c, depth) {
    s = stage(dbl(in_channels * 2), repeat=depth)
}

network doubling(n = 3) {
    input 3 x 16 x 16
    stem = conv(4, k=3, p=1)
    s    = stage(dbl(in_channels * 2), repeat=n)
    g    = grp(8, 2)
    pool = global_avgpool()
    fc   = linear(10)
}
"""

_names = itertools.count()


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"inst{next(_names)}.arch"
    path.write_text(text)
    return path


def _module(net: Network, tmp_path: Path) -> tuple[ModuleType, str]:
    source = generate(net)
    path = tmp_path / f"gen{next(_names)}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, source


def _rates(model: torch.nn.Module) -> list[float]:
    """Every drop-path probability, in module order (the generated file has its own DropPath)."""
    return [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]


def _timm_rates(rate: float, depths: list[int]) -> list[float]:
    """timm's rule, as ConvNeXt writes it: linspace(0, drop_path_rate, sum(depths)) split by depths."""
    dp = [x.tolist() for x in torch.linspace(0, rate, sum(depths), dtype=torch.float64).split(depths)]
    return [p for stage in dp for p in stage]


def _same_network(built: torch.nn.Module, made: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """The same state_dict keys and shapes, the same float64 outputs in eval and train mode."""
    built, made = built.double(), made.double()
    keys = [(k, tuple(v.shape)) for k, v in built.state_dict().items()]
    assert keys == [(k, tuple(v.shape)) for k, v in made.state_dict().items()]
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in built.state_dict().items():  # distinct values everywhere, variances > 0
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen, dtype=value.dtype) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen, dtype=value.dtype) * 0.5
    built.load_state_dict(state)
    made.load_state_dict(state)
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    built.eval(), made.eval()
    assert torch.equal(built(x), made(x))
    built.train(), made.train()  # drop-path masks: the same seed draws the same ones
    torch.manual_seed(7)
    want = built(x)
    torch.manual_seed(7)
    assert torch.equal(made(x), want)
    assert _rates(built) == _rates(made)


def _has(source: str, *texts: str) -> bool:
    """Whether generated source holds each text, whatever ruff's line breaks (spaces ignored)."""
    flat = "".join(source.split()).replace(",)", ")").replace(",]", "]")
    return all("".join(t.split()) in flat for t in texts)


def _stage_calls(source: str, attr: str) -> str:
    """The source of ``self.<attr> = nn.Sequential(...)`` in a generated file's last class."""
    start = source.rindex(f"self.{attr} = nn.Sequential(")  # the network class comes last
    depth, i = 0, source.index("(", start)
    for j in range(i, len(source)):
        depth += {"(": 1, ")": -1}.get(source[j], 0)
        if depth == 0:
            return source[start : j + 1]
    raise AssertionError(attr)


# -- net_index and net_count: timm's drop-path rates ---------------------------------------------


@pytest.mark.parametrize("text", [FLAT, NESTED], ids=["flat", "stage-of-stages"])
def test_drop_path_rises_over_the_network_as_timms(tmp_path: Path, text: str) -> None:
    model = resdsl.build_model(_spec(tmp_path, text))
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx(_timm_rates(0.3, [2, 2, 3]), rel=0, abs=1e-15)
    assert rates[0] == 0.0 and rates[-1] == 0.3


def test_the_stage_of_stages_has_timms_module_names(tmp_path: Path) -> None:
    model = resdsl.build_model(_spec(tmp_path, NESTED))
    keys = list(model.state_dict())
    assert "stages.0.blocks.0.gamma" in keys and "stages.2.blocks.2.fc2.weight" in keys
    assert "stages.1.downsample.weight" in keys
    assert [len(model.stages[i].blocks) for i in range(3)] == [2, 2, 3]


def test_net_index_counts_every_stage_block_at_its_depth(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, NESTED))
    stages = {s.path: s for s in net.root.scopes() if s.kind == "stage"}
    assert (stages["stages"].depth, stages["stages"].net_start, stages["stages"].net_count) == (0, 0, 3)
    inner = [stages[f"stages.{i}.blocks"] for i in range(3)]
    assert [(s.depth, s.net_start, s.net_count) for s in inner] == [(1, 0, 7), (1, 2, 7), (1, 4, 7)]


def test_generated_code_keeps_the_stages_loops_and_equals_build_model(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, FLAT))
    module, source = _module(net, tmp_path)
    _same_network(resdsl.build_model(net), module.convnext_flat(), (3, 32, 32))
    for attr in ("stage0", "stage1", "stage2"):
        assert "for i in range(" in _stage_calls(source, attr)
    assert _has(source, "net_count = depths[0] + depths[1] + depths[2]")  # counted from the parameters
    assert _has(source, "drop=drop_path_rate * (depths[0] + depths[1] + i + 1) / (net_count - 1)")


def test_the_generated_factory_follows_other_depths_as_build_model_does(tmp_path: Path) -> None:
    """net_count and the offsets are expressions of ``depths``, not the numbers of the defaults."""
    spec = _spec(tmp_path, FLAT)
    module, _ = _module(resdsl.compile(spec), tmp_path)
    made = module.convnext_flat(depths=(3, 3, 9))
    built = resdsl.build_model(spec, depths=[3, 3, 9])
    assert _rates(made) == _rates(built) == pytest.approx(_timm_rates(0.3, [3, 3, 9]), rel=0, abs=1e-15)
    _same_network(built, made, (3, 32, 32))


def test_a_block_class_whose_stage_reads_net_index_is_told_it(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, NESTED))
    module, source = _module(net, tmp_path)
    _same_network(resdsl.build_model(net), module.convnext_nested(), (3, 32, 32))
    assert _has(source, "*, net_index: int, net_count: int) -> None:")  # keyword-only, required
    assert _has(source, "for i in range(depth - 1)")  # the stage inside the block class is a loop
    # the outer stages after the first are one loop, each starting its schedule after the ones before
    assert _has(source, "net_index=sum([depths[j] for j in range(i + 1)]), net_count=net_count_1")
    assert _has(source, "for i in range(2)")
    made = module.convnext_nested(depths=(1, 3, 2))
    built = resdsl.build_model(net.source_file, depths=[1, 3, 2])
    assert _rates(made) == _rates(built) == pytest.approx(_timm_rates(0.3, [1, 3, 2]), rel=0, abs=1e-15)


# -- index: a first block that differs by more than its stride ---------------------------------


def test_the_first_block_differs_by_an_argument_other_than_stride(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, INVERTED))
    layers = {layer.path: layer for layer in net.layers()}
    assert [layers[f"s1.{i}.conv1"].shape[0] for i in range(3)] == [16, 144, 144]  # 16 x 1, then 24 x 6
    assert layers["s1.0.conv2"].attrs["s"] == 2 and layers["s1.1.conv2"].attrs["s"] == 1
    assert [layers[f"s2.{i}.conv1"].shape[0] for i in range(3)] == [144, 192, 128]  # the last expands by 4
    module, source = _module(net, tmp_path)
    _same_network(resdsl.build_model(net), module.mb(), (3, 32, 32))
    s1 = _stage_calls(source, "s1")
    assert _has(s1, "Inverted(16, 24, 16, expand=1, stride=2", "[Inverted(24, 24, 24, expand=6) for _ in range(n - 1)]")
    built, made = resdsl.build_model(net.source_file, n=5), module.mb(n=5)
    _same_network(built, made, (3, 32, 32))


# -- in_channels: widths that follow the input ------------------------------------------------


def test_in_channels_is_the_channels_the_checker_finds(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, DENSE))
    blocks = [s for s in net.root.scopes() if s.kind == "block"]
    read = [s for s in blocks if s.path.startswith(("block1.", "block2.", "grow."))]
    for block in read:
        shape = net.layer(block.input).shape
        assert shape is not None
        c = shape[0]
        want = {"block1": c // 2 + 4, "block2": c, "grow": c + 8}[block.path.split(".")[0]]
        assert block.args.get("width", block.args.get("c")) == want, block.path
    assert [net.layer(b.input).shape[0] for b in read[:4]] == [16, 24, 32, 40]  # type: ignore[index]
    grow = [net.layer(b.output).shape[0] for b in read if b.path.startswith("grow.")]  # type: ignore[index]
    assert grow == [56, 64, 72]  # 8 more channels at each block


def test_in_channels_follows_a_changed_input(tmp_path: Path) -> None:
    wide = resdsl.compile(_spec(tmp_path, DENSE.replace("conv(16, k=3, p=1)", "conv(20, k=3, p=1)")))
    widths = [s.args["width"] for s in wide.root.scopes() if s.path.startswith("block1.")]
    assert widths == [20 // 2 + 4, 28 // 2 + 4, 36 // 2 + 4, 44 // 2 + 4]


def test_dense_stages_stay_loops_in_generated_code(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, DENSE))
    module, source = _module(net, tmp_path)
    _same_network(resdsl.build_model(net), module.dense(), (3, 32, 32))
    for attr in ("block1", "block2", "grow"):
        assert "for i in range(" in _stage_calls(source, attr), attr
    assert _has(_stage_calls(source, "block1"), "(16 + growth + i * growth) // 2 + 4")
    built, made = resdsl.build_model(net.source_file, growth=12), module.dense(growth=12)
    _same_network(built, made, (3, 32, 32))


def test_blocks_no_loop_can_say_are_written_one_by_one(tmp_path: Path) -> None:
    net = resdsl.compile(_spec(tmp_path, DOUBLING))
    module, source = _module(net, tmp_path)
    _same_network(resdsl.build_model(net), module.doubling(), (3, 16, 16))
    s = _stage_calls(source, "s")
    assert _has(s, "Dbl(4, 8), Dbl(8, 16), Dbl(16, 32))") and "range(" not in s
    with pytest.raises(ValueError, match="generated with 3 blocks in stage s"):
        module.doubling(n=4)  # the calls fix the repeat: refused, never a different network
    with pytest.raises(ValueError, match="generated with 2 blocks in stage s"):
        module.Grp(8, 8, 3)


def test_a_block_class_whose_instances_need_different_unrolled_stages_is_e506(tmp_path: Path) -> None:
    text = DOUBLING.replace("g    = grp(8, 2)", "g    = grp(8, 2)\n    h    = grp(8, 3)")
    spec = _spec(tmp_path, text)
    with pytest.raises(ResdslError) as found:
        generate(resdsl.compile(spec))
    assert found.value.code == "E506" and "h.s has 3" in str(found.value)
    out = tmp_path / "never.py"
    result = CliRunner().invoke(cli, ["build", str(spec), "-o", str(out)])
    assert result.exit_code == 1 and "error[E506]" in result.output and "Traceback" not in result.output
    assert not out.exists()  # no partial file


# -- where instance values are bound ------------------------------------------------------------


def _codes_and_help(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    result = resdsl.check(_spec(tmp_path, text))
    return [(d.code, d.help or "") for d in result.diagnostics if d.is_error]


BLOCK = "block b(c, drop = 0.0) {\n    conv1 = conv(c, k=3, p=1)\n    drop_path(drop)\n    residual(identity)\n}\n"


@pytest.mark.parametrize(
    "statement",
    [
        "x = b(8, drop=0.1 * index)",  # a block outside a stage
        "s = stage(b(8), repeat=count)",  # the stage's own arguments
        "s = stage(b(8), repeat=2, stride=net_index + 1)",
        "w = in_channels",
    ],
)
def test_instance_values_outside_a_stage_block_are_unknown_names(tmp_path: Path, statement: str) -> None:
    text = BLOCK + f"network n() {{\n    input 8 x 8 x 8\n    {statement}\n}}\n"
    (found,) = _codes_and_help(tmp_path, text)
    assert found[0] == "E201" and "bound only in the arguments of the block a stage repeats" in found[1]


def test_instance_values_are_unknown_in_block_bodies_and_defaults(tmp_path: Path) -> None:
    text = (
        BLOCK
        + "block c(w, p = index) {\n    conv1 = conv(in_channels, k=1)\n}\n"
        + "block d(w) {\n    s = stage(b(w, drop=0.1 * index / count + net_index * 0.0), repeat=2)\n}\n"
    )
    found = _codes_and_help(tmp_path, text)  # a library file: checked without a network
    assert [code for code, _ in found] == ["E201", "E201"]  # index in c's default, in_channels in its body
    assert all("bound only in" in help for _, help in found)


def test_a_parameter_of_the_same_name_shadows_an_instance_value(tmp_path: Path) -> None:
    text = BLOCK + (
        "network n(index = 0.5) {\n    input 8 x 8 x 8\n"
        "    s = stage(b(8, drop=index * 0.2 + count * 0.01), repeat=3)\n}\n"
    )
    model = resdsl.build_model(_spec(tmp_path, text))
    assert _rates(model) == [0.13, 0.13, 0.13]  # the parameter, not 0, 1, 2


def test_a_stage_repeats_one_block(tmp_path: Path) -> None:
    text = (
        BLOCK
        + "block e(c) {\n    conv1 = conv(c, k=1)\n}\n"
        + ("network n() {\n    input 8 x 8 x 8\n    s = stage(b(8) if index == 0 else e(8), repeat=2)\n}\n")
    )
    (found,) = _codes_and_help(tmp_path, text)
    assert found[0] == "E205"


def test_an_error_in_one_block_names_that_block(tmp_path: Path) -> None:
    text = BLOCK + "network n() {\n    input 8 x 8 x 8\n    s = stage(b(8, drop=0.1 / (1 - index)), repeat=3)\n}\n"
    result = resdsl.check(_spec(tmp_path, text))
    (found,) = [d for d in result.diagnostics if d.is_error]
    assert found.code == "E209" and any("block s.1 (index 1" in note for note in found.notes)


def test_a_stride_chosen_by_index_is_not_w404(tmp_path: Path) -> None:
    text = 'import "std/blocks.arch"\nnetwork n() {\n    input 3 x 32 x 32\n    stem = conv(16, k=3, p=1)\n'
    text += "    s = stage(basic(32, stride=2 if index == 0 else 1, shortcut=projection), repeat=3)\n}\n"
    result = resdsl.check(_spec(tmp_path, text))
    assert result.diagnostics == []
    net = result.networks[0]
    assert [layer.attrs["s"] for layer in net.layers() if layer.path.endswith("conv1")] == [2, 1, 1]


# -- counting before placing --------------------------------------------------------------------


def _count(path: Path, net: Network) -> Count:
    """What the layer counter finds for a compiled network, counted afresh from its spec."""
    program = load(str(path), Collector())
    assert net.definition is not None
    return LayerCounter(program).network(net.definition.body, net.params, program.definitions(program.root))


def _stage_blocks(net: Network) -> dict[int, int]:
    depths: dict[int, int] = {}
    for scope in net.root.scopes():
        if scope.kind == "stage":
            depths[scope.depth] = depths.get(scope.depth, 0) + scope.repeat
    return depths


@pytest.mark.parametrize("text", [FLAT, NESTED], ids=["flat", "nested"])
def test_the_counter_counts_what_elaboration_places(tmp_path: Path, text: str) -> None:
    path = _spec(tmp_path, text)
    net = resdsl.compile(path)
    counted = _count(path, net)
    assert counted.nodes == len(net.order) and counted.unsure is None
    assert counted.stage_blocks == _stage_blocks(net)


@pytest.mark.parametrize("text", [INVERTED, DENSE, DOUBLING], ids=["mb", "dense", "doubling"])
def test_blocks_that_read_in_channels_leave_the_depths_below_unsure(tmp_path: Path, text: str) -> None:
    """in_channels exists only while placing: the counter knows the stages' own sizes, not what
    lies in their blocks (each counts as one node there; placing holds the limit)."""
    path = _spec(tmp_path, text)
    net = resdsl.compile(path)
    counted = _count(path, net)
    assert counted.unsure == 1 and counted.nodes < len(net.order)
    assert counted.stage_blocks[0] == _stage_blocks(net)[0]


@pytest.mark.parametrize("path", shipped_spec_files(), ids=lambda p: p.stem)
def test_shipped_specs_count_as_before(path: Path) -> None:
    """The counter that now also gives net_count sizes every shipped spec exactly as placing
    does (it reads residuals by the placer's rules, so a plain net's residual(none) is no node).
    Only the families that number their blocks read instance values (ConvNeXt: its stage
    table by index, every family's stochastic depth by net_index; MobileNet: in_channels; Res2Net: index)."""
    for net in resdsl.check(path).networks:
        counted = _count(path, net)
        reads = {name for s in net.root.scopes() if isinstance(s, Scope) for name in s.instance_names}
        assert reads <= READERS.get(_family(path), set()), (path.stem, reads)
        if "in_channels" in reads:  # sized while placing (blocks that read their input channels)
            assert counted.unsure == 1 and counted.nodes < len(net.order)
            continue
        assert counted.nodes == len(net.order) and counted.unsure is None
        assert counted.stage_blocks == _stage_blocks(net)


_DROP_PATH = {"net_index", "net_count"}  # timm's drop_path_rate schedule, block by block
READERS = {
    "convnext": {"index"} | _DROP_PATH,
    "mobilenetv2": {"in_channels"} | _DROP_PATH,
    "efficientnet": {"in_channels"} | _DROP_PATH,
    "mobilenetv3": {"in_channels", "index"} | _DROP_PATH,
    "regnetx": {"in_channels"} | _DROP_PATH,
    "regnety": {"in_channels"} | _DROP_PATH,
    "res2net50": {"index"},  # Res2Net: a stage's first block (index == 0) runs its chunks alone
    "res2next50": {"index"},
} | {f"resnetrs{n}": _DROP_PATH for n in (50, 101, 152)}
# ViT and DeiT: one stage of blocks, so timm's schedule over the network reads the stage's own
# index and count
READERS |= {family: {"index", "count"} for family in ("vit", "deit", "deit3")}


def _family(path: Path) -> str:
    return path.stem.split("_")[0]


def test_a_huge_stage_of_blocks_counted_one_by_one_stops_at_the_limit(tmp_path: Path) -> None:
    text = BLOCK + "network n() {\n    input 8 x 8 x 8\n    s = stage(b(8, drop=index * 0.0), repeat=1000000000)\n}\n"
    result = resdsl.check(_spec(tmp_path, text))
    (found,) = result.diagnostics
    assert found.code == "E601" and "more than 100,000 layers" in found.message


def test_blocks_sized_by_in_channels_are_held_to_the_limit_while_placing(tmp_path: Path) -> None:
    text = BLOCK + "network n() {\n    input 8 x 8 x 8\n    s = stage(b(in_channels), repeat=300)\n}\n"
    result = resdsl.check(_spec(tmp_path, text), max_layers=500)  # 300 blocks of 3 layers
    (found,) = result.diagnostics
    assert found.code == "E601" and "more than 500 layers" in found.message
    assert resdsl.check(_spec(tmp_path, text), max_layers=1000).diagnostics == []


def test_net_count_below_a_stage_sized_by_in_channels_is_e218(tmp_path: Path) -> None:
    text = BLOCK + "block g(c, depth) {\n    s = stage(b(c, drop=0.1 * net_index / net_count), repeat=depth)\n}\n"
    text += "network n() {\n    input 8 x 8 x 8\n    gs = stage(g(8, depth=in_channels // 4), repeat=2)\n}\n"
    (found,) = _codes_and_help(tmp_path, text)
    assert found[0] == "E218"
    fixed = text.replace("depth=in_channels // 4", "depth=2")
    assert _rates(resdsl.build_model(_spec(tmp_path, fixed))) == pytest.approx([0.0, 0.025, 0.05, 0.075])
