"""The Python API: compile a spec, check it, build a model, generate code.

A *spec* is a path to an ``.arch`` file, the text of one, a shipped name (``"resnet50"``)
or an already compiled :class:`~resdsl.ir.Network`. Torch is imported only by the
functions that need it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.checks.shapes import infer
from resdsl.diagnostics import NETWORK_CONTEXT, Collector, Diagnostic, ResdslError, error, group_repeats, ordered
from resdsl.diagnostics.overrides import name_overrides
from resdsl.diagnostics.span import override_file
from resdsl.ir import Network
from resdsl.ir.features import Checkpoint, Feature, plan
from resdsl.resources import library_dir, shipped_specs
from resdsl.semantics.elaborate import Elaborator, Failed, Program, load, network_params
from resdsl.semantics.limits import Limits, check_budget
from resdsl.semantics.resolve import check_unused_blocks
from resdsl.syntax import ast
from resdsl.syntax.parser import parse_expr

if TYPE_CHECKING:
    import onnx
    import torch

Spec = str | Path | Network


@dataclass
class CheckResult:
    """What checking one spec found: the networks it defines and every diagnostic."""

    file: str
    networks: list[Network] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict, repr=False)
    program: Program | None = field(default=None, repr=False)  # the parsed files (editor features)
    features: dict[str, list[Feature]] = field(default_factory=dict)  # per network, when asked for

    def __repr__(self) -> str:
        errors = len(self.errors)
        return (
            f"CheckResult(file={self.file!r}, networks={[n.name for n in self.networks]}, "
            f"errors={errors}, warnings={len(self.diagnostics) - errors})"
        )

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise ResdslError(self.errors)


def shipped_names() -> dict[str, Path]:
    """Every network reachable by name: each shipped file's stem and each network it defines."""
    names: dict[str, Path] = {}
    for path in shipped_specs():
        names.setdefault(path.stem, path)
    return names


def resolve_spec(spec: str | Path) -> tuple[Path | None, str | None, str | None]:
    """(path, text, network name) for a path, a shipped name, or source text."""
    text = str(spec)
    if isinstance(spec, Path):
        return spec, None, None
    if "{" in text or "\n" in text:  # no path or name holds these; a spec's text always does
        return None, text, None
    if text.endswith(".arch") or "/" in text:
        return Path(spec), None, None
    candidate = Path(text)
    if candidate.is_file():
        return candidate, None, None
    shipped = shipped_names()
    if text in shipped:
        return shipped[text], None, text
    close = difflib.get_close_matches(text, list(shipped), n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "`resdsl list` shows the shipped networks; a file path needs its .arch suffix or a '/'"
    )
    raise ResdslError(
        error("E104", f"'{text}' is neither a file nor a shipped network", ast.Span(text, 0, 0, 0, 0), help=hint)
    )


def parse_override(key: str, value: Any) -> Any:
    """A ``--set`` value written in the language (``10``, ``true``, ``projection``, ``[1, 2]``);
    Python values pass through, tuples becoming the language's lists."""
    if isinstance(value, tuple):
        return [parse_override(key, v) for v in value]
    if isinstance(value, list):
        return [parse_override(key, v) for v in value]
    if not isinstance(value, str):
        return value
    collector = Collector()
    expr = parse_expr(value, override_file(key))
    try:
        return Elaborator(Program("--set"), collector).eval(expr, {})
    except Failed:
        raise ResdslError(collector.items) from None


def parse_shape(value: str | Sequence[int] | None, where: str = "input_shape") -> tuple[int, ...] | None:
    """``"3x224x224"``, ``"3 x 224 x 224"`` or ``(3, 224, 224)`` as a shape tuple (None passes)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.lower().split("x")]
        if not all(p.isdigit() and len(p) <= 12 for p in parts):
            raise ResdslError(
                error(
                    "E213",
                    f"{where} {value!r} is not a shape",
                    ast.Span(f"<{where}>", 0, 0, 0, 0),
                    help="write it as C x H x W, e.g. '3x224x224', or a tuple (3, 224, 224)",
                )
            )
        value = [int(p) for p in parts]
    dims = tuple(value)
    if len(dims) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ResdslError(
            error(
                "E213",
                f"{where} {dims!r} must be C x H x W (or a vector size) with positive whole sizes",
                ast.Span(f"<{where}>", 0, 0, 0, 0),
            )
        )
    return dims


def check(
    spec: str | Path,
    overrides: Mapping[str, Any] | None = None,
    input_shape: str | Sequence[int] | None = None,
    network: str | None = None,
    *,
    ignore: Sequence[str] = (),
    max_layers: int | None = None,
    max_params: int | None = None,
    max_activation_gb: float | None = None,
    sources: Mapping[str | Path, str] | None = None,
    features: Sequence[str] | None = None,
    head: int | None = None,
) -> CheckResult:
    """Parse, elaborate and shape-check every network a spec defines; never raises on bad input.

    ``ignore`` silences warning codes (``["W403"]``); the ``max_*`` arguments raise the limits
    that refuse networks no machine could build (see :mod:`resdsl.semantics.limits`). ``sources`` maps
    file paths to text read instead of those files (an editor's unsaved buffers). ``features``
    checks feature outputs too: ``result.features[network]`` lists each one's shape and stride.
    ``head=N`` puts a linear layer ``head`` with N outputs on top of each network.
    """
    try:
        path, text, name = resolve_spec(spec)
        shape = parse_shape(input_shape)
    except ResdslError as exc:
        return CheckResult(str(spec), diagnostics=exc.diagnostics)
    limits = Limits.of(max_layers, max_params, max_activation_gb)
    network = network or name
    collector = Collector()
    overlay = {Path(k).resolve(): v for k, v in (sources or {}).items()}
    program = load(path, collector, text=text, overlay=overlay)
    result = CheckResult(program.root, sources=program.sources, program=program)
    try:
        values = {k: parse_override(k, v) for k, v in (overrides or {}).items()}
    except ResdslError as exc:
        collector.extend(exc.diagnostics)
        values = {}
    definitions = program.own_networks()
    if network is not None:
        chosen = [d for d in definitions if d.name == network]
        if not chosen and program.modules.get(program.root) is not None:
            names = [d.name for d in definitions]
            close = difflib.get_close_matches(network, names, n=1)
            collector.add(
                error(
                    "E104",
                    f"{program.root} defines no network '{network}'",
                    ast.Span(program.root, 0, 0, 0, 0),
                    help=f"did you mean '{close[0]}'?" if close else f"networks here: {', '.join(names) or 'none'}",
                )
            )
        definitions = chosen
    known = {p for d in definitions for p in network_params(program, d)}
    for key in values:
        if key not in known:
            collector.add(
                error(
                    "E216",
                    f"no network here has a parameter '{key}'",
                    ast.Span(program.root, 0, 0, 0, 0),
                    help=f"parameters: {', '.join(sorted(known)) or 'none'}",
                )
            )
    for definition in definitions:
        own = {k: v for k, v in values.items() if k in network_params(program, definition)}
        home = f"{NETWORK_CONTEXT} '{definition.name}' ({definition.name_span})"
        with collector.within("network", definition.span.file, home, definition.name_span):
            net = Elaborator(program, collector, limits).network(definition, own, shape, head)
            if net is not None:
                net.sources = program.sources  # before inference: fixes read the text they edit
                infer(net, collector)
                if not collector.has_errors:
                    collector.extend(check_budget(net, limits))
        if net is None:
            continue
        net.sources = dict(program.sources)
        net.source_file = program.root
        result.networks.append(net)
        if features is not None and not collector.has_errors:
            try:
                result.features[net.name] = list(plan(net, features).features)
            except ResdslError as exc:
                collector.extend(exc.diagnostics)
    if not definitions or network is None:
        collector.extend(check_unused_blocks(program, {id(b) for n in result.networks for b in n.blocks_used()}))
    silenced = {code.upper() for code in ignore}
    kept = [d for d in _dedupe(collector.items) if d.is_error or d.code not in silenced]
    result.diagnostics = name_overrides(group_repeats(ordered(kept)), overrides or {})
    return result


def _dedupe(items: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple] = set()
    out = []
    for d in items:
        key = (d.code, d.span, d.message, d.notes)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def compile(
    spec: Spec,
    network: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    max_layers: int | None = None,
    max_params: int | None = None,
    max_activation_gb: float | None = None,
    head: int | None = None,
    **overrides: Any,
) -> Network:
    """The checked IR of one network; raises :class:`ResdslError` with every error found.

    ``params={"num_classes": 10}`` sets the spec's parameters (as ``--set`` does); a parameter
    whose name is none of this function's keywords may be given as a keyword too
    (``compile("resnet50", num_classes=10)``)."""
    values = _spec_parameters(params, overrides)
    _refuse_clashes(spec, network, "compile", {"head": (head, _whole_or_none)})
    if isinstance(spec, Network):
        if values or input_shape or head is not None:
            raise TypeError("a compiled network cannot take parameters or a head; compile it from its spec again")
        return spec
    result = check(
        spec,
        values,
        input_shape,
        network,
        max_layers=max_layers,
        max_params=max_params,
        max_activation_gb=max_activation_gb,
        head=head,
    )
    result.raise_for_errors()
    return pick_network(result, spec, network)


def pick_network(result: CheckResult, spec: Spec, network: str | None = None) -> Network:
    nets = result.networks
    if network is not None:
        nets = [n for n in nets if n.name == network]
    if len(nets) == 1:
        return nets[0]
    stem = Path(result.file).stem
    for net in nets:
        if net.name == stem:
            return net
    span = ast.Span(result.file, 0, 0, 0, 0)
    if not result.networks:
        help = "a network is written network NAME(...) { input 3 x 224 x 224 ... }; blocks alone build nothing"
        raise ResdslError(error("E104", f"{result.file} defines no network", span, help=help))
    names = ", ".join(n.name for n in result.networks)
    if network is not None:  # (check reports a name the file does not define; this is a compiled IR)
        raise ResdslError(
            error("E104", f"{result.file} defines no network '{network}'", span, help=f"networks: {names}")
        )
    raise ResdslError(
        error(
            "E104",
            f"{result.file} defines networks {names}; say which one",
            span,
            help="pick one with --network NAME (network=NAME in the API)",
        )
    )


def build_model(
    spec: Spec,
    network: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    *,
    zero_init_residual: bool | None = None,
    norm: str | None = None,
    mode: str = "training",
    channels_last: bool = True,
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

    The spec's parameters go in ``params={"num_classes": 10, "norm": "groupnorm(32)"}``; one
    whose name is none of build_model's options may be given as a keyword too
    (``build_model("resnet50", num_classes=10)``). A keyword option always means the option:
    ``norm=`` is the batchnorm class below, not a spec's ``norm`` parameter, and an option given
    a value that only the spec's parameter of that name takes is refused (E219) before anything
    is built.

    ``zero_init_residual`` zeroes the last batchnorm gamma of every residual branch;
    ``norm="syncbatchnorm"`` builds ``nn.SyncBatchNorm`` layers for multi-GPU training.
    Both can also be set in the spec (as a parameter or a ``meta`` entry). A network past
    the size limits is refused before any tensor is allocated; ``max_*`` raise them.

    Fine-tuning (docs/finetune.md): ``weights`` loads a checkpoint (``strip_prefix`` drops a
    prefix such as ``"backbone."``); ``in_channels`` builds the network for another number of
    input channels; ``head=N`` adds an N-way linear layer ``head`` on top (a layer of the
    checked network, so generated code, inference builds and ONNX export take it too);
    ``freeze``/``freeze_until`` stop training modules, ``freeze_bn`` keeps their batchnorm
    statistics fixed.

    ``mode="inference"``: every conv followed by a batchnorm becomes one conv with the
    batchnorm folded in, in eval mode, gradients off, ``channels_last`` unless turned off.
    ``weights`` (a checkpoint, or the training model's state_dict) is loaded into the training
    model, checked as above, then folded (see :mod:`resdsl.ir.fold`); ``freeze``, ``features``
    and ``checkpoint`` apply to training builds only (E803).

    ``features=["layer1", ...]`` returns those top-level outputs as a dict (the classifier
    dropped, ``model.feature_info`` as timm's); ``checkpoint=True`` (or a list of stages)
    recomputes those stages in backward (see docs/features.md).
    """
    from resdsl.backends.torch import build
    from resdsl.weights.finetune import prepare

    values = _spec_parameters(params, overrides)
    options: dict[str, Any] = {"norm": norm, "mode": mode, "zero_init_residual": zero_init_residual}
    options |= {"head": head, "in_channels": in_channels, "features": features, "checkpoint": checkpoint}
    options |= {"channels_last": channels_last, "freeze_bn": freeze_bn}
    _refuse_clashes(spec, network, "build_model", _build_options(options))
    if mode not in ("training", "inference"):
        raise ResdslError(
            error(
                "E802",
                f"unknown build mode {mode!r}",
                ast.Span("<mode>", 0, 0, 0, 0),
                help="use 'training' or 'inference'",
            )
        )
    if in_channels is not None:  # the declared (or given) input with another channel count
        declared = (
            parse_shape(input_shape)
            or compile(spec, network, params=values, max_layers=max_layers, max_params=max_params).input_shape
        )
        input_shape = (in_channels, *declared[1:])
    net = compile(
        spec,
        network,
        input_shape,
        params=values,
        max_layers=max_layers,
        max_params=max_params,
        max_activation_gb=max_activation_gb,
        head=head,
    )
    if mode == "inference":
        from resdsl.weights.inference import build_inference

        given = {"freeze_until": freeze_until, "features": features}
        unused = [n for n, v in given.items() if v is not None]
        unused += [n for n, v in (("freeze", freeze), ("freeze_bn", freeze_bn), ("checkpoint", checkpoint)) if v]
        if unused:
            raise ResdslError(
                error(
                    "E803",
                    f"{', '.join(unused)}: training options; an inference build serves a fixed network",
                    ast.Span("<mode>", 0, 0, 0, 0),
                    help="fine-tune with mode='training', save_weights, then build the inference model from that file",
                )
            )
        return build_inference(net, weights, channels_last, zero_init_residual, strip_prefix)
    model = build(net, zero_init_residual=zero_init_residual, norm=norm, features=features, checkpoint=checkpoint)
    return prepare(
        model,
        weights=weights,
        strip_prefix=strip_prefix,
        freeze_modules=freeze,
        freeze_until=freeze_until,
        freeze_bn=freeze_bn,
    )


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

    values = _spec_parameters(params, overrides)
    options: dict[str, Option] = {"features": (features, _names_or_none), "head": (head, _whole_or_none)}
    options["checkpoint"] = (checkpoint, _checkpoint_option)
    _refuse_clashes(spec, network, "generate", options)
    spec_arg = None if isinstance(spec, Network) else str(spec)
    net = compile(
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

    values = _spec_parameters(params, overrides)
    _refuse_clashes(spec, network, "export_onnx", {"head": (head, _whole_or_none), "fold": (fold, _bool)})
    net = compile(spec, network, input_shape, params=values, head=head)
    origin = str(weights) if isinstance(weights, (str, Path)) else ""
    arrays = weight_arrays(weights) if isinstance(weights, (str, Path)) else weights
    if path is None:
        return onnx_model(net, arrays, batch, seed, fold, origin)
    return export(net, path, arrays, batch, seed, force, fold, origin)


def _spec_parameters(params: Mapping[str, Any] | None, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's parameters: ``params=`` and the keywords that are no option of the function;
    one given both ways is refused (E219)."""
    twice = sorted(set(params or {}) & set(keywords))
    if twice:
        raise ResdslError(
            error(
                "E219",
                f"the spec parameter{'s' * (len(twice) > 1)} {', '.join(map(repr, twice))} given twice: "
                "in params= and as a keyword",
                ast.Span("<params>", 0, 0, 0, 0),
                help="give each parameter once, in params={...}",
            )
        )
    return {**(params or {}), **keywords}


Option = tuple[Any, Callable[[Any], bool]]  # a keyword's value and whether the option takes it


def _refuse_clashes(spec: Spec, network: str | None, function: str, options: Mapping[str, Option]) -> None:
    """E219 for an option given a value it does not take while the spec has a parameter of that
    name: the caller meant the parameter (``build_model("resnet50", norm="groupnorm(32)")``)."""
    wrong = {name: value for name, (value, takes) in options.items() if not takes(value)}
    if not wrong:
        return
    names = set(spec.params) if isinstance(spec, Network) else _parameter_names(spec, network)
    for name, value in wrong.items():
        if name in names:
            raise ResdslError(
                error(
                    "E219",
                    f"{function}({name}=...) is {function}'s own option, and the spec also has a parameter "
                    f"'{name}'; {value!r} is not a value of the option",
                    ast.Span(f"<{name}>", 0, 0, 0, 0),
                    help=f"to set the spec's parameter, pass params={{{name!r}: {value!r}}}; "
                    + OPTION_DOCS.get(name, ""),
                )
            )


def _parameter_names(spec: str | Path, network: str | None) -> set[str]:
    """The parameters of the networks a spec defines (of ``network`` when given), read without
    elaborating anything; an empty set when the spec cannot be read (compiling says why)."""
    try:
        path, text, name = resolve_spec(spec)
    except ResdslError:
        return set()
    program = load(path, Collector(), text=text)
    wanted = network or name
    return {p for d in program.own_networks() if wanted is None or d.name == wanted for p in network_params(program, d)}


def _whole_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _names_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, Sequence) and not isinstance(value, str))


def _checkpoint_option(value: Any) -> bool:
    return value is None or isinstance(value, bool) or _names_or_none(value)


OPTION_DOCS = {
    "norm": "norm= is the batchnorm class: 'batchnorm' or 'syncbatchnorm'",
    "mode": "mode= is 'training' or 'inference'",
    "zero_init_residual": "zero_init_residual= is true or false",
    "head": "head= is a number of outputs for a new linear layer",
    "in_channels": "in_channels= is a number of input channels",
    "features": "features= lists the layers whose outputs to return",
    "checkpoint": "checkpoint= is true or a list of stages",
}


def _build_options(given: Mapping[str, Any]) -> dict[str, Option]:
    """build_model's options that a spec parameter could be mistaken for, with their values."""
    return {
        "norm": (given["norm"], lambda v: v in (None, "batchnorm", "syncbatchnorm")),
        "mode": (given["mode"], lambda v: v in ("training", "inference")),
        "zero_init_residual": (given["zero_init_residual"], lambda v: v is None or isinstance(v, bool)),
        "head": (given["head"], _whole_or_none),
        "in_channels": (given["in_channels"], _whole_or_none),
        "features": (given["features"], _names_or_none),
        "checkpoint": (given["checkpoint"], _checkpoint_option),
        "channels_last": (given["channels_last"], _bool),
        "freeze_bn": (given["freeze_bn"], _bool),
    }


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


__all__ = [
    "CheckResult",
    "build_model",
    "check",
    "compile",
    "export_onnx",
    "generate",
    "library_dir",
    "save_weights",
    "shipped_names",
]
