"""Spec to checked network: resolve a spec, check it (diagnostics, never an exception), compile
it (the checked :class:`~resdsl.ir.Network`, or :class:`ResdslError`). No torch here: this is
what ``resdsl check`` runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.api.options import refuse_clashes, spec_parameters, whole_or_none
from resdsl.api.specs import Spec, parse_override, parse_shape, resolve_spec
from resdsl.checks.shapes import infer
from resdsl.diagnostics import NETWORK_CONTEXT, Collector, Diagnostic, ResdslError, error, group_repeats, ordered
from resdsl.diagnostics.ignores import silenced as ignored_at
from resdsl.diagnostics.overrides import name_overrides
from resdsl.ir import Network
from resdsl.ir.features import Feature, plan
from resdsl.semantics.elaborate import Elaborator, Program, load, network_params
from resdsl.semantics.limits import Limits, check_budget
from resdsl.semantics.resolve import check_unused_blocks
from resdsl.syntax import ast

if TYPE_CHECKING:
    pass


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
    values = _override_values(overrides, collector)
    definitions = _chosen_networks(program, network, collector)
    _refuse_unknown_parameters(program, definitions, values, collector)
    for definition in definitions:
        net = _check_network(program, definition, values, shape, head, limits, collector)
        if net is None:
            continue
        result.networks.append(net)
        if features is not None and not collector.has_errors:
            try:
                result.features[net.name] = list(plan(net, features).features)
            except ResdslError as exc:
                collector.extend(exc.diagnostics)
    if not definitions or network is None:
        collector.extend(check_unused_blocks(program, {id(b) for n in result.networks for b in n.blocks_used()}))
    silenced = {code.upper() for code in ignore}
    kept = [
        d
        for d in _dedupe(collector.items)
        if d.is_error or (d.code not in silenced and not ignored_at(d.severity, d.code, d.span, program.sources))
    ]
    result.diagnostics = name_overrides(group_repeats(ordered(kept)), overrides or {})
    return result


NetworkDefinition = ast.NetworkDef | ast.NetworkAlias


def _override_values(overrides: Mapping[str, Any] | None, collector: Collector) -> dict[str, Any]:
    """The overrides' values (``--set`` strings parsed as the language's values); a bad one is a
    diagnostic, and then none applies."""
    try:
        return {k: parse_override(k, v) for k, v in (overrides or {}).items()}
    except ResdslError as exc:
        collector.extend(exc.diagnostics)
        return {}


def _chosen_networks(program: Program, network: str | None, collector: Collector) -> list[NetworkDefinition]:
    """The networks the spec's own file defines, or the one named (E104 when it defines none of
    that name, with the closest name)."""
    definitions = program.own_networks()
    if network is None:
        return list(definitions)
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
    return chosen


def _refuse_unknown_parameters(
    program: Program, definitions: list[NetworkDefinition], values: Mapping[str, Any], collector: Collector
) -> None:
    """E216 for an override that no chosen network takes."""
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


def _check_network(
    program: Program,
    definition: NetworkDefinition,
    values: Mapping[str, Any],
    shape: tuple[int, ...] | None,
    head: int | None,
    limits: Limits,
    collector: Collector,
) -> Network | None:
    """One network elaborated with the overrides it takes, shape-checked, and held to the size
    limits; None where elaboration failed (the collector says why)."""
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
        return None
    net.sources = dict(program.sources)
    net.source_file = program.root
    return net


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
    values = spec_parameters(params, overrides)
    refuse_clashes(spec, network, "compile", {"head": (head, whole_or_none)})
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
