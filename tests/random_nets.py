"""Test helper: random valid ``.arch`` programs for the differential test of the two back ends
(tests/backends/codegen/test_codegen_random.py: the generated module and ``build_model`` are the same network).

Each program defines blocks whose bodies are drawn too, then a network that uses them. The
generator tracks the channels and map size after every layer it writes, so it picks shortcut
kinds, widths and strides that check cleanly; the few programs that do not are dropped by the
test. One program in eight is a vision transformer on tokens (:mod:`tests.random_token_nets`).
:data:`COVERAGE` lists, section by section of docs/language.md, what the programs hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from tests.random_token_nets import token_programs

KINDS = ["identity", "projection", "projection_all", "zero_pad", "avgpool_projection", "none"]
ACTS = [
    "relu", "gelu", "silu", "sigmoid", "leaky_relu(0.2)", "leaky_relu(negative_slope=0.1)",
    "relu6", "hardswish", "hardsigmoid()",
]  # fmt: skip
NORMS = ["batchnorm", "groupnorm(2)", "batchnorm(eps=1e-3)"]
OPS = [
    "relu",
    "gelu()",
    "silu",
    "sigmoid",
    "leaky_relu(slope=0.1)",
    "batchnorm()",
    "batchnorm(eps=1e-3, momentum=0.2)",
    "batchnorm(affine=false)",
    "groupnorm(2, eps=1e-4)",
    "dropout(0.1)",
    "dropout(p=rate / 2)",
    "identity()",
    "avgpool(k=3, s=1, p=1)",
    "avgpool(3, 1, 1, count_include_pad=false)",
    "maxpool(k=3, s=1, p=1)",
    "maxpool(kernel_size=3, stride=1, padding=1, ceil_mode=true)",
]  # fmt: skip  (a bare `identity` names the shortcut kind: a statement must say identity())

# the ops of residual training and the newer activations and norms, in the network body
NEW_OPS = [
    "relu6",
    "hardswish()",
    "hardsigmoid",
    "layernorm()",  # over the channels of the map (LayerNorm2d)
    'layernorm(over="last", eps=1e-6)',  # over the map's last dimension (its width)
    "layernorm(affine=false)",
    "drop_path(0.1)",
    "drop_path(p=rate / 2)",
    "drop_path(0.1, scale_by_keep=false)",
    "drop_path(linspace(0, rate, 4)[2])",  # timm's float32 schedule: torch.linspace in generated code
    "layer_scale(0.5)",
    "layer_scale(0.5, dims=3)",  # torchvision's (C, 1, 1)
]

# What the programs hold, by section of docs/language.md (the test's docstring and the report cite it).
COVERAGE = {
    "Files": "import of std/blocks.arch; blocks and a network in one file, blocks used before their "
    "definition; # comments on lines of their own and after statements; two statements on one line; "
    "a network alias (network random_alias = random_net(...)), which is the network tested",
    "Parameters and values": "block and network parameters with defaults, a default computed from an "
    "earlier parameter (w = c * 2 / 2); whole numbers, decimals (1e-3, rate / 2), strings (mode), booleans, "
    "lists and indexing (ws[0], [1, 3][1]), shortcut kinds as values; + - * / // % and unary minus, "
    "'/' exact on whole numbers and ordinary on decimals",
    "Statements": "input, meta (title, mean, std, zero_init_residual), named op and block layers, anonymous "
    "layers with and without parentheses (shared stateless modules), stage(...) with repeat (a number or a "
    "parameter), stride and shortcut, value bindings, residual(...) with every argument",
    "Residual additions": "every kind (identity, zero_pad, projection, projection_all, avgpool_projection, "
    "none) where the shapes agree and where they change; two residuals in one block (the second adding "
    "back from the first, present or none); project_from; norm=false, norm=a normalization layer; name=; "
    "residuals in the network body",
    "Layers of layers": "sequential groups of ops, blocks and sequential groups (also as a block's whole "
    "body, and with a linear layer that flattens); gates of a block, of a sequential group and of a single "
    "op; layer-valued parameters (act = relu, norm = batchnorm) used bare, called, and called with "
    "arguments, passed down from the network; conditions that choose values (strides, kernels) and that "
    "choose layers: a bare op or a call on either side, a block or a group on one side, nested conditions, "
    "a binding on one side (identity names the shortcut kind) and a layer on the other, a side that strides, "
    "inside sequential(...), in the network body; tests with == != < <= > >= on numbers, strings, booleans",
    "Nesting": "a block whose stride is applied by a block inside it, blocks inside stages, a stage inside "
    "a block, a stage of such blocks, blocks inside a sequential group inside a block",
    "Ops": "conv (positional, named and aliased arguments, groups, dilation, bias, in_channels=), "
    "batchnorm (eps, momentum, affine), groupnorm, layernorm (over the channels of a C x H x W map, over "
    "its last dimension, over features after a flatten; eps, affine), relu, relu6, hardswish, hardsigmoid, "
    "silu, gelu, sigmoid, leaky_relu, maxpool (ceil), avgpool (count_include_pad), global_avgpool, flatten, "
    "linear (bias, in_features=, a spatial input, tokens), dropout, drop_path (a number, a parameter, an "
    "instance value, a linspace value, scale_by_keep=false; in a block's residual branch and in the "
    "network body), layer_scale (in a block's branch and in the network body, dims=3, a layer named "
    "block), identity; mul through gate(...); concat() "
    "and bare concat (a block ending in a concatenation, a concatenation followed by a residual that "
    "projects what it made); the token ops (patch_embed, class_token, pos_embed, attention, token_pool: "
    "see Tokens)",
    "Numbers and lists": "builtins in widths (make_divisible, round, ceil, floor, min, max, abs, sqrt, "
    "log (also with base=), int, float, len, sum, range (with a step)), powers, and/or/not in conditions, "
    "list comprehensions (in the network's values and indexed in a block argument; two for clauses over "
    "range(...))",
    "Modern blocks": "stages named by prefix= and start= (s1.b1), stages inside sequential(...) (blocks.i.j), "
    "residual(identity_if_same) in stages whose first block changes the shape (no skip there) and in "
    "single blocks, residual(projection, step_names=[...]) (downsample.conv, downsample.bn), "
    "pointwise_linear in a channels MLP with a bias and without, res2_hierarchy (Res2Net) in a stage "
    "whose first block strides and pools, grouped or not, ResNeSt's radix_sum, radix_softmax (radix 1: "
    "a sigmoid; over groups) and the radix_combine merge reading an earlier layer",
    "Tokens: transformers": "a map cut into patches (patch_embed, positional and named, bias=false), "
    "after a conv stem or straight from the input; class_token; pos_embed over all tokens and with skip=; "
    "attention (heads positional and as num_heads, qkv_bias, proj_bias=false); pre-norm encoder blocks "
    "with residual(identity) on tokens, layernorm (eps, affine=false), an MLP of linear layers on tokens "
    "(a block, inline, a sequential group), gelu, drop_path and layer_scale on tokens (a layer scale block "
    "or op chosen by a condition); a stage of them with timm's dpr (index, count) or net_index, single "
    "blocks, std/vit.arch's vit_block (imported); relu, gelu, linear, drop_path, layer_scale and "
    "layernorm on tokens in the network body; "
    'token_pool("token") and token_pool("avg", prefix=0 or 1) with fc_norm; token programs are also '
    "exported to ONNX and run in onnxruntime",
    "Instance values": "stage block arguments reading index (a first block that differs: mode, a layer "
    "chosen by it; widths c + index * growth), count (the last block differs), net_index and net_count (a "
    "drop-path rate rising over the network, also in a stage inside a block, which the block class is "
    "told), in_channels (a block as wide as its input, DenseNet's width = in_channels // 2 + 2, widths "
    "growing by a fixed amount); stages of concatenating blocks, whose channels grow block by block",
}

CELL_SEP = "\n    "


@dataclass
class Shape:
    """What the generator knows of the tensor so far: channels and map size."""

    channels: int
    size: int


@dataclass
class Unit:
    """A drawn block ``unit``/``cell``: its definition and how it changes the shape."""

    name: str
    text: str
    cond_stride: bool  # strides once more when flag is false
    needs_even: bool  # uses groupnorm(2) or a reduction of 2 somewhere


def _kind(draw: st.DrawFn, changes: bool, grows: bool) -> str:
    """A shortcut kind that fits: identity only where the shape is kept, zero_pad only where
    channels do not shrink."""
    kinds = [k for k in KINDS if (k != "identity" or not changes) and (k != "zero_pad" or grows)]
    return draw(st.sampled_from(kinds))


def _cond_layer(draw: st.DrawFn) -> tuple[str, bool]:
    """A statement whose condition chooses a layer; whether it strides when flag is false."""
    options = [
        ("mid = identity if flag else conv(c, k=1)", False),  # a binding (the kind) or a layer
        ("mid = relu if flag else gelu", False),  # bare ops on both sides
        ("mid = conv(c, k=1) if flag else identity()", False),  # calls on both sides
        ("mid = (gelu if c > 4 else silu) if flag else relu", False),  # nested
        ("mid = sequential(conv(c, k=1), batchnorm()) if flag else identity()", False),  # a group on one side
        ("mid = identity() if flag else conv(c, k=3, s=2, p=1)", True),  # a side that strides
        ('mid = act if mode == "a" else relu()', False),  # a layer-valued parameter, a string test
        ("mid = sequential(conv(c, k=1), relu if flag else silu)", False),  # inside a group
        ("mid = conv(c, k=3, p=1, d=1) if c >= 8 else conv(c, kernel_size=3, padding=2, dilation=2)", False),
    ]
    return draw(st.sampled_from(options))


@st.composite
def unit_block(draw: st.DrawFn, name: str) -> Unit:
    """A block with a random body: convs (strided, conditionally strided), norms and
    activations taken from parameters, conditional layers, groups, gates and residuals."""
    lines: list[str] = []
    pre = draw(st.booleans())  # pre-activation: the projection branches off after the shared norm-act
    tap = pre and draw(st.booleans())
    if pre:  # (a block no network uses is checked on its own, and that check refuses project_from=pre
        # when pre = act(): a known bug of the static check, so a tapped block says relu())
        lines += ["pre_bn = norm()", "pre = relu()" if tap else draw(st.sampled_from(["pre = act()", "pre = relu()"]))]
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["half = w // 2 * 2", "k3 = [1, 3][1]", "neg = -(-c)", "m = (c + 4) % 100"])))
    first = draw(
        st.sampled_from(
            [
                "conv1 = conv(w, k=3, s=stride, p=1)",
                "conv1 = conv(w, 3, stride, 1)",  # positional
                "conv1 = conv(out_channels=w, kernel_size=3, stride=stride, padding=1)",  # aliases
                'conv1 = conv(w, k=1, s=stride if mode == "a" else 1)',  # v1 vs v1.5: the stride moves
            ]
        )
    )
    lines.append(first)
    lines.append(draw(st.sampled_from(["bn1 = norm()", "bn1 = norm(eps=1e-3)", "bn1 = batchnorm(momentum=0.2)"])))
    lines.append(draw(st.sampled_from(["act", "act()", "relu"])))
    if first.endswith("else 1)"):
        lines.append('conv2 = conv(c, k=3, s=1 if mode == "a" else stride, p=1, in_channels=w)')
    else:
        lines.append(
            draw(st.sampled_from(["conv2 = conv(c, k=1, in_channels=w)", "conv2 = conv(c, k=3, p=1, groups=2)"]))
        )
    cond_stride = False
    if draw(st.booleans()):
        statement, cond_stride = _cond_layer(draw)
        lines.append(statement)
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    "s = sequential(conv(c, k=1, bias=true), batchnorm(), relu if flag else silu)",
                    "g{} = gate(sequential(global_avgpool(), conv(c, k=1, bias=true), sigmoid))",
                    "g{} = gate(sigmoid)",
                    "g{} = gate(squeeze_excite(c, reduction=2))",
                    "avgpool(k=3, s=1, p=1)",
                    "maxpool(kernel_size=3, stride=1, padding=1)",
                    "bn2 = batchnorm(affine=false)",
                    "relu",
                    "relu6",
                    "hardswish",
                    "ln{} = layernorm()",
                    'layernorm(over="last")',  # the map's width: instances at other sizes need a class each
                    "drop_path(drop)",  # the residual branch, dropped per sample in training
                    "dp{} = drop_path(0.1)",
                    "gamma = layer_scale(1e-6)",
                    "ls{} = layer_scale(init=0.5)",
                    "block = layer_scale(init=0.25)",  # a layer named with a word that is a keyword only at the top
                ]
            ),
            max_size=3,
            unique=True,
        )
    )
    lines += [line.format(i) for i, line in enumerate(extras)]
    extra = draw(st.sampled_from(["", ", norm=false", ", norm=norm", ', name="shortcut"']))
    lines.append(f"residual(shortcut{extra}{', project_from=pre' if tap else ''})")
    if draw(st.booleans()):  # a second residual: it adds back what the first left, present or none
        lines += ["relu1 = relu()", "conv3 = conv(c, k=1)", 'residual(identity, name="second")']
    lines.append("relu")
    body = _layout(draw, lines)
    header = (
        f"block {name}(c, stride = 1, shortcut = projection, flag = true, act = relu, norm = batchnorm, "
        f'mode = "a", w = c * 2 / 2, drop = 0.0) {{'
    )
    return Unit(name, f"{header}{CELL_SEP}{body}\n}}\n", cond_stride, True)


def _layout(draw: st.DrawFn, lines: list[str]) -> str:
    """Statements one a line, some two on a line, with comments here and there."""
    out: list[str] = []
    for line in lines:
        if out and draw(st.integers(0, 9)) == 0 and "#" not in out[-1]:
            out[-1] += "  " + line  # whitespace alone separates statements
        else:
            out.append(line)
        if draw(st.integers(0, 9)) == 0:
            out[-1] += "  # a comment"
    if draw(st.booleans()):
        out.insert(0, "# a block drawn at random")
    return CELL_SEP.join(out)


OUTER = """
# the stride is applied by a block inside this one
block outer(c, stride = 1, kind = projection, flag = true, ok = projection) {{
    a = unit(c, stride=stride, shortcut=kind, flag=flag)
    {middle}
    residual(ok)
}}
"""
OUTER_MIDDLE = [
    "b = unit(c)",
    "st = stage(unit(c), repeat=2, stride=1)",  # a stage inside a block
    "st = stage(unit(c, drop=0.1 * net_index / net_count), repeat=2)",  # the block class is told net_index
    "sq = sequential(unit(c), conv(c, k=1))",  # a block in a group in a block
    "b = cell(c, act=gelu)",
]
WRAP = """
block wrap(c, inner_flag = true) {
    body = unit(c) if inner_flag else sequential(conv(c, k=3, p=1), batchnorm(), relu)
}
"""
# DenseNet: a layer that concatenates its input and what it made; one that concatenates, then
# projects the sum back with a residual (which adds back from the concatenation)
DENSE = """
block dense(growth, width = 4) {
    bn1 = batchnorm()
    relu1 = relu()
    conv1 = conv(width, k=1)
    conv2 = conv(growth, k=3, p=1)
    concat()
}
"""
MIXED = """
block mixed(c) {
    conv1 = conv(c, k=1)
    concat
    conv2 = conv(c, k=1)
    bn1 = batchnorm()
    residual(projection)
}
"""
WIDEN = """
block widen(c) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    relu6
}
"""
# MobileNet's inverted residual: a skip only where the shapes agree; ConvNeXt's channels MLP
INVERTED = """
block inverted(c, cin, stride = 1, expand = 2, hs = false) {
    mid     = make_divisible(cin * expand, 4)
    conv_pw = conv(mid, k=1)
    bn1     = batchnorm()
    hardswish if hs and not (stride > 1) else relu6
    conv_dw = conv(mid, k=3, s=stride, p=1, groups=mid)
    bn2     = batchnorm()
    relu6
    conv_pwl = conv(c, k=1)
    bn3     = batchnorm()
    residual(identity_if_same)
}
"""
MLP = """
block channel_mlp(c, ratio = 2, bias = true) {
    conv_dw = conv(c, k=3, p=1, groups=c, bias=true)
    norm    = layernorm(eps=0.000001)
    fc1     = pointwise_linear(c * ratio, bias=bias)
    gelu
    fc2     = pointwise_linear(c)
    residual(identity)
}
"""
# RegNet's names for the projection's conv and norm
STEPPED = """
block stepped(c, stride = 1) {
    a = conv(c, k=3, s=stride, p=1)
    a_bn = batchnorm()
    relu
    residual(projection, step_names=["conv", "bn"])
}
"""
# Res2Net's hierarchical split: convs.i, bns.i (and a pool in a first block) of the block itself
RES2 = """
block res2(c, stride = 1, scale = 2, first = false) {
    w = c // 2
    conv1 = conv(w * scale, k=1)
    bn1   = batchnorm()
    relu
    res2_hierarchy(w, scale, s=stride, groups=2 if w % 2 == 0 else 1, first=first)
    conv3 = conv(c, k=1)
    bn3   = batchnorm()
    residual(projection)
    relu
}
"""
# ResNeSt's split attention: R splits summed, pooled, attended over the radix, recombined
SPLAT = """
block splat(c, radix = 2, groups = 1) {
    conv = conv(c * radix, k=3, p=1)
    bn0  = batchnorm()
    act0 = relu
    radix_sum(radix)
    pool = global_avgpool()
    fc1  = conv(c, k=1, groups=groups, bias=true)
    relu
    fc2  = conv(c * radix, k=1, groups=groups, bias=true)
    radix_softmax(radix, groups=groups)
    radix_combine(radix, splits=act0)
}
"""
TWICE = """
block twice(c, kind = projection) {
    conv1 = conv(c, k=3, p=1)
    bn1   = batchnorm()
    residual(kind)
    relu1 = relu()
    conv2 = conv(c, k=1)
    residual(identity, name="second")
    relu
}
"""


# widths computed with the builtins and comprehensions (network values: width = 8, ws = [4, 8],
# wl = [make_divisible(v * 1.5, 4) for v in ws] = [8, 12]); each is worth the key it is under
WIDTH_EXPRS = {
    4: ["max(4, ceil(width / 2.5))", "round(4.4)", "sum([2, 2])", "len(ws) * 2", "min(ws) ** 1", "abs(-4)",
        "int(sqrt(16))", "[v // 2 for v in ws][1]", "len([a * b for a in range(2) for b in ws])"],
    8: ["make_divisible(width * 0.9)", "floor(log(256) / log(2))", "wl[0]", "2 ** 3",
        "max(ws) if n > 1 or not deep else 8", "int(float(width))", "[v * 2 for v in ws if v < 8][0]",
        "floor(log(256, base=2))", "range(0, 10, 4)[2]"],
}  # fmt: skip


@dataclass
class Net:
    """The network body being drawn and the shape after its last layer."""

    lines: list[str]
    shape: Shape
    unit: Unit
    cell: Unit
    branch: Shape  # what a residual in the network body adds back: the input, then the last sum


def _stride(draw: st.DrawFn, net: Net, budget: int = 2) -> int:
    return draw(st.sampled_from([1, 2])) if net.shape.size >= 2 * budget else 1


def _width(draw: st.DrawFn, width: int) -> str:
    """``width`` written as a number, a parameter or a computation worth it."""
    return draw(st.sampled_from([str(width), "ws[0]" if width == 4 else "width", *WIDTH_EXPRS[width]]))


def _unit_call(draw: st.DrawFn, net: Net, block: Unit, width: int, stride: int, name: str) -> str:
    flag = draw(st.booleans())
    extra = 2 if block.cond_stride and not flag else 1
    if net.shape.size < 2 * stride * extra:
        flag, extra = True, 1
    changes = width != net.shape.channels or stride * extra != 1
    kind = _kind(draw, changes, width >= net.shape.channels)
    args = [_width(draw, width)]
    args.append(f"stride={stride}")
    args.append(f"shortcut={kind}")
    args.append(f"flag={'true' if flag else 'false'}")
    if draw(st.booleans()):
        args.append(f"act={draw(st.sampled_from(ACTS))}")
    if draw(st.booleans()):
        args.append(f"norm={draw(st.sampled_from([*NORMS, 'nrm']))}")
    if draw(st.booleans()):
        args.append("mode=" + draw(st.sampled_from(['"a"', '"b"'])))
    net.shape = Shape(width, net.shape.size // (stride * extra))
    return f"{name} = {block.name}({', '.join(args)})"


def _item(draw: st.DrawFn, net: Net, i: int) -> list[str]:
    """One or a few statements of the network body."""
    choice = draw(
        st.sampled_from(
            [
                "unit",
                "cell",
                "outer",
                "wrap",
                "stage",
                "stage_outer",
                "seq",
                "std",
                "gate",
                "top",
                "cond",
                "op",
                "new_op",
                "twice",
                "dense",
                "grow",
                "instance",
                *MODERN,
            ]
        )
    )
    width = draw(st.sampled_from([4, 8]))
    c, size = net.shape.channels, net.shape.size
    if choice in ("unit", "cell"):
        return [_unit_call(draw, net, net.unit if choice == "unit" else net.cell, width, _stride(draw, net), f"b{i}")]
    if choice == "outer":
        stride = _stride(draw, net)
        flag = draw(st.booleans()) if size >= 4 * stride else True
        extra = 2 if net.unit.cond_stride and not flag else 1
        inner = _kind(draw, width != c or stride * extra != 1, width >= c)
        outer = _kind(draw, width != c or stride * extra != 1, width >= c)
        net.shape = Shape(width, size // (stride * extra))
        return [f"b{i} = outer({width}, stride={stride}, kind={inner}, flag={str(flag).lower()}, ok={outer})"]
    if choice == "wrap":
        net.shape = Shape(width, size)
        return [f"b{i} = wrap({width}, inner_flag={str(draw(st.booleans())).lower()})"]
    if choice in ("stage", "stage_outer"):
        stride = _stride(draw, net)
        kind = _kind(draw, width != c or stride != 1, width >= c)
        repeat = draw(st.sampled_from(["1", "2", "3", "n"]))
        shortcut = f", shortcut={kind}" if choice == "stage" else ""
        block = f"unit({width}, shortcut={kind})" if choice == "stage" else f"outer({width}, ok={kind}, kind={kind})"
        net.shape = Shape(width, size // stride)
        return [f"b{i} = stage({block}, repeat={repeat}, stride={stride}{shortcut})"]
    if choice == "seq":
        stride = _stride(draw, net)
        net.shape = Shape(width, size // stride)
        inner = f"unit({width}, stride={stride}, shortcut=projection)"
        return [f"b{i} = sequential(unit({width}), conv({width}, k=1), sequential(batchnorm(), relu), {inner})"]
    if choice == "std":
        return [_std(draw, net, i, width)]
    if choice == "gate":
        branch = draw(
            st.sampled_from(
                [
                    f"squeeze_excite({c}, reduction=2)",
                    f"sequential(global_avgpool(), conv({c}, k=1, bias=true), sigmoid)",
                    "sigmoid",
                    f"sequential(conv({c}, k=3, p=1), sigmoid)",
                ]
            )
        )
        return [f"g{i} = gate({branch})"]
    if choice == "top":  # a residual in the network body: it adds back the input or the last one's sum
        stride = _stride(draw, net)
        lines = [f"c{i} = conv({width}, k=3, s={stride}, p=1)"]
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["relu", "leaky_relu", "sigmoid"])))  # right before the residual
        b = net.branch
        kind = _kind(draw, width != b.channels or size // stride != b.size, width >= b.channels)
        lines.append(f'residual({kind}, name="down{i}")')
        net.shape = net.branch = Shape(width, size // stride)
        return lines
    if choice == "cond":  # conditions in the network body, on its parameters
        return [
            draw(
                st.sampled_from(
                    [
                        f"h{i} = identity() if deep else conv({c}, k=1)",
                        f"h{i} = identity if deep else conv({c}, k=1)",  # a binding or a layer
                        f"h{i} = relu if deep else gelu",
                        f'h{i} = conv({c}, k=1) if mode != "a" else batchnorm()',
                    ]
                )
            )
        ]
    if choice == "twice":
        net.shape = Shape(width, size)
        return [f"b{i} = twice({width}, kind={_kind(draw, width != c, width >= c)})"]
    if choice in ("dense", "grow"):
        return [_dense(draw, net, i, width, choice == "grow")]
    if choice == "new_op":
        return draw(st.lists(st.sampled_from(NEW_OPS), min_size=1, max_size=3, unique=True))
    if choice == "instance":
        return [_instance_stage(draw, net, i, width)]
    if choice in MODERN:
        return [_modern(draw, net, i, width, choice)]
    return draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=2, unique=True))


def _dense(draw: st.DrawFn, net: Net, i: int, width: int, grow: bool) -> str:
    """Concatenating blocks: alone, a stage whose channels grow by ``growth`` at each block
    (its width from in_channels), a concat followed by a residual; or (``grow``) a stage of
    growing widths, from index or from in_channels."""
    c = net.shape.channels
    forms = ["widen_index", "widen_in"] if grow else ["one", "stage", "mixed"]
    form = draw(st.sampled_from(forms))
    growth = draw(st.sampled_from([2, 4]))
    if form == "one":
        net.shape = Shape(c + growth, net.shape.size)
        return f"b{i} = dense({growth})"
    if form == "mixed":
        net.shape = Shape(width, net.shape.size)
        return f"b{i} = mixed({width})"
    repeat = draw(st.sampled_from([2, 3]))
    if form == "stage":
        net.shape = Shape(c + repeat * growth, net.shape.size)
        bottleneck = draw(st.sampled_from(["in_channels // 2 + 2", "in_channels", "4"]))
        return f"b{i} = stage(dense({growth}, width={bottleneck}), repeat={repeat})"
    if form == "widen_index":  # c + index * growth: the loop writes block i + 1's width
        net.shape = Shape(width + (repeat - 1) * growth, net.shape.size)
        return f"b{i} = stage(widen({width} + index * {growth}), repeat={repeat})"
    net.shape = Shape(c + repeat * growth, net.shape.size)
    return f"b{i} = stage(widen(in_channels + {growth}), repeat={repeat})"


def _instance_stage(draw: st.DrawFn, net: Net, i: int, width: int) -> str:
    """A stage whose block arguments read instance values: a drop-path rate rising over the
    network (net_index, net_count), a first or last block that differs (index, count), a width
    that is the block's input (in_channels)."""
    stride = _stride(draw, net)
    c = net.shape.channels
    args = [_width(draw, width)]
    if draw(st.booleans()):
        args = ["in_channels"]
        width = c
    kind = _kind(draw, width != c or stride != 1, width >= c)
    extra = draw(
        st.lists(
            st.sampled_from(
                [
                    "drop=rate * net_index / net_count",
                    "drop=0.3 * net_index / (net_count + 1)",
                    'mode="a" if index == 0 else "b"',
                    'mode="b" if index < count - 1 else "a"',
                    "act=relu6 if index == 0 else hardswish",
                    "norm=layernorm if index > 0 else batchnorm",
                ]
            ),
            min_size=1,
            max_size=2,
            unique_by=lambda a: a.split("=")[0],
        )
    )
    repeat = draw(st.sampled_from(["2", "3", "n"]))
    net.shape = Shape(width, net.shape.size // stride)
    block = f"unit({', '.join([*args, f'shortcut={kind}', *extra])})"
    return f"b{i} = stage({block}, repeat={repeat}, stride={stride}, shortcut={kind})"


MODERN = ["named", "nested", "inverted", "inverted_one", "mlp", "stepped", "res2", "splat"]


def _modern(draw: st.DrawFn, net: Net, i: int, width: int, form: str) -> str:
    """The constructs of the modern families: named and numbered stages, stages in a
    sequential group, skips only where the shapes agree, named projection steps, per-position
    linear layers."""
    c, size = net.shape.channels, net.shape.size
    stride = _stride(draw, net)
    if form == "mlp":
        ratio, bias = draw(st.sampled_from([1, 2])), draw(st.sampled_from(["true", "false"]))
        return f"b{i} = channel_mlp({c}, ratio={ratio}, bias={bias})"
    net.shape = Shape(width, size // stride)
    if form == "stepped":
        return f"b{i} = stepped({width}, stride={stride})"
    if form == "splat":  # radix 1: a sigmoid instead of the softmax
        radix, groups = draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([1, 2]))
        return f"b{i} = splat({width}, radix={radix}, groups={groups})"
    if form == "res2":  # a stage whose first block strides and pools its last chunk
        scale = draw(st.sampled_from([2, 3, 4]))
        return f"b{i} = stage(res2({width}, scale={scale}, first=index == 0), repeat=2, stride={stride})"
    if form == "inverted_one":  # a skip where the block keeps the shape, none where it changes it
        return f"b{i} = inverted({width}, cin={c}, stride={stride}, hs={draw(st.sampled_from(['true', 'false']))})"
    repeat = draw(st.sampled_from(["2", "3", "n"]))
    w = _width(draw, width)
    if form == "inverted":  # the first block changes the shape: no skip there, skips after
        expand = draw(st.sampled_from(["index + 1", "2", "1.5"]))
        return f"b{i} = stage(inverted({w}, cin=in_channels, expand={expand}), repeat={repeat}, stride={stride})"
    kind = _kind(draw, width != c or stride != 1, width >= c)
    named = f'prefix="{draw(st.sampled_from(["b", "block"]))}", start={draw(st.sampled_from([0, 1]))}'
    if form == "named":
        return f"b{i} = stage(unit({w}, shortcut={kind}), repeat={repeat}, stride={stride}, shortcut={kind}, {named})"
    second = draw(st.sampled_from(["", f", {named}"]))
    return (
        f"b{i} = sequential(stage(unit({width}, shortcut={kind}), repeat=1, stride={stride}, shortcut={kind}), "
        f"stage(unit({width}), repeat={repeat}{second}))"
    )


def _std(draw: st.DrawFn, net: Net, i: int, width: int) -> str:
    """A shipped block (std/blocks.arch)."""
    c, size = net.shape.channels, net.shape.size
    stride = _stride(draw, net)
    block = draw(st.sampled_from(["basic", "bottleneck", "bottleneck_v1", "preact_basic", "preact_bottleneck", "se"]))
    out = width * 4 if block in ("bottleneck", "bottleneck_v1", "preact_bottleneck", "se") else width
    kind = _kind(draw, out != c or stride != 1, out >= c)
    net.shape = Shape(out, size // stride)
    if block == "basic":
        norm = draw(st.sampled_from(["", ", norm=groupnorm(2)", ", norm=nrm"]))
        return f"b{i} = basic({width}, stride={stride}, shortcut={kind}{norm})"
    if block in ("bottleneck", "bottleneck_v1"):
        v1 = ", stride_1x1=true" if block == "bottleneck_v1" else ""
        return f"b{i} = bottleneck({width}, stride={stride}, groups=2, width_per_group=32, shortcut={kind}{v1})"
    if block == "se":
        return f"b{i} = se_bottleneck({width}, stride={stride}, reduction=4, shortcut={kind})"
    return f"b{i} = {block}({width}, stride={stride}, shortcut={kind})"


HEADS = [
    "avgpool = global_avgpool()\n    fc = linear(3)",
    "avgpool = global_avgpool()\n    fc = linear(3, in_features={c})",
    "fc = linear(3)",  # a spatial input, flattened
    "flat = flatten()\n    fc = linear(3, bias=false)",
    "avgpool = global_avgpool()\n    drop = dropout(rate)\n    fc = linear(3)",
    "head = sequential(global_avgpool(), linear(3))",  # a linear in a group flattens itself
    "head = sequential(flatten(), linear(out_features=3))",
    'avgpool = global_avgpool()\n    flat = flatten()\n    ln = layernorm(over="last")\n    fc = linear(3)',  # features
    "avgpool = global_avgpool()\n    flat = flatten()\n    layernorm(eps=1e-6)\n    fc = linear(3)",
]
METAS = [
    "",
    'meta { title = "random"  zero_init_residual = true }',
    "meta { mean = [0.5, 0.5, 0.5] }",
    "meta { mean = [0.5, 0.4, 0.3]  std = [0.25, 0.25, 0.25] }",
]


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, str]:
    """A random program and the name of the network to test in it: one in eight a transformer
    on tokens (:func:`token_programs`), the others on maps."""
    if draw(st.integers(0, 7)) == 0:
        return draw(token_programs())
    unit = draw(unit_block("unit"))
    cell = draw(unit_block("cell"))
    width = draw(st.sampled_from([4, 8]))
    stem = draw(
        st.sampled_from(
            [f"stem = conv({width}, k=3, p=1)", f"stem = sequential(conv({width}, 3, 1, 1), batchnorm(), relu)"]
        )
    )
    net = Net([stem], Shape(width, 16), unit, cell, Shape(3, 16))
    for i in range(draw(st.integers(1, 4))):
        net.lines += _item(draw, net, i)
    net.lines.append(draw(st.sampled_from(HEADS)).format(c=net.shape.channels))
    meta = draw(st.sampled_from(METAS))
    body = "\n    ".join(net.lines)
    middle = draw(st.sampled_from(OUTER_MIDDLE))
    blocks = [unit.text, cell.text, OUTER.format(middle=middle), WRAP, TWICE, DENSE, MIXED, WIDEN, INVERTED, MLP]
    blocks += [STEPPED, RES2, SPLAT]
    order = draw(st.permutations(range(len(blocks))))  # blocks may be used before they are defined
    params = 'width = 8, deep = true, n = 2, rate = 0.2, ws = [4, 8], mode = "a", nrm = batchnorm'
    body = "wl = [make_divisible(v * 1.5, 4) for v in ws]\n    " + body
    text = (
        'import "std/blocks.arch"\n'
        + "".join(blocks[j] for j in order)
        + f"network random_net({params}) {{\n    input 3 x 16 x 16\n    {meta}\n    {body}\n}}\n"
    )
    if draw(st.booleans()):
        args = draw(st.sampled_from(["deep=false", "n=1", "deep=false, n=3", 'mode="b"']))
        return text + f"network random_alias = random_net({args})\n", "random_alias"
    return text, "random_net"
