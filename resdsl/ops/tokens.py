"""The ops of token sequences (vision transformers), each defined once: ``patch_embed`` (a map
cut into patches, one token each), ``class_token`` and ``pos_embed`` (learnable tensors of the
enclosing module, timm's ``cls_token`` and ``pos_embed``), ``attention`` (multi-head
self-attention) and ``token_pool`` (the class token, or the mean of the others, as features).

A token shape is ``N x C`` per sample: N tokens of C channels (a tensor ``[batch, N, C]``, the
channels last as timm holds them). ``layernorm``, ``linear``, ``gelu``, ``drop_path``,
``layer_scale`` and ``residual(identity)`` take tokens too; the map ops refuse them (E307).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, OwnParam, P, Shape, ShapeError, fmt_shape, is_tokens
from resdsl.ops.lowering import linear_nodes
from resdsl.ops.rules import spatial


def tokens_input(op: str, ins: Sequence[Shape]) -> Shape:
    """The input of a token op, which must be an N x C sequence (E307)."""
    if not is_tokens(ins[0]):
        raise ShapeError(
            "E307",
            f"{op} needs an N x C token input, got {fmt_shape(ins[0])}",
            help="a map becomes tokens through patch_embed(dim, patch)",
        )
    return ins[0]


# -- patch_embed -----------------------------------------------------------------------------


def _patch_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c, h, w = spatial("patch_embed", ins)
    p, dim = a["patch"], a["dim"]
    recovered = ((h // p) * (w // p), dim)
    for axis, size in (("height", h), ("width", w)):
        if size % p:
            raise ShapeError(
                "E312",
                f"the input {axis} {size} is not divisible by the patch size {p} "
                f"({size} = {size // p} * {p} + {size % p})",
                [f"input {fmt_shape((c, h, w))}, patches {p} x {p}"],
                help=f"feed an input whose sides are multiples of {p} (--input), or a patch size that divides them",
                recovered=recovered,
            )
    return recovered


def _patch_onnx(e: Any, a: Mapping[str, Any]) -> str:
    p, dim, cin = a["patch"], a["dim"], e.shape[0]
    bound = 1 / math.sqrt(cin * p * p)
    inputs = [e.x, e.param("proj.weight", (dim, cin, p, p), ("uniform", bound))]
    if a["bias"]:
        inputs.append(e.param("proj.bias", (dim,), ("uniform", bound)))
    y = e.node("Conv", inputs, kernel_shape=[p, p], strides=[p, p])
    y = e.node("Reshape", [y, e.ints([0, dim, -1], "tokens")])
    return e.node("Transpose", [y], perm=[0, 2, 1])


PATCH_EMBED = OpDef(
    "patch_embed",
    "A C x H x W map cut into patch x patch patches, each one token of `dim` channels: a conv with "
    "kernel = stride = patch (module `proj`), flattened to (H/patch * W/patch) x dim (timm's PatchEmbed).",
    (
        P("dim", "int", aliases=("embed_dim",), minimum=1),
        P("patch", "int", aliases=("patch_size",), minimum=1),
        P("bias", "bool", True),
    ),
    _patch_shape,
    lambda a, cin, shape: Ctor("PatchEmbed", (cin, a["dim"], a["patch"]), {"bias": a["bias"]}, runtime=True),
    param_count=lambda i, o, a: o[1] * i[0] * a["patch"] ** 2 + (o[1] if a["bias"] else 0),
    macs=lambda i, o, a: o[0] * o[1] * i[0] * a["patch"] ** 2,
    channels=lambda a, cin: a["dim"],
    stride=lambda a: a["patch"],
    weighted=True,
    stateful=True,
    example="patch_embed(768, 16)",
    onnx=_patch_onnx,
    torch_defaults={"PatchEmbed": {"bias": True}},
)


# -- class_token and pos_embed: tensors of the enclosing module --------------------------------


def _class_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    n, c = tokens_input("class_token", ins)
    return (n + 1, c)


def _class_onnx(e: Any, a: Mapping[str, Any]) -> str:
    c = e.shape[1]
    token = e.param("", (1, 1, c), ("const", 0.0))  # the layer's own key: cls_token
    batch = e.node("Shape", [e.x], start=0, end=1)
    size = e.node("Concat", [batch, e.ints([1, c], "size")], axis=0)
    return e.node("Concat", [e.node("Expand", [token, size]), e.x], axis=1)


CLASS_TOKEN = OpDef(
    "class_token",
    "A learnable token put before the others (N x C -> N+1 x C); its state_dict key is the layer's "
    "own name, shape [1, 1, C] (timm's cls_token).",
    (),
    _class_shape,
    None,
    param_count=lambda i, o, a: i[1],
    stateful=True,
    own_param=OwnParam(
        shape=lambda a, c: (1, 1, c),
        fill=lambda a: 0.0,
        apply=lambda x, param, shape, a: f"torch.cat([{param}.expand({x}.shape[0], -1, -1), {x}], 1)",
    ),
    example="cls_token = class_token()",
    onnx=_class_onnx,
)


def _pos_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    n, c = tokens_input("pos_embed", ins)
    skip = a["skip"]
    if a["length"] != n - skip:
        skipped = f", {skip} of them skipped" if skip else ""
        raise ShapeError(
            "E313",
            f"the position embedding has {a['length']} positions, its input {n} tokens{skipped}",
            [f"input {fmt_shape((n, c))}"],
            help=f"the length is the number of tokens it is added to (the patches, and the class token "
            f"unless skipped): {n - skip} fits this input, or feed the input it was made for (--input)",
            recovered=ins[0],
        )
    return ins[0]


def _pos_apply(x: str, param: str, shape: Shape, a: Mapping[str, Any]) -> str:
    """The tokens plus the embedding; the first ``skip`` tokens (a class token) pass as they are."""
    skip = a["skip"]
    return f"torch.cat([{x}[:, :{skip}], {x}[:, {skip}:] + {param}], 1)" if skip else f"{x} + {param}"


def _pos_onnx(e: Any, a: Mapping[str, Any]) -> str:
    n, c = e.shape
    skip, embed = a["skip"], e.param("", (1, a["length"], c), ("const", 0.0))
    if not skip:
        return e.node("Add", [e.x, embed])
    axis, cut = e.ints([1], "axis"), e.ints([skip], "skip")
    first = e.node("Slice", [e.x, e.ints([0], "start"), cut, axis])
    rest = e.node("Slice", [e.x, cut, e.ints([n], "end"), axis])
    return e.node("Concat", [first, e.node("Add", [rest, embed])], axis=1)


POS_EMBED = OpDef(
    "pos_embed",
    "A learnable position embedding of `length` x C added to the tokens after the first `skip` "
    "(timm's no_embed_class: the class token has none); its state_dict key is the layer's own name, "
    "shape [1, length, C] (timm's pos_embed).",
    (P("length", "int", minimum=1), P("skip", "int", 0, minimum=0)),
    _pos_shape,
    None,
    param_count=lambda i, o, a: a["length"] * i[1],
    stateful=True,
    own_param=OwnParam(
        shape=lambda a, c: (1, a["length"], c),
        fill=lambda a: 0.0,
        apply=_pos_apply,
    ),
    example="pos_embed = pos_embed(197)",
    onnx=_pos_onnx,
)


# -- attention -------------------------------------------------------------------------------


def _attn_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    n, c = tokens_input("attention", ins)
    heads = a["heads"]
    if c % heads:
        raise ShapeError(
            "E311",
            f"embed_dim {c} is not divisible by num_heads={heads} ({c} / {heads} = {c / heads:g})",
            [f"input {fmt_shape((n, c))}"],
            help="each head takes embed_dim / num_heads channels: choose a number of heads that divides the width",
            recovered=ins[0],
        )
    return ins[0]


def _attn_params(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    c = i[1]
    return 4 * c * c + (3 * c if a["qkv_bias"] else 0) + (c if a["proj_bias"] else 0)


def _attn_macs(i: Shape, o: Shape, a: Mapping[str, Any]) -> int:
    """qkv and proj as linear layers (4 N C^2), and the two products of attention, q k^T and
    the weights times v (N^2 C each, over all heads); the softmax and scaling are not counted."""
    n, c = i
    return 4 * n * c * c + 2 * n * n * c


def _attn_onnx(e: Any, a: Mapping[str, Any]) -> str:
    n, c = e.shape
    heads = a["heads"]
    d = c // heads
    qkv = linear_nodes(e, e.x, "qkv.", c, 3 * c, a["qkv_bias"])
    qkv = e.node("Reshape", [qkv, e.ints([0, n, 3, heads, d], "heads")])
    qkv = e.node("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # 3 x B x heads x N x d
    q, k, v = (
        e.node("Squeeze", [part, e.ints([0], "axis")]) for part in e.nodes("Split", [qkv], 3, axis=0, num_outputs=3)
    )
    scores = e.node("MatMul", [q, e.node("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = e.node("Mul", [scores, e.param("scale", (1,), ("const", d**-0.5), stored=False)])
    out = e.node("MatMul", [e.node("Softmax", [scores], axis=-1), v])
    out = e.node("Reshape", [e.node("Transpose", [out], perm=[0, 2, 1, 3]), e.ints([0, n, c], "merged")])
    return linear_nodes(e, out, "proj.", c, c, a["proj_bias"])


ATTENTION = OpDef(
    "attention",
    "Multi-head self-attention on N x C tokens (timm's Attention): one `qkv` linear, `heads` heads "
    "of C / heads channels, scaled dot-product attention, the `proj` linear.",
    (
        P("heads", "int", aliases=("num_heads",), minimum=1),
        P("qkv_bias", "bool", True),
        P("proj_bias", "bool", True),
    ),
    _attn_shape,
    lambda a, cin, shape: Ctor(
        "Attention", (cin, a["heads"]), {"qkv_bias": a["qkv_bias"], "proj_bias": a["proj_bias"]}, runtime=True
    ),
    param_count=_attn_params,
    macs=_attn_macs,
    weighted=True,
    stateful=True,
    example="attention(12)",
    onnx=_attn_onnx,
    torch_defaults={"Attention": {"qkv_bias": True, "proj_bias": True}},
)


# -- token_pool ------------------------------------------------------------------------------


def _pool_shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    n, c = tokens_input("token_pool", ins)
    if a["pool"] == "avg" and a["prefix"] >= n:
        raise ShapeError(
            "E303",
            f"token_pool: {n} tokens leave none to average after {a['prefix']} prefix tokens",
            help="lower prefix= to the number of class tokens",
        )
    return (c,)


def _pool_onnx(e: Any, a: Mapping[str, Any]) -> str:
    n = e.shape[0]
    if a["pool"] == "token":
        first = e.node("Gather", [e.x, e.ints([0], "first")], axis=1)
        return e.node("Squeeze", [first, e.ints([1], "axis")])
    rest = e.node("Slice", [e.x, e.ints([a["prefix"]], "start"), e.ints([n], "end"), e.ints([1], "axes")])
    return e.node("ReduceMean", [rest, e.ints([1], "axis")], keepdims=0)


TOKEN_POOL = OpDef(
    "token_pool",
    'N x C tokens to C features: the first (class) token (`pool="token"`), or the mean of the '
    'tokens after the `prefix` class tokens (`pool="avg"`), as timm\'s global_pool.',
    (P("pool", "str", "token", choices=("token", "avg")), P("prefix", "int", 1, minimum=0)),
    _pool_shape,
    lambda a, cin, shape: Ctor("TokenPool", (), {"pool": a["pool"], "num_prefix_tokens": a["prefix"]}, runtime=True),
    returns_input=False,
    example='token_pool("token")',
    onnx=_pool_onnx,
    torch_defaults={"TokenPool": {"pool": "token", "num_prefix_tokens": 1}},
)

OPS = (PATCH_EMBED, CLASS_TOKEN, POS_EMBED, ATTENTION, TOKEN_POOL)
