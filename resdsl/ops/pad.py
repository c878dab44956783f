"""``pad_channels``: option A's shortcut (subsample by a stride, append zero channels), defined
once like every other op (parameters, shape rule, counts, module, ONNX).

The language does not call it: ``residual(zero_pad)`` makes it, as the one step of the
realised shortcut (:meth:`resdsl.ops.shortcut.Shortcut.steps`). Its module is
``ZeroPadShortcut`` of :mod:`resdsl.runtime.shortcuts`, which generated files carry with
``make_shortcut``; :mod:`resdsl.runtime.layers` names it too, where ``Ctor(runtime=True)``
classes are looked up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from resdsl.ops.base import Ctor, OpDef, P, Shape
from resdsl.ops.rules import spatial

INT64_MAX = 2**63 - 1  # a Slice's open end


def _shape(ins: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    c, h, w = spatial("pad_channels", ins)
    s = a["s"]
    return (c + a["extra"], -(-h // s), -(-w // s))  # x[:, :, ::s, ::s] keeps ceil(h / s) rows


def _onnx(e: Any, a: Mapping[str, Any]) -> str:
    """A strided ``Slice`` over the map (only where the stride is above 1), then a ``Pad`` that
    appends the zero channels."""
    x, s = e.x, a["s"]
    if s > 1:
        ends = e.ints([INT64_MAX, INT64_MAX], "ends")
        positions = [e.ints([0, 0], "starts"), ends, e.ints([2, 3], "axes")]
        x = e.node("Slice", [x, *positions, e.ints([s, s], "steps")])
    # ONNX pads: the begins of N, C, H, W, then their ends; the new channels come after the old
    return str(e.node("Pad", [x, e.ints([0, 0, 0, 0, 0, a["extra"], 0, 0], "pads")]))


PAD_CHANNELS = OpDef(
    "pad_channels",
    "Option A's shortcut: subsamples the map by the stride s and appends `extra` zero channels; no parameters.",
    (P("s", "int", 1, aliases=("stride",), minimum=1), P("extra", "int", minimum=0)),
    _shape,
    lambda a, cin, shape: Ctor("ZeroPadShortcut", (a["s"], a["extra"]), runtime=True),
    channels=lambda a, cin: cin + a["extra"],
    stride=lambda a: a["s"],
    called=False,
    made_by="residual(zero_pad)",
    onnx=_onnx,
)

OPS = (PAD_CHANNELS,)
