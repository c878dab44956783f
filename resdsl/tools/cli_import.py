"""``resdsl import MODULE:CALLABLE -o FILE.arch``: a PyTorch model as a spec (resdsl.importing).

The model is made by calling CALLABLE (a class or a factory) with the ``--arg`` literals; the spec
is verified against it, formatted by resdsl's own formatter and only then written, through a
temporary file, so a refusal never leaves a partial file.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from resdsl.api.specs import parse_shape
from resdsl.diagnostics import ResdslError, error
from resdsl.tools.cli_options import render


def _refuse(message: str, hint: str) -> ResdslError:
    return ResdslError(error("E906", message, help=hint))


def load_module(name: str) -> ModuleType:
    """An importable module path, or a ``.py`` file's path (its folder first on sys.path)."""
    try:
        if name.endswith(".py") or os.sep in name:
            path = Path(name).resolve()
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except Exception as exc:
        raise _refuse(
            f"cannot load `{name}`: {type(exc).__name__}: {exc}", "MODULE is an importable module or a .py file"
        ) from None


def make_model(target: str, args: tuple[str, ...]) -> Any:
    """Calls ``MODULE:CALLABLE`` with the ``key=value`` literals."""
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise _refuse(f"`{target}` is not MODULE:CALLABLE", "for example: resdsl import mymodels.py:ResNet -o r.arch")
    module = load_module(module_name)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise _refuse(
            f"`{module_name}` has no callable `{attr}`", "CALLABLE is a class or a function that returns the model"
        )
    kwargs = dict(_literal(a) for a in args)
    try:
        return factory(**kwargs)
    except Exception as exc:
        raise _refuse(
            f"`{target}({', '.join(args)})` failed: {type(exc).__name__}: {exc}", "check the --arg values"
        ) from None


def _literal(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise _refuse(f"--arg `{text}` is not key=value", "for example: --arg num_classes=10")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise _refuse(
            f"--arg `{text}`: `{value}` is not a Python literal", "strings need quotes: --arg act=\"'relu'\""
        ) from None


def write_atomically(path: Path, text: str) -> None:
    """Writes ``text`` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("import")
@click.argument("target", metavar="MODULE:CALLABLE")
@click.option(
    "--arg", "args", multiple=True, metavar="KEY=VALUE", help="An argument of CALLABLE, a Python literal (repeatable)."
)
@click.option("--name", default=None, help="The network's name (default: the class's, in snake case).")
@click.option(
    "--input",
    "input_shape",
    default=None,
    help="C x H x W the spec states and the check runs at (default: the model's own, as timm's "
    "pretrained_cfg or a generated module's INPUT_SIZE say, else 3x224x224).",
)
@click.option("-o", "--output", required=True, help="The .arch file to write (only once the spec rebuilds the model).")
def import_cmd(target: str, args: tuple[str, ...], name: str | None, input_shape: str | None, output: str) -> None:
    """Turn a PyTorch model into a spec of blocks and stages that rebuilds it exactly."""
    try:
        _import(target, args, name, input_shape, output)
    except ResdslError as exc:
        render(exc.diagnostics)
        sys.exit(1)


def _import(target: str, args: tuple[str, ...], name: str | None, input_shape: str | None, output: str) -> None:
    """Makes, imports, verifies, formats and writes; raises ResdslError for any refusal."""
    from resdsl.importing import import_model
    from resdsl.tools.fmt import format_text

    shape = parse_shape(input_shape, "--input") if input_shape is not None else None
    if input_shape is not None and (shape is None or len(shape) != 3):
        raise click.BadParameter("C x H x W, for example 3x224x224", param_hint="--input")
    model = make_model(target, args)
    source = import_model(model, name, (shape[0], shape[1], shape[2]) if shape else None)
    text = format_text(source.replace(" by resdsl import", f" ({target}) by resdsl import"), output)
    write_atomically(Path(output), text)
    click.echo(f"wrote {output} (verified: same state_dict and float64 outputs)", err=True)
