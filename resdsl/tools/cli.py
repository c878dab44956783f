"""The ``resdsl`` command line: check, summary, build, export, fmt and the rest.

Exit codes: 0 clean (warnings allowed), 1 errors found, 2 usage error. Diagnostics go to
stderr as ``PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`` with an excerpt; results go to stdout.
No Python traceback reaches the user: bad input is a diagnostic, anything else an
"internal error" line with exit code 3.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from resdsl._version import __version__
from resdsl.api import CheckResult, pick_network
from resdsl.diagnostics import ResdslError, error
from resdsl.ir import Network
from resdsl.syntax.ast import Span
from resdsl.tools.cli_import import import_cmd
from resdsl.tools.cli_options import (
    Options,
    check_all,
    common,
    console,
    features_option,
    name_list,
    parse_sets,
    render,
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
@click.option(
    "--json", "as_json", is_flag=True, help="Print the figures and diagnostics as one JSON object (docs/cli.md)."
)
@click.option("--fix", is_flag=True, help="Apply the mechanical fixes (rewrites the files; says what changed).")
@features_option
def check_cmd(specs: tuple[str, ...], options: Options, as_json: bool, fix: bool, features: str | None) -> None:
    """Find shape errors in specs (files or shipped names) without building anything."""
    from resdsl.tools.check_report import Figures, report_json

    results = check_all(specs, options, name_list(features))
    if fix:
        results = _fix(specs, options, results, name_list(features))
    diagnostics = [d for r in results for d in r.diagnostics]
    if as_json:
        click.echo(report_json(results))
        sys.exit(1 if any(not r.ok for r in results) else 0)
    render(diagnostics, {k: v for r in results for k, v in r.sources.items()})
    for result in results:
        if result.ok and not result.networks:
            click.echo(f"{result.file}: no networks to check (blocks are checked where a network uses them)")
        for net in result.networks if result.ok else []:
            click.echo("\n".join(Figures.of(net, result).text()))
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors or warnings:
        console(stderr=True).print(f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    sys.exit(1 if any(not r.ok for r in results) else 0)


def _fix(
    specs: Sequence[str], options: Options, results: list[CheckResult], features: Sequence[str] | None = None
) -> list[CheckResult]:
    """Apply every safe fix (resdsl.diagnostics.fixes), print each on stderr, and check again; a fix that
    clashed with another is picked up by the next round."""
    from resdsl.diagnostics.files import keep_endings
    from resdsl.diagnostics.files import replace_file as write_atomic
    from resdsl.diagnostics.fixplan import plan_fixes

    made = 0
    for _round in range(3):
        sources = {k: v for r in results for k, v in r.sources.items()}
        plan = plan_fixes([d for r in results for d in r.diagnostics], sources)
        if not plan.texts:
            break
        for file, text in plan.texts.items():
            try:  # the sources were read with universal newlines: write the file's own endings back
                write_atomic(file, keep_endings(Path(file).read_bytes().decode("utf-8"), text))
            except (OSError, UnicodeDecodeError) as exc:  # the file changed since it was checked
                span = Span(file, 0, 0, 0, 0)
                why = getattr(exc, "strerror", None) or exc
                raise ResdslError(error("E502", f"cannot write {file}: {why}", span)) from None
        for d, fixed in sorted(plan.applied, key=lambda pair: _position(pair[1].edits[0].span)):
            click.echo(f"fixed {fixed.edits[0].span}: {fixed.title} [{d.code}]", err=True)
        made += len(plan.applied)
        results = check_all(specs, options, features)
    click.echo(f"{made} fix{'es' * (made != 1)} applied" if made else "no mechanical fixes to apply", err=True)
    return results


def _position(span: Span) -> tuple[str, int, int]:
    """Fixes are listed by file and position (line 6 before line 11, not as text sorts them)."""
    return span.file, span.line, span.column


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
    from resdsl.tools.summary import summary_json, summary_text

    (result,) = check_all([spec], options)
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
    (result,) = check_all([spec], options, features)
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
@features_option
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
    stages = True if checkpoint == "all" else name_list(checkpoint)
    if checkpoint is not None and not stages:
        raise click.UsageError("--checkpoint takes stage names, comma-separated (layer1,layer2), or 'all'")
    net = _checked_network(spec, options, name_list(features))
    target = output or f"{net.name}{'_inference' if inference else ''}.py"
    if weights is not None:  # refused before anything is written if it does not fit
        from resdsl.weights import verify

        report, found = verify(net, weights)
        render(found)
        click.echo(str(report), err=True)
    code = generate(
        net,
        overrides=parse_sets(options.sets),
        spec_arg=spec,
        output=None if output == "-" else target,
        weights=weights,
        inference=inference,
        channels_last=channels_last,
        features=name_list(features),
        checkpoint=stages,
    )
    if output == "-":
        click.echo(code, nl=False)
        return
    _make_parent(target)
    write_generated(target, code, force=force)
    if features is not None:  # the layers after the last feature are not built
        from resdsl.ir.features import plan

        net = plan(net, name_list(features)).network
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
@click.option(
    "--batch",
    default="dynamic",
    show_default=True,
    help="The input's first dimension: 'dynamic' (the symbol batch, as serving stacks expect) or a fixed size.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the random weights (no --weights).",
)
@click.option("--force", is_flag=True, help="Overwrite a file that resdsl export did not write.")
@click.option(
    "--fold/--no-fold", default=True, show_default=True, help="Fold each batchnorm that follows a conv into it."
)
def export_cmd(
    spec: str, options: Options, output: str | None, weights: str | None, batch: str, seed: int, force: bool, fold: bool
) -> None:
    """Write SPEC as an ONNX model, built from the checked network (no torch, no tracing)."""
    from resdsl.api import weight_arrays
    from resdsl.backends.onnx import export, parse_batch, require_onnx

    require_onnx()
    parse_batch(batch)  # a bad --batch is reported before the spec is compiled
    net = _checked_network(spec, options)
    target = output or f"{net.name}.onnx"
    _make_parent(target)
    arrays = weight_arrays(weights) if weights else None
    export(net, target, arrays, batch, seed, force, fold, origin=weights or "")
    made = f"weights from {weights}" if weights else f"random weights, seed {seed}"
    click.echo(f"wrote {target} ({net.name}, {net.num_params:,} parameters, {made})", err=True)


@cli.command("list")
@click.argument("files", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_cmd(files: tuple[str, ...], as_json: bool) -> None:
    """List networks: depth (weighted layers), parameters, GMACs, input, base and source file.

    Without FILES, every shipped network; with FILES (.arch files, shipped names, or folders
    standing for every .arch file under them), the networks those files define.
    """
    from resdsl.tools.catalog import catalog, catalog_text, diagnostics, file_catalog
    from resdsl.tools.fmt_files import arch_files

    empty: list[str] = []
    if files:
        entries, failed, empty = file_catalog(arch_files(files))
    else:
        entries, failed = catalog()
    if failed:
        render(diagnostics(failed), {k: v for r in failed for k, v in r.sources.items()})
    for file in empty:
        click.echo(f"{file}: defines no network (only blocks)", err=True)
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
    from resdsl.tools.fmt_files import run

    def echo(text: str, err: bool) -> None:
        click.echo(text, nl=False, err=err)

    sys.exit(run(files, check=check, show_diff=show_diff, echo=echo, render=render, stdin=sys.stdin))


@cli.command("explain")
@click.argument("code")
def explain_cmd(code: str) -> None:
    """Explain a diagnostic CODE (E301, W401, ...): what it means, an example that gives it, its fix."""
    from resdsl.diagnostics.codes import entries, explain_text

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
    from resdsl.tools.graph import LARGE, GraphError, count_nodes, output_format, write_graph

    try:
        fmt = output_format(output)
    except GraphError as exc:
        raise click.BadParameter(f"{exc.message}; {exc.hint}", param_hint="-o") from None
    (result,) = check_all([spec], options)
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
        from resdsl.tools.lsp.server import main as serve
    except ImportError as exc:
        message = f"resdsl lsp needs pygls>=2 and lsprotocol ({exc}); pip install 'pygls>=2'"
        raise click.ClickException(message) from None
    serve()


cli.add_command(import_cmd)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: runs the click group and turns every failure into a message."""
    # what the imports made lives as long as the process: out of the collector's sight, a
    # command's garbage collections no longer walk it (a few percent of a check's time)
    gc.freeze()
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="resdsl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        console(stderr=True).print("aborted")
        sys.exit(130)
    except ResdslError as exc:
        render(exc.diagnostics)
        sys.exit(1)
    except OSError as exc:
        console(stderr=True).print(f"resdsl: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # never a traceback
        console(stderr=True).print(f"resdsl: internal error: {type(exc).__name__}: {exc} (please report this)")
        sys.exit(3)
