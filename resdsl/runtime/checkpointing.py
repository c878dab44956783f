"""Gradient checkpointing for both back ends, written once.

``build_model(..., checkpoint=...)`` runs these; the code generator copies the part after
the marker into generated modules built with ``--checkpoint`` (the template writes the
imports above it, so those files still import only torch).
Nothing here may import resdsl.

Checkpointing keeps only each segment's input for backward and runs the segment's forward
again there, trading one more forward pass for the activations in between. A stage of n
blocks is cut into about sqrt(n) segments of about sqrt(n) consecutive blocks (Chen et al.,
2016, "Training Deep Nets with Sublinear Memory Cost"): a step then keeps about 2 sqrt(n)
blocks' worth of activations per stage instead of n, where one segment per block (timm's
``checkpoint_seq``) keeps n block inputs, and both recompute every block once.

Each segment runs under torch's reentrant checkpoint when its input requires grad: its first
forward runs without building an autograd graph, which makes a step cheaper than under the
non-reentrant variant (figures in docs/features.md). The non-reentrant one, which works where
the reentrant one cannot, runs a segment whose input needs no gradient (after a frozen stem,
where the reentrant one would leave the segment's parameters without gradients), and every
segment when the model's ``checkpoint_reentrant`` is false (for ``torch.autograd.grad`` and
double backward).

In train mode the recomputation would update batch norm running statistics a second time
(momentum applied twice); :class:`KeepBuffers` gives the recomputation copies of the segment's
buffers to update instead, so the statistics, like the gradients, are exactly those of a step
without checkpointing. Under ``torch.compile`` the segments run under the plain non-reentrant
checkpoint: the traced recomputation does not update the statistics again, and a custom
``context_fn`` cannot be traced.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

# --- copied into generated modules that checkpoint, from here ---


class KeepBuffers:
    """A context in which some modules' buffers (batch norm statistics) are copies, so that what
    runs inside updates the copies; on exit the modules get their own buffers back, untouched.
    (Copying the old values back instead would modify tensors that the recomputed graph saved
    for backward, which autograd refuses.)"""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = modules
        self.saved: list[tuple[nn.Module, str, Tensor]] = []

    def __enter__(self) -> None:
        unique = {id(module): module for outer in self.modules for module in outer.modules()}  # shared: once
        for module in unique.values():
            for name, buffer in module.named_buffers(recurse=False):
                self.saved.append((module, name, buffer))
                setattr(module, name, buffer.clone())

    def __exit__(self, *exc: object) -> None:
        for module, name, buffer in self.saved:
            setattr(module, name, buffer)
        self.saved = []


class Segment:
    """Consecutive blocks that backward recomputes together."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        self.blocks = blocks

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def reentrant(self, x: Tensor) -> Tensor:
        """The function for the reentrant checkpoint, which calls it twice: the forward without
        grad, then, in backward, the recomputation with grad, which must leave the buffers."""
        if not torch.is_grad_enabled():
            return self.forward(x)
        with KeepBuffers(self.blocks):
            return self.forward(x)

    def contexts(self) -> tuple[contextlib.nullcontext[None], KeepBuffers]:
        """The non-reentrant checkpoint's ``context_fn``: forward as usual, recompute buffer-neutral."""
        return contextlib.nullcontext(), KeepBuffers(self.blocks)


def segments(blocks: Sequence[nn.Module]) -> list[Sequence[nn.Module]]:
    """``blocks`` cut into ceil(sqrt(n)) runs whose lengths differ by at most one, in order."""
    n = len(blocks)
    if n == 0:
        return []
    count = math.ceil(math.sqrt(n))
    return [blocks[n * i // count : n * (i + 1) // count] for i in range(count)]


def checkpoint_seq(modules: Iterable[nn.Module], x: Tensor, reentrant: bool = True) -> Tensor:
    """Run ``modules`` in order (a stage's blocks), about sqrt(n) at a time under checkpointing."""
    blocks = list(modules)
    if not torch.is_grad_enabled():  # nothing to keep for backward, so nothing to save
        return Segment(blocks).forward(x)
    for run in segments(blocks):
        segment = Segment(run)
        if torch.compiler.is_compiling():  # traced: the recomputed graph does not update buffers again
            x = checkpoint(segment.forward, x, use_reentrant=False)
        elif reentrant and x.requires_grad:
            x = checkpoint(segment.reentrant, x, use_reentrant=True)
        else:
            x = checkpoint(segment.forward, x, use_reentrant=False, context_fn=segment.contexts)
    return x
