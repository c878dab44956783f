"""The preprocessing a network expects, read from its spec: input size, ``mean`` and ``std``.

Both back ends take it from here (attributes of a built model, constants of a generated
module), so they never disagree. The spec's ``meta { mean = [...] std = [...] }`` gives one
value per channel of the declared input; a network built for another number of input
channels (``in_channels=1``, ``--input 1x224x224``) gets values for its own channels: the
average for one channel (a grey image), else the spec's values repeated, the same rule by
which :func:`resdsl.weights.adapt_input_conv` maps the first conv's filters. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir import Network


@dataclass(frozen=True)
class Preprocessing:
    """A network's input size and per-channel normalisation (from ``input`` and ``meta``)."""

    input_size: tuple[int, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


def per_channel(values: object, channels: int) -> tuple[float, ...] | None:
    """``values`` (a meta entry) as one float per input channel; None if it is not a list of numbers."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    floats = [float(v) for v in values]
    if len(floats) == channels:
        return tuple(floats)
    if channels == 1:
        return (sum(floats) / len(floats),)
    return tuple(floats[i % len(floats)] for i in range(channels))


def preprocessing(network: Network) -> Preprocessing:
    """The input size and per-channel ``mean``/``std`` of ``network`` (None where the spec has none)."""
    size = tuple(network.input_shape)
    channels = size[0] if len(size) == 3 else 1
    return Preprocessing(
        size, per_channel(network.meta.get("mean"), channels), per_channel(network.meta.get("std"), channels)
    )
