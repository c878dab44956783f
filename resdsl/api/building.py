"""Checked network to artefact: ``build_model`` (compile, IR passes, the torch back end, weights),
``generate`` (the code generator), ``export_onnx`` (the ONNX back end) and ``save_weights``.
Torch is imported only inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.api.checking import compile as compile_spec
from resdsl.api.options import (
    Option,
    build_options,
    checkpoint_option,
    is_bool,
    names_or_none,
    refuse_clashes,
    spec_parameters,
    whole_or_none,
)
from resdsl.api.specs import Spec, parse_shape
from resdsl.diagnostics import ResdslError, error
from resdsl.ir import Network
from resdsl.ir.features import Checkpoint
from resdsl.syntax import ast

if TYPE_CHECKING:
    import onnx
    import torch


def build_model(
    spec: Spec,
    network: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    *,
    zero_init_residual: bool | None = None,
    norm: str | None = None,
    mode: str = "training",
    channels_last: bool = True,
    compile: bool = False,
    features: Sequence[str] | None = None,
    checkpoint: Checkpoint = None,
    max_layers: int | None = None,
    max_params: int | None = None,
    max_activation_gb: float | None = None,
    weights: str | Path | Mapping[str, Any] | None = None,
    strip_prefix: str | None = None,
    in_channels: int | None = None,
    head: int | None = None,
    freeze: Sequence[str] = (),
    freeze_until: str | None = None,
    freeze_bn: bool = False,
    params: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> torch.nn.Module:
    """An ``nn.Module`` for the spec, with modules named as the spec names its layers.

    Spec parameters go in ``params={...}``, or as keywords no option of this function has; an
    option given a value only the spec's parameter of that name takes is E219, before anything
    is built. ``zero_init_residual`` zeroes each residual branch's last norm scale, ``norm=
    "syncbatchnorm"`` builds ``nn.SyncBatchNorm``; ``max_*`` raise the size limits. Fine-tuning
    (docs/finetune.md): ``weights`` (``strip_prefix``), ``in_channels``, ``head=N`` (a layer of
    the checked network), ``freeze``/``freeze_until``/``freeze_bn``. ``features`` and
    ``checkpoint``: docs/features.md. ``mode="inference"`` (docs/cli.md, "Inference builds"):
    batchnorms folded into the convs, eval mode, ``channels_last`` unless turned off,
    ``compile=True`` for inductor under freezing (E804 without a C++ compiler); training
    options there are E803, ``compile`` in a training build E805.
    """
    values = spec_parameters(params, overrides)
    options: dict[str, Any] = {"norm": norm, "mode": mode, "zero_init_residual": zero_init_residual}
    options |= {"head": head, "in_channels": in_channels, "features": features, "checkpoint": checkpoint}
    options |= {"channels_last": channels_last, "freeze_bn": freeze_bn, "compile": compile}
    refuse_clashes(spec, network, "build_model", build_options(options))
    training = {"freeze": freeze, "freeze_until": freeze_until, "freeze_bn": freeze_bn}
    _check_mode(mode, compile, training | {"features": features, "checkpoint": checkpoint})
    limits: dict[str, Any] = {"max_layers": max_layers, "max_params": max_params}
    shape = _input_shape(spec, network, input_shape, in_channels, values, limits)
    # 1. compile: the spec as a checked network
    net = compile_spec(spec, network, shape, params=values, head=head, max_activation_gb=max_activation_gb, **limits)
    if mode == "inference":  # 2. the IR pass that folds batchnorms, 3. the back end, 4. weights folded in
        from resdsl.weights.inference import build_inference

        return build_inference(net, weights, channels_last, zero_init_residual, strip_prefix, compile)
    from resdsl.backends.torch import build
    from resdsl.weights.finetune import prepare

    # 3. the torch back end, 4. weights and freezing
    model = build(net, zero_init_residual=zero_init_residual, norm=norm, features=features, checkpoint=checkpoint)
    return prepare(
        model,
        weights=weights,
        strip_prefix=strip_prefix,
        freeze_modules=freeze,
        freeze_until=freeze_until,
        freeze_bn=freeze_bn,
    )


def _check_mode(mode: str, compile: bool, training: Mapping[str, Any]) -> None:
    """E802 for an unknown mode; E803 for a training option in an inference build, E805 for
    compile=True in a training build."""
    span = ast.Span("<mode>", 0, 0, 0, 0)
    if mode not in ("training", "inference"):
        raise ResdslError(error("E802", f"unknown build mode {mode!r}", span, help="use 'training' or 'inference'"))
    given = [name for name, value in training.items() if value not in (None, False, ())]
    if mode == "inference" and given:
        raise ResdslError(
            error(
                "E803",
                f"{', '.join(given)}: training options; an inference build serves a fixed network",
                span,
                help="fine-tune with mode='training', save_weights, then build the inference model from that file",
            )
        )
    if mode == "training" and compile:
        raise ResdslError(
            error(
                "E805",
                "compile: an inference build option; a training build is compiled by the caller",
                span,
                help="build with mode='inference', or call torch.compile(model) on the training model",
            )
        )


def _input_shape(
    spec: Spec,
    network: str | None,
    input_shape: str | Sequence[int] | None,
    in_channels: int | None,
    values: Mapping[str, Any],
    limits: Mapping[str, Any],
) -> str | Sequence[int] | None:
    """The input shape to compile for: as given, or with ``in_channels`` the declared (or given)
    one with another channel count."""
    if in_channels is None:
        return input_shape
    declared = parse_shape(input_shape) or compile_spec(spec, network, params=dict(values), **limits).input_shape
    return (in_channels, *declared[1:])


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Write ``model``'s weights as safetensors with the network's name, the spec's hash, its
    input size, ``mean`` and ``std`` as metadata (see :func:`resdsl.weights.save_weights`)."""
    from resdsl.weights import save_weights as save

    save(model, path)


def generate(
    spec: Spec,
    network: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    *,
    features: Sequence[str] | None = None,
    checkpoint: Checkpoint = None,
    head: int | None = None,
    max_layers: int | None = None,
    max_params: int | None = None,
    max_activation_gb: float | None = None,
    params: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """The source of a standalone PyTorch module for the spec (``features``, ``checkpoint``,
    ``head``, ``params``: as for :func:`build_model`)."""
    from resdsl.backends.codegen import generate as _generate

    values = spec_parameters(params, overrides)
    options: dict[str, Option] = {"features": (features, names_or_none), "head": (head, whole_or_none)}
    options["checkpoint"] = (checkpoint, checkpoint_option)
    refuse_clashes(spec, network, "generate", options)
    spec_arg = None if isinstance(spec, Network) else str(spec)
    net = compile_spec(
        spec,
        network,
        input_shape,
        params=values,
        max_layers=max_layers,
        max_params=max_params,
        max_activation_gb=max_activation_gb,
        head=head,
    )
    return _generate(net, overrides=values, spec_arg=spec_arg, features=features, checkpoint=checkpoint)


def export_onnx(
    spec: Spec,
    path: str | Path | None = None,
    *,
    weights: Mapping[str, Any] | str | Path | None = None,
    batch: int | str = "dynamic",
    seed: int = 0,
    force: bool = False,
    fold: bool = True,
    network: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    head: int | None = None,
    params: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> onnx.ModelProto:
    """The spec as an ONNX model, built from the IR without torch; written to ``path``
    (atomically; a file ``resdsl export`` did not write is kept unless ``force``) when given.

    ``weights``: a ``.safetensors`` file, a torch checkpoint (imports torch), or a mapping of
    ``build_model``'s state_dict keys to arrays; None gives seeded random weights. ``batch``:
    ``"dynamic"`` (the default: a symbolic first dimension) or a fixed batch size. ``fold``:
    batchnorms that follow convs are folded into them (as in ``build_model(spec,
    mode="inference")``); ``fold=False`` keeps BatchNormalization nodes.
    ``head=N``: the network with a fine-tuning head, as ``build_model(spec, head=N)`` built it.
    ``params``: the spec's parameters, as for :func:`build_model`.
    """
    from resdsl.backends.onnx import export, onnx_model

    values = spec_parameters(params, overrides)
    refuse_clashes(spec, network, "export_onnx", {"head": (head, whole_or_none), "fold": (fold, is_bool)})
    net = compile_spec(spec, network, input_shape, params=values, head=head)
    origin = str(weights) if isinstance(weights, (str, Path)) else ""
    arrays = weight_arrays(weights) if isinstance(weights, (str, Path)) else weights
    if path is None:
        return onnx_model(net, arrays, batch, seed, fold, origin)
    return export(net, path, arrays, batch, seed, force, fold, origin)


def weight_arrays(path: str | Path) -> dict[str, Any]:
    """A weights file as ``{state_dict key: numpy array}`` for the ONNX back end; E821 when it
    cannot be read. ``.safetensors`` is read with numpy alone; any other file is a torch
    checkpoint, unpickled as ``build_model(weights=...)`` does (safely, E702; nested
    state_dicts; DDP's ``module.`` prefix), which imports torch."""
    from resdsl.backends.onnx.weights import file_error, read_safetensors

    path = Path(path)
    if path.suffix == ".safetensors" or not path.is_file():
        return read_safetensors(path)
    try:
        import torch  # noqa: F401  # only to say so when it is missing
    except ImportError:
        raise file_error(
            path,
            f"reading the torch checkpoint {path} needs torch",
            help="install torch, or save the weights as .safetensors (safetensors.torch.save_file)",
        ) from None
    from resdsl.weights import read_weights

    state, _, _ = read_weights(path)
    return {str(k): v.detach().float().cpu().numpy() for k, v in state.items()}
