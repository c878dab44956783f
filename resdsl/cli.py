"""The ``resdsl`` command line: check, summary, build, export, fmt and the rest.

Exit codes: 0 clean (warnings allowed), 1 errors found, 2 usage error. Diagnostics go to
stderr as ``PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`` with an excerpt; results go to stdout.
No Python traceback reaches the user: bad input is a diagnostic, anything else an
"internal error" line with exit code 3.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from resdsl import __version__
from resdsl.api import CheckResult, check, pick_network
from resdsl.ast import Span
from resdsl.diagnostics import Diagnostic, ResdslError, SourceCache, error, format_diagnostic, to_json
from resdsl.ir import Network
from resdsl.limits import activation_bytes, human_bytes
from resdsl.ops import fmt_shape

_STYLES = {"error": "bold red", "warning": "bold yellow"}


def _console(stderr: bool = False) -> Any:
    from rich.console import Console  # imported on demand: a clean `check` should start fast

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def render(diagnostics: Sequence[Diagnostic], sources: dict[str, str] | None = None) -> None:
    """Print diagnostics like a compiler, coloured when stderr is a terminal."""
    if not diagnostics:
        return
    from rich.text import Text

    console = _console(stderr=True)
    cache = SourceCache(sources)
    for d in diagnostics:
        lines = format_diagnostic(d, cache).split("\n")
        header = Text(lines[0])
        header.stylize(_STYLES.get(d.severity, ""), lines[0].find(f"{d.severity}["))
        console.print(header)
        for line in lines[1:]:
            style = (
                "cyan"
                if line.lstrip().startswith("help:")
                else ("green" if set(line.strip("| ")) <= {"^", "~"} else "")
            )
            console.print(Text(line, style=style))


def _parse_sets(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key.strip()) or not value.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


def _parse_input(value: str | None) -> tuple[int, ...] | None:
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
    """What the common options say, for :func:`_check_all`."""

    sets: tuple[str, ...] = ()
    input_shape: str | None = None
    network: str | None = None
    ignore: tuple[str, ...] = ()
    max_layers: int | None = None
    max_params: int | None = None
    max_activation_gb: float | None = None


_OPTION_NAMES = ("sets", "input_shape", "network", "ignore", "max_layers", "max_params", "max_activation_gb")


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


def _check_all(specs: Sequence[str], options: Options, features: Sequence[str] | None = None) -> list[CheckResult]:
    overrides = _parse_sets(options.sets)
    dims = _parse_input(options.input_shape)
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
        )
        for spec in specs
    ]


def _names(value: str | None) -> list[str] | None:
    """``--features layer1,layer2`` as a list (None when not given)."""
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]


_features_option = click.option(
    "--features",
    default=None,
    metavar="NAMES",
    help="Top-level layers to return as feature maps, comma-separated (layer1,layer2,layer3,layer4).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="resdsl")
def cli() -> None:
    """resdsl: describe residual networks in .arch files, check them, build them.

    SPEC is a path to an .arch file or the name of a shipped network (resnet50, resnet110,
    preact_resnet164, ...; see the README). Diagnostic codes are listed in docs/errors.md.
    """


@cli.command("check")
@click.argument("specs", nargs=-1, required=True)
@common
@click.option("--json", "as_json", is_flag=True, help="Print diagnostics as a JSON list.")
@click.option("--fix", is_flag=True, help="Apply the mechanical fixes (rewrites the files; says what changed).")
@_features_option
def check_cmd(specs: tuple[str, ...], options: Options, as_json: bool, fix: bool, features: str | None) -> None:
    """Find shape errors in specs (files or shipped names) without building anything."""
    results = _check_all(specs, options, _names(features))
    if fix:
        results = _fix(specs, options, results, _names(features))
    diagnostics = [d for r in results for d in r.diagnostics]
    if as_json:
        click.echo(to_json(diagnostics))
    else:
        render(diagnostics, {k: v for r in results for k, v in r.sources.items()})
        for result in results:
            if result.ok and not result.networks:
                click.echo(f"{result.file}: no networks to check (blocks are checked where a network uses them)")
            for net in result.networks:
                if any(d.is_error for d in result.diagnostics):
                    continue
                click.echo(
                    f"{net.name}: {net.weighted_layers} weighted layers, {net.num_params:,} parameters, "
                    f"{net.macs / 1e9:.3f} GMACs, output {fmt_shape(net.output_shape)}, "
                    f"{human_bytes(activation_bytes(net))} activations per sample  ({result.file})"
                )
                for feature in result.features.get(net.name, []):
                    click.echo(f"  feature {feature.describe()}")
        errors = sum(d.is_error for d in diagnostics)
        warnings = len(diagnostics) - errors
        if errors or warnings:
            _console(stderr=True).print(
                f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
            )
    sys.exit(1 if any(not r.ok for r in results) else 0)


def _fix(
    specs: Sequence[str], options: Options, results: list[CheckResult], features: Sequence[str] | None = None
) -> list[CheckResult]:
    """Apply every safe fix (resdsl.fixes), print each on stderr, and check again; a fix that
    clashed with another is picked up by the next round."""
    from resdsl.fixes import plan_fixes, write_atomic

    made = 0
    for _round in range(3):
        sources = {k: v for r in results for k, v in r.sources.items()}
        plan = plan_fixes([d for r in results for d in r.diagnostics], sources)
        if not plan.texts:
            break
        for file, text in plan.texts.items():
            try:
                write_atomic(file, text)
            except OSError as exc:
                span = Span(file, 0, 0, 0, 0)
                raise ResdslError(error("E502", f"cannot write {file}: {exc.strerror or exc}", span)) from None
        for d, fixed in sorted(plan.applied, key=lambda pair: str(pair[1].edits[0].span)):
            click.echo(f"fixed {fixed.edits[0].span}: {fixed.title} [{d.code}]", err=True)
        made += len(plan.applied)
        results = _check_all(specs, options, features)
    click.echo(f"{made} fix{'es' * (made != 1)} applied" if made else "no mechanical fixes to apply", err=True)
    return results


@cli.command("summary")
@click.argument("spec")
@common
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=None,
    help="Fold rows: 1 = one row per stage, 2 = per block (network 0, stage 1, block in a stage 2).",
)
def summary_cmd(spec: str, options: Options, as_json: bool, depth: int | None) -> None:
    """Print a per-layer table: output shape, parameters, MACs, and totals.

    The table is plain text, never truncated (pipe it to grep); --depth folds blocks or
    stages into one row each, with summed parameters and MACs, shapes and output stride.
    """
    from resdsl.summary import summary_json, summary_text

    (result,) = _check_all([spec], options)
    if not result.ok:
        render(result.diagnostics, result.sources)
        sys.exit(1)
    net = pick_network(result, spec, options.network)
    if as_json:
        click.echo(summary_json(net, depth))
    else:
        render(result.diagnostics, result.sources)
        click.echo(summary_text(net, depth))


def _checked_network(spec: str, options: Options, features: Sequence[str] | None = None) -> Network:
    """The one network a writing command works on; its diagnostics printed, exit 1 on errors."""
    (result,) = _check_all([spec], options, features)
    render(result.diagnostics, result.sources)
    if not result.ok:
        sys.exit(1)
    return pick_network(result, spec, options.network)


@cli.command("build")
@click.argument("spec")
@common
@click.option("-o", "--output", default=None, help="Output file (default ./<network>.py; '-' for stdout).")
@click.option("--force", is_flag=True, help="Overwrite a file resdsl did not generate, or one edited since.")
@click.option(
    "--weights",
    "weights",
    default=None,
    metavar="PATH",
    help="Check that this checkpoint fits the network and make it the factory's default weights.",
)
@click.option("--inference", is_flag=True, help="Batchnorm folded into the convs, with from_trained(state_dict).")
@click.option(
    "--channels-last/--no-channels-last", default=True, help="--inference: from_trained's default memory format."
)
@_features_option
@click.option(
    "--checkpoint",
    default=None,
    metavar="STAGES",
    help="Stages to run under gradient checkpointing, comma-separated, or 'all'.",
)
def build_cmd(
    spec: str,
    options: Options,
    output: str | None,
    force: bool,
    weights: str | None,
    inference: bool,
    channels_last: bool,
    features: str | None,
    checkpoint: str | None,
) -> None:
    """Write SPEC as a standalone PyTorch module that needs only torch (--inference: the
    inference build, default file ./<network>_inference.py)."""
    from resdsl.backends.codegen import generate, write_generated

    if inference and weights is not None:
        raise click.UsageError(
            "--weights takes a checkpoint of the training network; the inference module folds one with "
            "from_trained(state_dict), or use resdsl.build_model(spec, mode='inference', weights=PATH)"
        )
    if inference and (features is not None or checkpoint is not None):
        raise click.UsageError("--features and --checkpoint build training modules; leave out --inference")
    if features is not None and weights is not None:
        raise click.UsageError(
            "a generated feature module loads only its own keys; load a full checkpoint with "
            "resdsl.build_model(spec, features=..., weights=PATH), which leaves out the dropped layers"
        )
    net = _checked_network(spec, options, _names(features))
    target = output or f"{net.name}{'_inference' if inference else ''}.py"
    stages = True if checkpoint == "all" else _names(checkpoint)
    if weights is not None:  # refused before anything is written if it does not fit
        from resdsl.weights import verify

        report, found = verify(net, weights)
        render(found)
        click.echo(str(report), err=True)
    code = generate(
        net,
        overrides=_parse_sets(options.sets),
        spec_arg=spec,
        output=None if output == "-" else target,
        weights=weights,
        inference=inference,
        channels_last=channels_last,
        features=_names(features),
        checkpoint=stages,
    )
    if output == "-":
        click.echo(code, nl=False)
        return
    _make_parent(target)
    write_generated(target, code, force=force)
    click.echo(f"wrote {target} ({net.name}, {net.num_params:,} parameters)", err=True)


def _make_parent(target: str) -> None:
    """``-o models/net.py`` creates ``models/`` as a user expects; a file in the way is an error."""
    parent = Path(target).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        span = Span(target, 0, 0, 0, 0)
        raise ResdslError(error("E502", f"cannot create the folder {parent}: {exc.strerror or exc}", span)) from None


@cli.command("export")
@click.argument("spec")
@common
@click.option("-o", "--output", default=None, help="Output file (default ./<network>.onnx).")
@click.option(
    "--weights", default=None, metavar="PATH", help="A .safetensors file (or a torch checkpoint, which needs torch)."
)
@click.option("--batch", default="1", show_default=True, help="Batch size, or 'dynamic' for a symbolic one.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights (no --weights).")
@click.option("--force", is_flag=True, help="Overwrite a file that resdsl export did not write.")
@click.option(
    "--fold/--no-fold", default=True, show_default=True, help="Fold each batchnorm that follows a conv into it."
)
def export_cmd(
    spec: str, options: Options, output: str | None, weights: str | None, batch: str, seed: int, force: bool, fold: bool
) -> None:
    """Write SPEC as an ONNX model, built from the checked network (no torch, no tracing)."""
    from resdsl.backends.onnx import export, parse_batch, require_onnx

    require_onnx()
    parse_batch(batch)  # a bad --batch is reported before the spec is compiled
    net = _checked_network(spec, options)
    target = output or f"{net.name}.onnx"
    _make_parent(target)
    export(net, target, weights, batch, seed, force, fold)
    made = f"weights from {weights}" if weights else f"random weights, seed {seed}"
    click.echo(f"wrote {target} ({net.name}, {net.num_params:,} parameters, {made})", err=True)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_cmd(as_json: bool) -> None:
    """List every shipped network: depth (weighted layers), parameters, GMACs, source file."""
    from resdsl.catalog import catalog, catalog_text, diagnostics

    entries, failed = catalog()
    if failed:
        render(diagnostics(failed), {k: v for r in failed for k, v in r.sources.items()})
    if as_json:
        rows = ",\n".join(f"  {json.dumps(e.as_json())}" for e in entries)
        click.echo(f"[\n{rows}\n]" if entries else "[]")
    else:
        click.echo(catalog_text(entries))
    sys.exit(1 if failed else 0)


@cli.command("fmt")
@click.argument("files", nargs=-1, required=True)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing the files that would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print what would change as a unified diff.")
def fmt_cmd(files: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Rewrite .arch FILES (or every .arch under a folder) in the canonical layout, comments kept.

    A file that does not parse gets the usual diagnostics and is left as it is. FILES '-' formats
    standard input to standard output (for editors' format-on-save).
    """
    from resdsl.fmt_files import run

    def echo(text: str, err: bool) -> None:
        click.echo(text, nl=False, err=err)

    stdin = click.get_text_stream("stdin")
    sys.exit(run(files, check=check, show_diff=show_diff, echo=echo, render=render, stdin=stdin))


@cli.command("explain")
@click.argument("code")
def explain_cmd(code: str) -> None:
    """Explain a diagnostic CODE (E301, W401, ...): what it means, an example that gives it, its fix."""
    from resdsl.errors_catalog import entries, explain_text

    catalog = entries()
    entry = catalog.get(code.strip().upper())
    if entry is None:
        near = [c for c in catalog if c[:2] == code.strip().upper()[:2]]
        hint = f"codes of that range: {', '.join(near)}" if near else f"known codes: {', '.join(catalog)}"
        raise click.BadParameter(f"unknown code {code!r}; {hint} (see docs/errors.md)", param_hint="CODE")
    click.echo(explain_text(entry), nl=False)


@cli.command("graph")
@click.argument("spec")
@common
@click.option(
    "-o",
    "--output",
    required=True,
    help="Picture file: .dot (written by resdsl), .svg, .png or .pdf (rendered by Graphviz's dot).",
)
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=None,
    help="Collapse scopes into single nodes: 1 = stages, 2 = blocks (network 0, stage 1, block in a stage 2).",
)
def graph_cmd(spec: str, options: Options, output: str, depth: int | None) -> None:
    """Draw SPEC: stages and blocks as clusters, merges with their shortcuts, shapes on edges."""
    from resdsl.graph import LARGE, GraphError, count_nodes, output_format, write_graph

    try:
        fmt = output_format(output)
    except GraphError as exc:
        raise click.BadParameter(f"{exc.message}; {exc.hint}", param_hint="-o") from None
    (result,) = _check_all([spec], options)
    render(result.diagnostics, result.sources)
    if not result.ok:
        sys.exit(1)
    net = pick_network(result, spec, options.network)
    nodes = count_nodes(net, depth)
    if fmt is not None and nodes > LARGE:
        click.echo(
            f"note: {nodes:,} nodes; Graphviz may take minutes to lay them out "
            "(--depth 2 draws one node per block, --depth 1 one per stage)",
            err=True,
        )
    _make_parent(output)
    try:
        write_graph(net, output, depth)
    except GraphError as exc:
        raise click.ClickException(f"{exc.message}\n  help: {exc.hint}") from None
    click.echo(f"wrote {output} ({net.name}, {nodes:,} nodes)", err=True)


@cli.command("lsp")
@click.option("--stdio", is_flag=True, help="Talk over stdin and stdout (the default, and the only transport).")
def lsp_cmd(stdio: bool) -> None:
    """Run the language server for editors (LSP over stdio; docs/editors.md says how to connect)."""
    try:
        from resdsl.lsp.server import main as serve
    except ImportError as exc:
        message = f"resdsl lsp needs pygls>=2 and lsprotocol ({exc}); pip install 'pygls>=2'"
        raise click.ClickException(message) from None
    serve()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: runs the click group and turns every failure into a message."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="resdsl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _console(stderr=True).print("aborted")
        sys.exit(130)
    except ResdslError as exc:
        render(exc.diagnostics)
        sys.exit(1)
    except OSError as exc:
        _console(stderr=True).print(f"resdsl: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # never a traceback
        _console(stderr=True).print(f"resdsl: internal error: {type(exc).__name__}: {exc} (please report this)")
        sys.exit(3)
