"""Token ops of vision transformers (timm's VisionTransformer, resdsl's generated ViT modules),
read off a traced forward and among a model's layers.

In a forward, with ``P`` a parameter of the module itself:

- ``torch.cat([P.expand(B, -1, -1), x], 1)`` (P of shape 1 x 1 x C) is ``P = class_token()``;
- ``x + P`` (P of shape 1 x L x C) is ``P = pos_embed(length=L)``; added to the patch tokens
  before the class token is put first (timm's ``no_embed_class``, DeiT III) it is
  ``pos_embed(length=L, skip=1)`` after the class token, which sums the same, as is
  ``torch.cat([x[:, :1], x[:, 1:] + P], 1)`` (the form resdsl generates);
- ``x[:, 0]`` is ``token_pool`` (the class token), ``x[:, k:].mean(dim=1)`` is
  ``token_pool(pool="avg", prefix=k)``.

Among the layers, a module named like one of resdsl's runtime modules whose attributes hold the
op's arguments and whose output on a probe is the runtime module's with the same weights is that
op: ``PatchEmbed`` (``proj`` a conv of kernel = stride, no norm) is ``patch_embed``,
``Attention`` (a fused ``qkv`` and ``proj``, no query/key norm, no dropout) is ``attention``,
``TokenPool`` is ``token_pool``. An ``Attention`` that computes something else is refused with
what the op lacks (E903: :func:`unexpressed_attention`), rather than traced into tensor code the
table has no op for.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable

import torch
import torch.fx
from torch import nn

Found = tuple[str, str, dict[str, object]]  # (op, the own parameter it names or "", arguments)
_ADD = (operator.add, operator.iadd, torch.add)
_CAT = (torch.cat, torch.concat)
_ALL = slice(None, None, None)


Steps = dict[torch.fx.Node, list[Found]]


def token_steps(graph: torch.fx.Graph, module: nn.Module) -> tuple[Steps, set[torch.fx.Node]]:
    """The token ops of one traced forward, each at the node that ends it, and the nodes inside
    them (the expand, the slices, an addition moved after the class token) to pass over."""
    steps: dict[torch.fx.Node, list[Found]] = {}
    skip: set[torch.fx.Node] = set()
    for node in graph.nodes:  # the concatenations first: they claim an addition before them
        found = _class_token(node, module, skip) or _skipping_pos_embed(node, module, skip)
        if found:
            steps[node] = found
    for node in graph.nodes:
        if node not in skip and node not in steps and (found := _pos_embed(node, module) or _token_pool(node, skip)):
            steps[node] = found
    return steps, skip


def _own(node: object, module: nn.Module, dims: int = 3) -> nn.Parameter | None:
    """The module's own parameter (not a child's) that ``node`` fetches, of ``dims`` dimensions."""
    if not isinstance(node, torch.fx.Node) or node.op != "get_attr" or "." in str(node.target):
        return None
    value = getattr(module, str(node.target), None)
    return value if isinstance(value, nn.Parameter) and value.dim() == dims and value.shape[0] == 1 else None


def _cat_parts(node: torch.fx.Node) -> list[object] | None:
    """The tensors of ``torch.cat(tensors, 1)`` (the token axis); None for any other node."""
    if node.op != "call_function" or node.target not in _CAT:
        return None
    tensors = node.args[0] if node.args else node.kwargs.get("tensors")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return list(tensors) if dim == 1 and isinstance(tensors, list | tuple) else None  # type: ignore[arg-type]


def _class_token(node: torch.fx.Node, module: nn.Module, skip: set[torch.fx.Node]) -> list[Found] | None:
    """``torch.cat([P.expand(B, -1, -1), x], 1)``; where ``x`` is the patch tokens plus a position
    embedding (timm's no_embed_class), that embedding follows as ``pos_embed(skip=1)``."""
    parts = _cat_parts(node)
    if parts is None or len(parts) != 2 or not isinstance(parts[0], torch.fx.Node):
        return None
    expand = parts[0]
    if not (expand.op == "call_method" and expand.target == "expand" and list(expand.args[2:]) == [-1, -1]):
        return None
    token = _own(expand.args[0], module)
    if token is None or token.shape[1] != 1 or len(expand.users) != 1:
        return None
    skip.add(expand)
    found: list[Found] = [("class_token", str(expand.args[0].target), {})]  # type: ignore[union-attr]
    rest = parts[1]
    embed = _pos_embed(rest, module) if isinstance(rest, torch.fx.Node) and len(rest.users) == 1 else None
    if embed:  # added before the class token is put first: the same sums after it, past it
        skip.add(rest)  # type: ignore[arg-type]
        op, name, args = embed[0]
        found.append((op, name, {**args, "skip": 1}))
    return found


def _pos_embed(node: torch.fx.Node, module: nn.Module) -> list[Found] | None:
    """``x + P`` for a parameter P of 1 x L x C."""
    if node.op != "call_function" or node.target not in _ADD or len(node.args) != 2:
        return None
    embeds = [(a, p) for a in node.args if (p := _own(a, module)) is not None]
    if len(embeds) != 1:
        return None
    attr, param = embeds[0]
    return [("pos_embed", str(attr.target), {"length": int(param.shape[1])})]  # type: ignore[union-attr]


def _slice_of(node: object) -> tuple[torch.fx.Node, object] | None:
    """(x, s) for ``x[:, s]``."""
    if not isinstance(node, torch.fx.Node) or node.op != "call_function" or node.target is not operator.getitem:
        return None
    source, index = node.args[0], node.args[1]
    if not isinstance(source, torch.fx.Node) or not isinstance(index, tuple) or len(index) != 2 or index[0] != _ALL:
        return None
    return source, index[1]


def _skipping_pos_embed(node: torch.fx.Node, module: nn.Module, skip: set[torch.fx.Node]) -> list[Found] | None:
    """``torch.cat([x[:, :k], x[:, k:] + P], 1)``: the embedding added past the first k tokens."""
    parts = _cat_parts(node)
    if parts is None or len(parts) != 2 or not isinstance(parts[1], torch.fx.Node):
        return None
    head, added = _slice_of(parts[0]), parts[1]
    embed = _pos_embed(added, module)
    tail = next((s for a in added.args if (s := _slice_of(a)) is not None), None)
    if head is None or tail is None or not embed or head[0] is not tail[0]:
        return None
    cut, rest = head[1], tail[1]
    if not (isinstance(cut, slice) and isinstance(rest, slice) and cut.start in (None, 0) and cut.step is None):
        return None
    if not (isinstance(cut.stop, int) and rest.start == cut.stop and rest.stop is None and rest.step is None):
        return None
    skip.update(n for n in (parts[0], added, *added.args) if isinstance(n, torch.fx.Node) and n.op != "get_attr")
    op, name, args = embed[0]
    return [(op, name, {**args, "skip": cut.stop})]


def _token_pool(node: torch.fx.Node, skip: set[torch.fx.Node]) -> list[Found] | None:
    """``x[:, 0]`` (the class token), or ``x[:, k:].mean(dim=1)`` (the tokens after k)."""
    sliced = _slice_of(node)
    if sliced is not None and sliced[1] == 0:
        return [("token_pool", "", {})]
    if node.op != "call_method" or node.target != "mean" or node.kwargs.get("keepdim", False):
        return None
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dim not in (1, (1,), [1]):
        return None
    sliced = _slice_of(node.args[0])  # a mean over dim 1 of anything else may be a map's channels
    part = sliced[1] if sliced is not None else None
    if not (isinstance(part, slice) and isinstance(part.start, int) and part.stop is None and part.step is None):
        return None
    skip.add(node.args[0])  # type: ignore[arg-type]
    return [("token_pool", "", {"pool": "avg"} | ({} if part.start == 1 else {"prefix": part.start}))]


# -- layers ------------------------------------------------------------------------------------

Op = tuple[str, dict[str, object]]


def token_layer(module: nn.Module) -> Op | None:
    """The token op a layer is (``patch_embed``, ``attention``, ``token_pool``); None for any
    other layer. Read afresh each time (no cache): a model changed between two imports is read
    as it is now."""
    reader = _READERS.get(type(module).__name__)
    return reader(module) if reader is not None else None


def unexpressed_attention(module: nn.Module) -> str:
    """What a module named ``Attention`` with a fused ``qkv`` has that the ``attention`` op lacks
    (a query/key norm, dropout, a gate), so that it is refused as such rather than for the tensor
    code it runs; "" for the op itself and any other module."""
    if type(module).__name__ != "Attention" or not isinstance(getattr(module, "qkv", None), nn.Linear):
        return ""
    if token_layer(module) is not None:
        return ""
    return _lacks(module) or "its output on a probe is not the op's (scaled dot-product attention of heads)"


def _patch_embed(module: nn.Module) -> Op | None:
    """timm's PatchEmbed (and resdsl's): ``proj`` a k x k conv of stride k, then flattened to tokens."""
    proj = getattr(module, "proj", None)
    if not isinstance(proj, nn.Conv2d) or not _only(module, {"proj"}):
        return None
    if module.state_dict().keys() - {"proj.weight", "proj.bias"}:
        return None
    k = proj.kernel_size
    if k[0] != k[1] or proj.stride != k or proj.padding != (0, 0) or proj.dilation != (1, 1) or proj.groups != 1:
        return None
    if getattr(module, "flatten", True) is not True or getattr(module, "dynamic_img_pad", False):
        return None
    size = getattr(module, "img_size", None)
    h, w = tuple(size) if isinstance(size, tuple | list) and len(size) == 2 else (2 * k[0], 2 * k[0])
    args: dict[str, object] = {"dim": proj.out_channels, "patch": k[0]}
    args |= {} if proj.bias is not None else {"bias": False}
    ours: Runtime = ("PatchEmbed", (proj.in_channels, proj.out_channels, k[0]), {"bias": proj.bias is not None})
    return ("patch_embed", args) if _computes(module, ours, (2, proj.in_channels, h, w)) else None


def _attention(module: nn.Module) -> Op | None:
    """timm's Attention (and resdsl's): a fused ``qkv``, heads of dim / num_heads channels,
    scaled dot-product attention, ``proj``; nothing the op lacks (:func:`_lacks`)."""
    qkv, proj, heads = getattr(module, "qkv", None), getattr(module, "proj", None), getattr(module, "num_heads", None)
    if not isinstance(qkv, nn.Linear) or not isinstance(proj, nn.Linear) or not isinstance(heads, int):
        return None
    if _lacks(module):
        return None
    dim = qkv.in_features
    if qkv.out_features != 3 * dim or (proj.in_features, proj.out_features) != (dim, dim) or dim % heads:
        return None
    biases: dict[str, object] = {"qkv_bias": qkv.bias is not None, "proj_bias": proj.bias is not None}
    args: dict[str, object] = {"heads": heads} | {k: v for k, v in biases.items() if not v}
    ours = ("Attention", (dim, heads), biases)
    return ("attention", args) if _computes(module, ours, (2, 5, dim)) else None


def _lacks(module: nn.Module) -> str:
    """What a module of attention has that the op does not ("" where nothing)."""
    for name in ("q_norm", "k_norm", "norm"):
        if not isinstance(getattr(module, name, nn.Identity()), nn.Identity):
            return f"`{name}` is a {type(getattr(module, name)).__name__} (the op normalises neither queries nor keys)"
    for name in ("attn_drop", "proj_drop"):
        drop = getattr(module, name, None)
        if isinstance(drop, nn.Dropout) and drop.p:
            return f"`{name}` drops with p={drop.p} (the op has no dropout)"
    if getattr(module, "gate", None) is not None:
        return "it gates its output (`gate`)"
    if not _only(module, {"qkv", "proj", "q_norm", "k_norm", "norm", "attn_drop", "proj_drop"}):
        return f"it holds other layers ({', '.join(n for n, _ in module.named_children())})"
    if module.state_dict().keys() - {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}:
        return "it holds tensors of its own"
    return ""


def _token_pool_layer(module: nn.Module) -> Op | None:
    """resdsl's TokenPool: ``pool`` and ``num_prefix_tokens`` attributes, no state."""
    pool, prefix = getattr(module, "pool", None), getattr(module, "num_prefix_tokens", None)
    if pool not in ("token", "avg") or not isinstance(prefix, int) or module.state_dict():
        return None
    if any(True for _ in module.children()):
        return None
    args: dict[str, object] = {} if pool == "token" else {"pool": pool}
    args |= {} if prefix == 1 else {"prefix": prefix}
    ours = ("TokenPool", (), {"pool": pool, "num_prefix_tokens": prefix})
    return ("token_pool", args) if _computes(module, ours, (2, prefix + 3, 4)) else None


_READERS: dict[str, Callable[[nn.Module], Op | None]] = {
    "PatchEmbed": _patch_embed,
    "Attention": _attention,
    "TokenPool": _token_pool_layer,
}


def _only(module: nn.Module, allowed: set[str]) -> bool:
    """Whether every child is one of ``allowed`` or a no-op (nn.Identity, a dropout of p = 0)."""
    for name, child in module.named_children():
        noop = isinstance(child, nn.Identity) or (isinstance(child, nn.Dropout) and not child.p)
        if name not in allowed and not noop:
            return False
    return True


Runtime = tuple[str, tuple[int, ...], dict[str, object]]  # a runtime module: class name, arguments


def _computes(module: nn.Module, ours: Runtime, shape: tuple[int, ...]) -> bool:
    """Whether ``module`` gives (within float64 rounding) what resdsl's runtime module ``ours``
    (class name, arguments) gives with the same weights, on a random probe of ``shape``."""
    from resdsl.runtime import layers

    cls, args, kwargs = ours
    try:
        theirs = copy.deepcopy(module).double().eval()
        mine = getattr(layers, cls)(*args, **kwargs).double().eval()
        mine.load_state_dict(theirs.state_dict())
        probe = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a, b = theirs(probe), mine(probe)
    except Exception:  # a module of that name that is something else
        return False
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, rtol=1e-9, atol=1e-12)
