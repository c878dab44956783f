"""Limits: inputs that would exhaust time or memory are refused before anything is built.

A spec is a program: ``stage(basic(16), repeat=10**9)`` or forty blocks that each use the one
before twice describe networks that no machine holds. Every limit here is checked before the
thing it guards is unrolled or allocated, has its own diagnostic code, and names itself and how
to raise it in its message:

- E601 layers after unrolling, counted by :class:`resdsl.semantics.count.LayerCounter` without
  unrolling (block sizes are memoised per block and arguments, so a 2**40-layer spec is counted
  in 40 steps);
- E602 nesting: expressions (the parser), blocks inside blocks, imports inside imports;
- E603 parameters and E604 activation memory per sample, estimated by the checker from the
  inferred shapes (no tensor exists), so ``check`` reports them and ``build`` never starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from resdsl.diagnostics import Diagnostic, error
from resdsl.ir import Network
from resdsl.syntax.loader import MAX_IMPORT_DEPTH

MAX_BLOCK_DEPTH = 50  # blocks used inside blocks (the shipped library nests 2 deep)

__all__ = ["MAX_BLOCK_DEPTH", "MAX_IMPORT_DEPTH", "Limits", "activation_bytes", "check_budget"]
BYTES_PER_VALUE = 4  # float32, what torch builds by default


@dataclass(frozen=True)
class Limits:
    """Default ceilings; each can be raised from the CLI and the API."""

    max_layers: int = 100_000  # ResNet-1202 has 4,206 graph nodes
    max_params: int = 2_000_000_000  # 8 GB of float32 weights
    max_activation_bytes: int = 64 * 2**30  # per sample, every layer's output kept for backward

    @classmethod
    def of(
        cls, max_layers: int | None = None, max_params: int | None = None, max_activation_gb: float | None = None
    ) -> Limits:
        default = cls()
        return cls(
            max_layers if max_layers is not None else default.max_layers,
            max_params if max_params is not None else default.max_params,
            int(max_activation_gb * 2**30) if max_activation_gb is not None else default.max_activation_bytes,
        )


def activation_bytes(network: Network) -> int:
    """Estimated memory of one sample's activations in training: every layer's output, float32."""
    total = 0
    for layer in network.layers():
        if layer.shape is not None and not layer.inplace:
            total += math.prod(layer.shape) * BYTES_PER_VALUE
    return total


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def check_budget(network: Network, limits: Limits) -> list[Diagnostic]:
    """E603/E604 for a checked network whose size no build should attempt."""
    span = network.definition.name_span if network.definition is not None else network.span
    out = []
    params = network.num_params
    if params > limits.max_params:
        out.append(
            error(
                "E603",
                f"network '{network.name}' has {params:,} parameters ({human_bytes(params * BYTES_PER_VALUE)}); "
                f"the limit is {limits.max_params:,}",
                span,
                help=f"raise the limit with --max-params {params} (API: max_params={params}) if this is meant",
            )
        )
    memory = activation_bytes(network)
    if memory > limits.max_activation_bytes:
        need = math.ceil(memory / 2**30)
        out.append(
            error(
                "E604",
                f"network '{network.name}' needs about {human_bytes(memory)} of activations per sample at input "
                f"{' x '.join(map(str, network.input_shape))}; the limit is {human_bytes(limits.max_activation_bytes)}",
                span,
                help=f"check a smaller --input, or raise the limit with --max-activation-gb {need} "
                f"(API: max_activation_gb={need})",
            )
        )
    return out
