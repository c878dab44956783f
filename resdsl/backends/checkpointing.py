"""Gradient checkpointing for both back ends, written once.

``build_model(..., checkpoint=...)`` runs these; the code generator copies the part after
the marker into generated modules built with ``--checkpoint`` (the template writes the
imports above it, so those files still import only torch).
Nothing here may import resdsl.

Checkpointing keeps only each block's input for backward and runs the block's forward
again there, trading one more forward pass for the activations in between (timm's
``checkpoint_seq`` does the same, one segment per block). In train mode that second forward
would update batch norm running statistics a second time (momentum applied twice);
:class:`KeepBuffers` puts every buffer of the block back after the recomputation, so the
statistics, like the gradients, are exactly those of a step without checkpointing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

# --- copied into generated modules that checkpoint, from here ---


class KeepBuffers:
    """A context that restores a module's buffers (batch norm statistics) on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.saved: list[tuple[Tensor, Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [(buffer, buffer.clone()) for buffer in self.module.buffers()]

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for buffer, value in self.saved:
                buffer.copy_(value)
        self.saved = []


def recompute_contexts(module: nn.Module) -> tuple[contextlib.nullcontext[None], KeepBuffers]:
    """Checkpoint's ``context_fn``: the first forward as usual, the recomputation buffer-neutral."""
    return contextlib.nullcontext(), KeepBuffers(module)


def checkpoint_seq(modules: Iterable[nn.Module], x: Tensor) -> Tensor:
    """Run ``modules`` in order (a stage's blocks), each under ``torch.utils.checkpoint``."""
    for module in modules:
        x = checkpoint(module, x, use_reentrant=False, context_fn=functools.partial(recompute_contexts, module))
    return x
