"""``res2_hierarchy``: Res2Net's hierarchical split (Gao et al. 2019), defined once.

The input's ``width * scale`` channels are split into ``scale`` chunks of ``width``. Each of
the first ``scale - 1`` chunks runs through a k x k conv, a batchnorm and a ReLU, after the
previous chunk's result is added to it (chunk 0, and every chunk in a stage's first block,
``first``, runs alone); the results are concatenated, with the last chunk as it is, or through
a k x k average pool with the conv's stride in a first block. Its modules are attributes of the
enclosing block, with timm's names (``convs.i``, ``bns.i``, ``pool``, and the chunk size
``width``), so timm's Bottle2neck keys are the spec's; each is the table's own conv, batchnorm
or avgpool, so its counts, its module, its generated code and its ONNX nodes are theirs.
``norm=false`` (the inference build, batchnorms folded) gives convs with a bias and no ``bns``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resdsl.ops.base import OpDef, OwnModule, OwnModules, P, Shape, ShapeError
from resdsl.ops.conv import CONV
from resdsl.ops.norm import BATCHNORM
from resdsl.ops.pool import AVGPOOL
from resdsl.ops.rules import spatial, window


def _bound(op: OpDef, **given: Any) -> dict[str, Any]:
    """Every parameter of ``op`` bound: ``given``, and the defaults for the others."""
    out = {p.name: p.default for p in op.params if not p.required and p.default_from is None}
    out.update(given)
    return out


def _conv_args(a: Mapping[str, Any]) -> dict[str, Any]:
    k = a["k"]
    return _bound(CONV, out=a["width"], k=k, s=a["s"], p=k // 2, groups=a["groups"], bias=not a["norm"])


def _pool_args(a: Mapping[str, Any]) -> dict[str, Any]:
    return _bound(AVGPOOL, k=a["k"], s=a["s"], p=a["k"] // 2)


def _chunk_shape(shape: Shape, a: Mapping[str, Any]) -> Shape:
    return (a["width"], *shape[1:])


def _out(shape: Shape, a: Mapping[str, Any]) -> Shape:
    """The output shape: ``width * scale`` channels on the map of each chunk's conv."""
    _, h, w = shape
    k, s = a["k"], a["s"]
    size = [window("res2_hierarchy", n, k, s, k // 2, 1, False, axis) for n, axis in ((h, "height"), (w, "width"))]
    return (a["width"] * a["scale"], *size)


def _shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c = spatial("res2_hierarchy", ins)[0]
    width, scale, s = a["width"], a["scale"], a["s"]
    out = _out(ins[0], a)
    if c != width * scale:
        raise ShapeError(
            "E310",
            f"res2_hierarchy splits its input into scale={scale} chunks of width={width}, "
            f"{width * scale} channels, but the input has {c}",
            notes=[f"input channels {c}, width * scale = {width} * {scale} = {width * scale}"],
            help=f"make the layer before it output width * scale = {width * scale} channels, or pick width and scale "
            f"whose product is {c}",
            recovered=out,
        )
    if width % a["groups"]:
        raise ShapeError(
            "E302",
            f"res2_hierarchy chunk width {width} is not divisible by groups={a['groups']}",
            help="choose groups that divide the width",
            recovered=out,
        )
    if s > 1 and not a["first"]:
        raise ShapeError(
            "E213",
            f"res2_hierarchy with stride {s} must be a first block's (first=true): only there is the last chunk "
            "pooled to the stride",
            help="pass first=true where the block strides (timm: stride > 1 or a projection shortcut)",
            recovered=out,
        )
    return out


def _params(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    chunk = _chunk_shape(i, a)
    per = CONV.param_count(chunk, _chunk_shape(o, a), _conv_args(a))
    if a["norm"]:
        per += BATCHNORM.param_count(_chunk_shape(o, a), _chunk_shape(o, a), _bound(BATCHNORM))
    return (a["scale"] - 1) * per


def _macs(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    return (a["scale"] - 1) * CONV.macs(_chunk_shape(i, a), _chunk_shape(o, a), _conv_args(a))


def _modules(a: Mapping[str, Any], shape: Shape, minus: Callable[[Any, int], Any]) -> tuple[OwnModule, ...]:
    """timm's Bottle2neck attributes: the chunk size, ``convs``, ``bns`` and ``pool``."""
    width, n = a["width"], minus(a["scale"], 1)
    out = [OwnModule("width", None, value=width), OwnModule("convs", "conv", _conv_args(a), width, shape, count=n)]
    if a["norm"]:
        out.append(OwnModule("bns", "batchnorm", _bound(BATCHNORM), width, shape, count=n))
    out.append(OwnModule("pool", "avgpool", _pool_args(a), width, shape, present=a["first"]))
    return tuple(out)


def _forward(x: str, target: str, a: Mapping[str, Any], local: Callable[[str], str]) -> list[str]:
    """timm's Bottle2neck loop: ``spx`` the chunks, ``spo`` the outputs, ``sp`` the running sum."""
    spx, spo, sp, i, conv, bn = (local(n) for n in ("spx", "spo", "sp", "i", "conv", "bn"))
    if a["norm"]:
        loop = f"for {i}, ({conv}, {bn}) in enumerate(zip(self.convs, self.bns, strict=True)):"
        run = f"{bn}({conv}({sp}))"
    else:
        loop, run = f"for {i}, {conv} in enumerate(self.convs):", f"{conv}({sp})"
    return [
        f"{spx} = torch.split({x}, self.width, 1)",
        f"{spo}: list[Tensor] = []",
        f"{sp} = {spx}[0]",
        loop,
        f"    {sp} = {spx}[{i}] if {i} == 0 or self.pool is not None else {sp} + {spx}[{i}]",
        f"    {sp} = torch.relu({run})",
        f"    {spo}.append({sp})",
        "# the last chunk as it is, or pooled to the stride in a stage's first block",
        "if self.pool is not None:",
        f"    {spo}.append(self.pool({spx}[-1]))",
        "else:",
        f"    {spo}.append({spx}[-1])",
        f"{target} = torch.cat({spo}, 1)",
    ]


def _onnx(e: Any, a: Mapping[str, Any]) -> str:
    """Split, then per chunk [Add,] Conv, BatchNormalization, Relu; the last chunk [AveragePool]; Concat."""
    width, n = a["width"], a["scale"] - 1
    chunks = e.nodes("Split", [e.x, e.ints([width] * a["scale"], "split")], a["scale"], axis=1)
    chunk, out = (width, *e.shape[1:]), (width, *_out(e.shape, a)[1:])
    outs: list[str] = []
    sp = chunks[0]
    for i in range(n):
        sp = chunks[i] if i == 0 or a["first"] else e.node("Add", [sp, chunks[i]])
        sp = e.sub("conv", _conv_args(a), f"convs.{i}", sp, chunk)
        if a["norm"]:
            sp = e.sub("batchnorm", _bound(BATCHNORM), f"bns.{i}", sp, out)
        sp = e.node("Relu", [sp])
        outs.append(sp)
    outs.append(e.sub("avgpool", _pool_args(a), "pool", chunks[-1], chunk) if a["first"] else chunks[-1])
    return e.node("Concat", outs, axis=1)


RES2_HIERARCHY = OpDef(
    "res2_hierarchy",
    "Res2Net's hierarchical split: scale chunks of width channels, each of the first scale - 1 through a k x k "
    "conv-BN-ReLU after the previous one's result is added (not in a first block), the last kept (pooled to the "
    "stride where first); its modules are the block's convs, bns and pool (timm's Bottle2neck).",
    (
        P("width", "int", minimum=1),
        P("scale", "int", minimum=2),
        P("k", "int", 3, aliases=("kernel", "kernel_size"), minimum=1),
        P("s", "int", 1, aliases=("stride",), minimum=1),
        P("groups", "int", 1, minimum=1),
        P("first", "bool", False),
        P("norm", "bool", True),
    ),
    _shape,
    None,
    param_count=_params,
    macs=_macs,
    stride=lambda a: a["s"],
    stateful=True,
    weighted=True,
    example="res2_hierarchy(26, 4, s=stride, first=true)",
    onnx=_onnx,
    own_modules=OwnModules(_modules, _forward, ("width", "convs", "bns", "pool")),
)

OPS = (RES2_HIERARCHY,)
