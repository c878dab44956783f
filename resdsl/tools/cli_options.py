"""How the ``resdsl`` commands read their shared options and print diagnostics.

Every command that reads a spec takes the same options (``--set``, ``--input``, ``--network``,
``--ignore``, the ``--max-*`` limits) and turns a :class:`~resdsl.diagnostics.ResdslError` into
rendered diagnostics and exit code 1, never a traceback; :mod:`resdsl.tools.cli` defines the commands.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from resdsl.api import CheckResult, check
from resdsl.diagnostics import Diagnostic, ResdslError, SourceCache, format_diagnostic, group_repeats

_STYLES = {"error": "bold red", "warning": "bold yellow"}


def console(stderr: bool = False) -> Any:
    from rich.console import Console  # imported on demand: a clean `check` should start fast

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def render(diagnostics: Sequence[Diagnostic], sources: dict[str, str] | None = None) -> None:
    """Print diagnostics like a compiler, coloured when stderr is a terminal."""
    if not diagnostics:
        return
    from rich.text import Text

    out = console(stderr=True)
    cache = SourceCache(sources)
    for d in group_repeats(diagnostics, errors=True):  # one error of a library line, not one per instance
        lines = format_diagnostic(d, cache).split("\n")
        header = Text(lines[0])
        header.stylize(_STYLES.get(d.severity, ""), lines[0].find(f"{d.severity}["))
        out.print(header)
        for line in lines[1:]:
            style = (
                "cyan"
                if line.lstrip().startswith("help:")
                else ("green" if set(line.strip("| ")) <= {"^", "~"} else "")
            )
            out.print(Text(line, style=style))


def parse_sets(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key.strip()) or not value.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


def parse_input(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    m = re.fullmatch(r"\s*\d+(\s*x\s*\d+)*\s*", value)
    if not m:
        raise click.BadParameter(f"expected a shape like 3x224x224, got {value!r}", param_hint="--input")
    dims = tuple(int(d) for d in value.replace(" ", "").split("x"))
    if len(dims) not in (1, 3) or min(dims) < 1:
        raise click.BadParameter("the input is C x H x W (or a vector size) with positive sizes", param_hint="--input")
    return dims


_common = [
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a network parameter."),
    click.option("--input", "input_shape", metavar="CxHxW", help="Check at another input shape, e.g. 3x320x320."),
    click.option("--network", default=None, help="Pick one network when a file defines several."),
    click.option(
        "--head",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Put a linear layer 'head' with N outputs on top of the network (fine-tuning, docs/finetune.md).",
    ),
    click.option("--ignore", "ignore", multiple=True, metavar="CODE", help="Silence a warning code, e.g. W403."),
    click.option("--max-layers", type=click.IntRange(min=1), default=None, help="Raise the layer limit (100,000)."),
    click.option("--max-params", type=click.IntRange(min=1), default=None, help="Raise the parameter limit (2e9)."),
    click.option(
        "--max-activation-gb",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Raise the activation memory limit per sample (64 GiB).",
    ),
]


@dataclass(frozen=True)
class Options:
    """What the common options say, for :func:`check_all`."""

    sets: tuple[str, ...] = ()
    input_shape: str | None = None
    network: str | None = None
    head: int | None = None
    ignore: tuple[str, ...] = ()
    max_layers: int | None = None
    max_params: int | None = None
    max_activation_gb: float | None = None


_OPTION_NAMES = ("sets", "input_shape", "network", "head", "ignore", "max_layers", "max_params", "max_activation_gb")


def common(func: Any) -> Any:
    """The options every command takes, and diagnostics (not tracebacks) for bad input."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        options = Options(**{name: kwargs.pop(name) for name in _OPTION_NAMES})
        try:
            return func(*args, options=options, **kwargs)
        except ResdslError as exc:
            render(exc.diagnostics)
            sys.exit(1)

    for option in reversed(_common):
        run = option(run)
    return run


def check_all(specs: Sequence[str], options: Options, features: Sequence[str] | None = None) -> list[CheckResult]:
    overrides = parse_sets(options.sets)
    dims = parse_input(options.input_shape)
    return [
        check(
            spec,
            overrides,
            dims,
            options.network,
            ignore=options.ignore,
            max_layers=options.max_layers,
            max_params=options.max_params,
            max_activation_gb=options.max_activation_gb,
            features=features,
            head=options.head,
        )
        for spec in specs
    ]


def name_list(value: str | None) -> list[str] | None:
    """``--features layer1,layer2`` as a list (None when not given)."""
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]


features_option = click.option(
    "--features",
    default=None,
    metavar="NAMES",
    help="Layers to return as feature maps, comma-separated: top-level names (layer1,layer2,layer3,layer4) "
    "or module paths inside stages, sequential groups and chain blocks (blocks.2, layer3.5, features.denseblock1).",
)
