"""The Python API: compile a spec, check it, build a model, generate code.

A *spec* is a path to an ``.arch`` file, the text of one, a shipped name (``"resnet50"``)
or an already compiled :class:`~resdsl.ir.Network`. Torch is imported only by the
functions that need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl import ast
from resdsl.diagnostics import Collector, Diagnostic, ResdslError, error
from resdsl.elaborate import Elaborator, Failed, Program, load, network_params
from resdsl.ir import Network
from resdsl.parser import parse_expr
from resdsl.resources import library_dir, shipped_specs
from resdsl.shapes import infer

if TYPE_CHECKING:
    import torch

Spec = str | Path | Network


@dataclass
class CheckResult:
    """What checking one spec found: the networks it defines and every diagnostic."""

    file: str
    networks: list[Network] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

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
    if isinstance(spec, Path) or text.endswith(".arch") or ("/" in text and "{" not in text):
        return Path(spec), None, None
    if "{" in text or "\n" in text:
        return None, text, None
    candidate = Path(text)
    if candidate.is_file():
        return candidate, None, None
    shipped = shipped_names()
    if text in shipped:
        return shipped[text], None, text
    available = ", ".join(sorted(shipped))
    raise ResdslError(
        error(
            "E104",
            f"'{text}' is neither a file nor a shipped network",
            ast.Span(text, 0, 0, 0, 0),
            help=f"shipped networks: {available}",
        )
    )


def parse_override(key: str, value: Any) -> Any:
    """A ``--set`` value written in the language (``10``, ``true``, ``projection``, ``[1, 2]``)."""
    if not isinstance(value, str):
        return value
    collector = Collector()
    expr = parse_expr(value, f"--set {key}")
    try:
        return Elaborator(Program("--set"), collector).eval(expr, {})
    except Failed:
        raise ResdslError(collector.items) from None


def check(
    spec: str | Path,
    overrides: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    network: str | None = None,
) -> CheckResult:
    """Parse, elaborate and shape-check every network a spec defines; never raises on bad input."""
    try:
        path, text, name = resolve_spec(spec)
    except ResdslError as exc:
        return CheckResult(str(spec), diagnostics=exc.diagnostics)
    network = network or name
    collector = Collector()
    program = load(path, collector, text=text)
    result = CheckResult(program.root, sources=program.sources)
    try:
        values = {k: parse_override(k, v) for k, v in (overrides or {}).items()}
    except ResdslError as exc:
        collector.extend(exc.diagnostics)
        values = {}
    definitions = program.own_networks()
    if network is not None:
        definitions = [d for d in definitions if d.name == network]
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
        before = len(collector.items)
        net = Elaborator(program, collector).network(definition, own, input_shape)
        if net is not None:
            infer(net, collector)
        _point_home(collector, before, definition)
        if net is None:
            continue
        net.sources = dict(program.sources)
        net.source_file = program.root
        result.networks.append(net)
    result.diagnostics = _dedupe(collector.items)
    return result


def _point_home(collector: Collector, start: int, definition: ast.Definition) -> None:
    """A problem found in another file (a library block) also names the network being checked."""
    for i in range(start, len(collector.items)):
        d = collector.items[i]
        if d.span.file != definition.span.file:
            note = f"while checking network '{definition.name}' ({definition.name_span})"
            collector.items[i] = dataclasses.replace(d, notes=(*d.notes, note))


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
    spec: Spec, network: str | None = None, input_shape: Sequence[int] | None = None, **overrides: Any
) -> Network:
    """The checked IR of one network; raises :class:`ResdslError` with every error found."""
    if isinstance(spec, Network):
        if overrides or input_shape:
            raise TypeError("a compiled network cannot take overrides; compile it from its spec again")
        return spec
    result = check(spec, overrides, input_shape, network)
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
    names = ", ".join(n.name for n in result.networks) or "none"
    raise ResdslError(
        error("E104", f"{result.file} defines networks {names}; say which one", ast.Span(result.file, 0, 0, 0, 0))
    )


def build_model(
    spec: Spec,
    network: str | None = None,
    input_shape: Sequence[int] | None = None,
    *,
    zero_init_residual: bool | None = None,
    norm: str | None = None,
    **overrides: Any,
) -> torch.nn.Module:
    """An ``nn.Module`` for the spec, with modules named as the spec names its layers.

    ``zero_init_residual`` zeroes the last batchnorm gamma of every residual branch;
    ``norm="syncbatchnorm"`` builds ``nn.SyncBatchNorm`` layers for multi-GPU training.
    Both can also be set in the spec (as a parameter or a ``meta`` entry).
    """
    from resdsl.backends.torch import build

    return build(compile(spec, network, input_shape, **overrides), zero_init_residual=zero_init_residual, norm=norm)


def generate(spec: Spec, network: str | None = None, input_shape: Sequence[int] | None = None, **overrides: Any) -> str:
    """The source of a standalone PyTorch module for the spec."""
    from resdsl.backends.codegen import generate as _generate

    spec_arg = None if isinstance(spec, Network) else str(spec)
    return _generate(compile(spec, network, input_shape, **overrides), overrides=overrides, spec_arg=spec_arg)


__all__ = ["CheckResult", "build_model", "check", "compile", "generate", "library_dir", "shipped_names"]
