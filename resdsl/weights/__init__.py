"""Weights in and out: reading checkpoints safely, matching them to a model, saving them.

A checkpoint is read without running code (``.safetensors``, or ``torch.load`` with
``weights_only=True``), unwrapped from the usual nesting, and stripped of prefixes: ``module.``
(DataParallel/DDP) automatically when every key has it and the model has no ``module``, a named
one (``strip_prefix="backbone."``) when asked, keeping only the keys under it. It is then
matched key by key against the model; every problem goes into one :class:`WeightsError`
(E704) that lists missing keys, unexpected keys and shape mismatches with both shapes. Two
differences are resolved instead of refused, and each is reported:

- the classifier (the network's final linear layer, and a head added for fine-tuning): a
  tensor whose shape differs, or that the checkpoint lacks, keeps its initial value with a
  W721 warning naming it, so a 1000-class checkpoint loads into a 10-class variant;
- the first conv, when the model takes another number of input channels: the filters are
  summed over the checkpoint's channels for ``in_channels=1`` (a grey image then gives the
  output the 3-channel network gives for that image replicated on R, G and B); for other
  counts they are repeated and scaled by ``c_old / c_new`` (timm's rule).

:func:`save_weights` writes safetensors with the network's name, the spec's hash and its
preprocessing as metadata; loading a file whose ``mean``/``std`` differ from the model's
warns (W720), naming both values. This module imports torch: ``resdsl check`` never loads it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError
from torch import Tensor, nn

from resdsl.diagnostics import Diagnostic, ResdslError, error, warning
from resdsl.diagnostics.files import replace_file
from resdsl.ir import Network
from resdsl.ir.preprocessing import per_channel
from resdsl.runtime.weights import (
    compare_state,
    find_state_dict,
    mismatch_lines,
    read_checkpoint,
    strip_wrapper,
)
from resdsl.syntax import ast

# a checkpoint's path, or a state_dict already in memory
Weights = str | os.PathLike[str] | Mapping[str, Tensor]
IN_MEMORY = "<state_dict>"

__all__ = [
    "LoadReport",
    "WeightsError",
    "WeightsWarning",
    "adapt_input_conv",
    "load_weights",
    "read_weights",
    "save_weights",
]

log = logging.getLogger("resdsl.weights")

SHOWN = 12  # problems of each kind listed in a report; the exception keeps them all


class WeightsError(ResdslError):
    """A checkpoint that cannot be read or does not fit; ``missing``, ``unexpected`` and
    ``mismatched`` hold every problem found (E704), not only those the message shows."""

    def __init__(
        self,
        diagnostic: Diagnostic,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
    ) -> None:
        super().__init__(diagnostic)
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)


class WeightsWarning(UserWarning):
    """A load that went through with something worth knowing (W720, W721); ``diagnostic``
    carries it as the CLI prints it."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


@dataclass
class LoadReport:
    """What a load did: ``loaded`` of the model's ``total`` tensors came from the file."""

    path: str
    network: str
    loaded: int
    total: int
    skipped: list[str] = field(default_factory=list)  # classifier tensors left at initialisation
    adapted: list[str] = field(default_factory=list)  # first-conv filters mapped to other input channels
    ignored: int = 0  # checkpoint tensors outside strip_prefix
    dropped: list[str] = field(default_factory=list)  # tensors of layers a feature model leaves out
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"loaded {self.loaded} of {self.total} tensors from {self.path} into {self.network}"
        if self.skipped:
            text += f"; kept {len(self.skipped)} at initialisation ({', '.join(self.skipped)})"
        if self.adapted:
            text += f"; adapted {', '.join(self.adapted)} to the input channels"
        if self.ignored:
            text += f"; ignored {self.ignored} tensors outside the prefix"
        if self.dropped:
            layers = ", ".join(dict.fromkeys(key.split(".", 1)[0] for key in self.dropped))
            text += f"; left out the {len(self.dropped)} tensors of {layers}, which the feature outputs drop"
        return text


def _span(path: str | os.PathLike[str]) -> ast.Span:
    return ast.Span(os.fspath(path), 0, 0, 0, 0)


def read_weights(
    path: Weights, strip_prefix: str | None = None, model_keys: Sequence[str] = ()
) -> tuple[dict[str, Tensor], dict[str, str], int]:
    """(state_dict, metadata, tensors dropped for lying outside ``strip_prefix``); ``path`` may
    also be a state_dict already in memory (a mapping of keys to tensors, nested or not).

    Refuses a pickle that would run code (E702); any other unreadable file is E701, a file
    without a state_dict E703."""
    if isinstance(path, Mapping):
        try:
            state = find_state_dict(path)
        except ValueError as exc:
            raise WeightsError(error("E703", f"{IN_MEMORY}: {exc}", _span(IN_MEMORY))) from None
        return _strip(IN_MEMORY, state, {}, strip_prefix, model_keys)
    name = os.fspath(path)
    if not Path(name).is_file():
        problem = "is not a file" if Path(name).exists() else "not found"
        raise WeightsError(error("E701", f"weights file {name} {problem}", _span(name)))
    try:
        state = read_checkpoint(name)
    except pickle.UnpicklingError as exc:
        if not _is_pickle(name):  # bytes that are no pickle at all: not a refusal
            raise _unreadable(name, exc) from None
        reason = _unpickler_reason(exc)
        raise WeightsError(
            error(
                "E702",
                f"{name} holds a pickle that the safe loader refuses (objects other than tensors); "
                "nothing in it was run",
                _span(name),
                notes=[reason[:300]],
                help="load only checkpoints you trust with plain torch.load, then save them with "
                "resdsl.weights.save_weights (safetensors) or torch.save(model.state_dict())",
            )
        ) from None
    except ValueError as exc:
        if "state_dict" not in str(exc):
            raise _unreadable(name, exc) from None
        raise WeightsError(error("E703", f"{name}: {exc}", _span(name))) from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, KeyError, TypeError, SafetensorError) as exc:
        raise _unreadable(name, exc) from None
    return _strip(name, state, _metadata(name), strip_prefix, model_keys)


def _strip(
    name: str, state: dict[str, Tensor], metadata: dict[str, str], strip_prefix: str | None, model_keys: Sequence[str]
) -> tuple[dict[str, Tensor], dict[str, str], int]:
    """The keys under ``strip_prefix`` without it, and without DDP's ``module.``."""
    ignored = 0
    if strip_prefix:
        kept = {k[len(strip_prefix) :]: v for k, v in state.items() if k.startswith(strip_prefix)}
        if not kept:
            firsts = sorted({k.split(".", 1)[0] + "." for k in state})[:6]
            raise WeightsError(
                error(
                    "E703",
                    f"{name} has no tensors under the prefix {strip_prefix!r}",
                    _span(name),
                    help=f"its keys start with {', '.join(repr(f) for f in firsts)}",
                )
            )
        ignored, state = len(state) - len(kept), kept
    return strip_wrapper(state, model_keys), metadata, ignored


def _is_pickle(name: str) -> bool:
    """A torch zip checkpoint or a pickle stream (protocol 2 and later start with PROTO)."""
    with open(name, "rb") as f:
        head = f.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def _unpickler_reason(exc: BaseException) -> str:
    """The line of torch's weights-only refusal that says what it met ("Unsupported global: ...")."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


def _unreadable(name: str, exc: BaseException) -> WeightsError:
    reason = _unpickler_reason(exc) if isinstance(exc, pickle.UnpicklingError) else str(exc).strip()
    reason = reason.splitlines()[0] if reason else type(exc).__name__
    return WeightsError(
        error(
            "E701",
            f"cannot read weights from {name}: {reason[:300]}",
            _span(name),
            help="expected a .safetensors file or a torch checkpoint (torch.save of a state_dict)",
        )
    )


def _metadata(name: str) -> dict[str, str]:
    if not name.endswith(".safetensors"):
        return {}
    from safetensors import safe_open

    with safe_open(name, framework="pt") as f:
        return dict(f.metadata() or {})


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """First-conv filters for ``in_channels`` inputs from filters trained on ``weight.shape[1]``:
    summed for one channel (exact for a grey image replicated on every channel), otherwise
    repeated and scaled by old/new channels so that the response keeps its size."""
    old = weight.shape[1]
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = weight.repeat(1, math.ceil(in_channels / old), 1, 1)[:, :in_channels]
    return repeated * (old / in_channels)


def load_weights(
    model: nn.Module,
    path: Weights,
    *,
    strip_prefix: str | None = None,
    strict: bool = False,
) -> LoadReport:
    """Load a checkpoint into ``model`` (built by resdsl or any module with matching keys).

    ``strict=True`` resolves nothing: the classifier and the first conv must fit as they are
    (what a generated module's ``load_weights`` requires). Raises :class:`WeightsError` with
    the whole mismatch report; warns (:class:`WeightsWarning`) for each classifier tensor left
    at initialisation and for preprocessing that differs from the model's."""
    state, metadata, ignored = read_weights(path, strip_prefix, list(model.state_dict()))
    return load_read(model, weights_name(path), state, metadata, ignored, strict)


def weights_name(path: Weights) -> str:
    """How reports name the weights: the file, or ``<state_dict>`` for one in memory."""
    return IN_MEMORY if isinstance(path, Mapping) else os.fspath(path)


def load_read(
    model: nn.Module,
    name: str,
    state: dict[str, Tensor],
    metadata: Mapping[str, str],
    ignored: int = 0,
    strict: bool = False,
) -> LoadReport:
    """:func:`load_weights` for weights :func:`read_weights` has read already (``name``: their file)."""
    expected = model.state_dict()
    missing, unexpected, mismatched = compare_state(expected, state)
    heads = () if strict else tuple(getattr(model, "resdsl_classifiers", ()))
    first = None if strict else next((k for k, v in expected.items() if v.dim() == 4), None)
    skipped: list[str] = []
    kept: list[str] = []  # the W721 messages, given once the load is known to go through
    adapted: list[str] = []
    for key, mine, theirs in list(mismatched):
        if first == key and mine[0] == theirs[0] and mine[2:] == theirs[2:]:
            state[key] = adapt_input_conv(state[key], mine[1])
            adapted.append(f"{key} ({theirs[1]} -> {mine[1]} channels)")
        elif _under(key, heads):
            skipped.append(key)
            kept.append(f"{key} kept at initialisation: model {list(mine)}, checkpoint {list(theirs)}")
            del state[key]
        else:
            continue
        mismatched.remove((key, mine, theirs))
    absent_head = [k for k in missing if _under(k, heads)]
    missing = [k for k in missing if k not in absent_head]
    # a feature model leaves out the full network's later layers (the classifier): not a mismatch
    dropped = [k for k in unexpected if _under(k, tuple(getattr(model, "resdsl_dropped", ())))]
    unexpected = [k for k in unexpected if k not in dropped]
    for key in dropped:
        del state[key]
    if missing or unexpected or mismatched:
        raise _mismatch(name, model, missing, unexpected, mismatched, strict, state)
    kept += [f"{key} kept at initialisation: not in the checkpoint" for key in absent_head]
    for message in kept:
        _warn(warning("W721", message, _span(name)))
    check_metadata(model, metadata, name)
    model.load_state_dict(state, strict=False)  # every difference was resolved or refused above
    report = LoadReport(
        path=name,
        network=str(getattr(model, "resdsl_network", type(model).__name__)),
        loaded=len(state),
        total=len(expected),
        skipped=skipped + absent_head,
        adapted=adapted,
        ignored=ignored,
        dropped=dropped,
        metadata=dict(metadata),
    )
    log.info("%s", report)
    return report


def _under(key: str, paths: Sequence[str]) -> bool:
    return any(key.startswith(p + ".") for p in paths)


def _mismatch(
    name: str,
    model: nn.Module,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    strict: bool,
    state: Mapping[str, Tensor],
) -> WeightsError:
    counts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(mismatched)} of another shape"]
    lines = mismatch_lines(missing[:SHOWN], unexpected[:SHOWN], mismatched[:SHOWN])
    hidden = sum(max(len(x) - SHOWN, 0) for x in (missing, unexpected, mismatched))
    if hidden:
        lines.append(f"... and {hidden} more (WeightsError.missing/.unexpected/.mismatched list them all)")
    network = getattr(model, "resdsl_network", type(model).__name__)
    expected = model.state_dict()
    diagnostic = error(
        "E704",
        f"the weights in {name} do not fit {network}: {', '.join(counts)}",
        _span(name),
        notes=lines,
        help=_classes_hint(model, missing, unexpected, mismatched, state) or _prefix_hint(unexpected, expected, strict),
    )
    return WeightsError(diagnostic, missing, unexpected, mismatched)


def _classes_hint(
    model: nn.Module,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple, tuple]],
    state: Mapping[str, Tensor],
) -> str | None:
    """When only the classifier differs: the number of classes the checkpoint was trained for;
    when only the fine-tuning head differs, or one side lacks it, the ``--head`` to build with."""
    head = getattr(model, "resdsl_head", "")  # "head" with head=N, None without, "" if not resdsl's
    added = {f"{head or 'head'}.weight", f"{head or 'head'}.bias"}
    if unexpected and set(unexpected) <= added and not missing and not mismatched and head is None:
        n = state["head.weight"].shape[0] if "head.weight" in state else "N"
        return f"the checkpoint has a fine-tuning head of {n} outputs: build with --head {n} (API: head={n})"
    if missing and set(missing) <= added and not unexpected and not mismatched and head:
        return "the checkpoint has no head: build without --head, or fine-tune one first (head=N, then save_weights)"
    heads = tuple(getattr(model, "resdsl_classifiers", ()))
    if missing or unexpected or not heads or not all(_under(k, heads) for k, _, _ in mismatched):
        return None
    n = mismatched[0][2][0]
    if head and all(_under(k, (head,)) for k, _, _ in mismatched):
        return f"the checkpoint's head has {n} outputs: build with --head {n} (API: head={n})"
    return f"the checkpoint has a {n}-way classifier: build with --set num_classes={n} (API: num_classes={n})"


def _prefix_hint(unexpected: Sequence[str], expected: Mapping[str, Tensor], strict: bool) -> str:
    for key in unexpected[:1]:
        parts = key.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i]) + "."
            # a prefix only when most unexpected keys carry it and, without it, are the model's
            carried = [k[len(prefix) :] for k in unexpected if k.startswith(prefix)]
            if len(carried) * 2 > len(unexpected) and sum(k in expected for k in carried) * 2 > len(carried):
                return f"the checkpoint's keys carry a prefix: pass strip_prefix={prefix!r}"
    if strict:
        return (
            "a generated module loads only a checkpoint that fits exactly: make one with "
            "build_model(spec, weights=..., num_classes=..., in_channels=...) and save_weights"
        )
    return "check that the checkpoint was saved from this network with the same parameters (resdsl summary)"


def verify(network: Network, path: str | os.PathLike[str]) -> tuple[LoadReport, list[Diagnostic]]:
    """``resdsl build --weights``: load the checkpoint into the network built in memory exactly
    as the generated module's ``load_weights`` will (``strict``); the report and any warnings."""
    from resdsl.backends.torch import build

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WeightsWarning)
        report = load_weights(build(network), path, strict=True)
    found = [w.message.diagnostic for w in caught if isinstance(w.message, WeightsWarning)]
    return report, found


def _warn(diagnostic: Diagnostic) -> None:
    warnings.warn(WeightsWarning(diagnostic), stacklevel=3)


def check_metadata(model: nn.Module, metadata: Mapping[str, str], name: str) -> list[Diagnostic]:
    """W720 for each of ``mean`` and ``std`` that the file records and the model's spec
    disagrees with (the notes' warning: train and fine-tune with the same preprocessing)."""
    found = []
    for key in ("mean", "std"):
        mine = getattr(model, key, None)
        try:
            saved = json.loads(metadata[key]) if key in metadata else None
        except ValueError:
            saved = None
        if mine is None or not isinstance(saved, list) or not all(isinstance(v, (int, float)) for v in saved):
            continue
        compared = per_channel(saved, len(mine)) or ()  # a 3-channel file for a grey model: the average
        if len(compared) != len(mine) or not all(
            math.isclose(a, b, rel_tol=1e-6) for a, b in zip(compared, mine, strict=True)
        ):
            d = warning(
                "W720",
                f"the weights were trained with {key} {saved}, but the spec normalises with {key} {list(mine)}",
                _span(name),
                help="use the preprocessing the weights were trained with (set meta mean/std in the spec), "
                "or training may not converge",
            )
            found.append(d)
            _warn(d)
    return found


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s state_dict as safetensors, atomically, with metadata: ``network``,
    ``spec_sha256``, ``input_size``, ``mean`` and ``std`` (JSON values), where the model has them."""
    name = os.fspath(path)
    if not name.endswith(".safetensors"):
        raise WeightsError(
            error("E707", f"save_weights writes safetensors; name the file {Path(name).stem}.safetensors", _span(name))
        )
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": "pt"}
    for key, attr in (("network", "resdsl_network"), ("spec_sha256", "resdsl_spec_hash")):
        if getattr(model, attr, None) is not None:
            metadata[key] = str(getattr(model, attr))
    for key in ("input_size", "mean", "std"):
        if getattr(model, key, None) is not None:
            metadata[key] = json.dumps(list(getattr(model, key)))
    try:
        replace_file(name, save(tensors, metadata=metadata))
    except OSError as exc:
        raise WeightsError(error("E707", f"cannot write {name}: {exc.strerror or exc}", _span(name))) from None
