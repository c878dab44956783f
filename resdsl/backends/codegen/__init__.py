"""The code generator: a checked network as a standalone PyTorch module file.

The file imports only torch (and typing), defines one class per block type used (one per
form where its instances need different code), a network class whose stages are built in a
loop, and a factory named after the network. Everything is laid out by the jinja2 template
``templates/module.py.j2``; the data it needs comes from the IR: :mod:`statements` lines each
block instance up with its block's statements, :mod:`emit` writes a body (with :mod:`layers`
for op layers, :mod:`residuals` and :mod:`choices` for additions and conditions,
:mod:`instances` checking each value against the instance; each forward is steps of
:mod:`resdsl.ir.forward`, whose renderer writes build_model's too), :mod:`blocks` writes block classes
and groups, :mod:`stages` stages (instance values per block, :mod:`netcount` the net_index
counts), :mod:`expr` turns expressions and names into Python and escapes every string taken
from the spec, :mod:`files` formats with ruff, hashes, and writes files.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from resdsl._version import __version__
from resdsl.backends.codegen import features as codegen_features
from resdsl.backends.codegen import functions
from resdsl.backends.codegen.blocks import BlockEmitter
from resdsl.backends.codegen.copied import (
    checkpoint_source,
    divisible_source,
    layer_sources,
    runtime_source,
    weights_source,
    zero_pad_source,
)
from resdsl.backends.codegen.emit import ClassDef
from resdsl.backends.codegen.expr import (
    RESERVED,
    comment_text,
    doc_text,
    fresh,
    py,
    py_default,
    py_name,
    py_str,
    py_type,
    renaming,
    value_names,
)
from resdsl.backends.codegen.files import (
    MARKER,
    content_hash,
    export_order,
    format_code,
    generated_state,
    regenerate_command,
    ruff_bin,
    seal,
    write_generated,
)
from resdsl.backends.codegen.inference import InferenceParts, fold_for_codegen, template_names
from resdsl.backends.codegen.stagegroups import group_stages
from resdsl.diagnostics.span import portable
from resdsl.ir import Network, sources_hash
from resdsl.ir.classnames import network_class_name
from resdsl.ir.features import Checkpoint, Plan, requested
from resdsl.ir.init import KINDS, Scheme, scheme_of
from resdsl.ir.preprocessing import preprocessing
from resdsl.semantics.values import LayerCall
from resdsl.syntax import ast

__all__ = [
    "MARKER",
    "content_hash",
    "format_code",
    "generate",
    "generated_state",
    "py_name",
    "render",
    "write_generated",
]

_ruff = ruff_bin  # the name tests use


@cache
def _environment() -> jinja2.Environment:
    # compiled templates are cached per user and version, as lark caches the grammar
    user = os.getuid() if hasattr(os, "getuid") else 0
    cache_dir = Path(tempfile.gettempdir()) / f"resdsl-{__version__}-jinja-{user}"
    try:
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        bytecode_cache: jinja2.BytecodeCache | None = jinja2.FileSystemBytecodeCache(str(cache_dir))
    except OSError:
        bytecode_cache = None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("resdsl.backends.codegen", "templates"),
        bytecode_cache=bytecode_cache,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["pyexpr"] = py
    env.filters["pystr"] = py_str
    env.filters["doc"] = doc_text
    env.filters["comment"] = comment_text
    return env


def _spec_value_names(network: Network) -> set[str]:
    names = set(network.params)
    for scope in network.root.scopes():
        names |= set(scope.args) | {n for n, _ in scope.lets}
        if scope.block is not None:
            names |= {p.name for p in scope.block.params}
    return names


def _options(network: Network) -> tuple[bool, str]:
    """zero_init_residual's default and the norm, as build_model reads them: parameters,
    then meta entries."""
    options: dict[str, Any] = {**network.meta, **network.params}
    chosen = options.get("norm")  # a string option; a layer-valued 'norm' parameter is the spec's own
    norm = chosen if isinstance(chosen, str) else "batchnorm"
    if norm not in ("batchnorm", "syncbatchnorm"):
        raise ValueError(f"norm must be 'batchnorm' or 'syncbatchnorm', got {norm!r}")
    return bool(options.get("zero_init_residual", False)), norm


def render(
    network: Network,
    overrides: Mapping[str, Any] | None = None,
    spec_arg: str | None = None,
    output: str | None = None,
    network_arg: str | None = None,
    input_shape: Sequence[int] | None = None,
    weights: str | None = None,
    inference: bool = False,
    channels_last: bool = True,
    plan: Plan | None = None,
) -> str:
    """The module source before formatting and hashing; ``weights``: a checkpoint the factory
    loads by default (its path is written relative to the generated file); ``inference``: the
    network with its batchnorms folded into the convs, and ``from_trained`` (see
    :mod:`codegen_inference`); ``plan`` adds feature outputs and checkpointing (see
    :mod:`codegen_features`)."""
    assert not (inference and plan is not None), "feature outputs and checkpointing are for training modules"
    parts = None
    if inference:
        network, parts = fold_for_codegen(network, channels_last)
    if plan is not None:
        network = plan.network
    table = value_names(_spec_value_names(network))
    with renaming(table), functions.recording():
        return _render(
            network,
            overrides,
            spec_arg,
            output,
            network_arg,
            input_shape,
            frozenset(table.values()),
            weights,
            parts,
            plan,
        )


def _render(
    network: Network,
    overrides: Mapping[str, Any] | None,
    spec_arg: str | None,
    output: str | None,
    network_arg: str | None,
    input_shape: Sequence[int] | None,
    python_names: frozenset[str],
    weights: str | None = None,
    inference: InferenceParts | None = None,
    plan: Plan | None = None,
) -> str:
    """The module's source: the network's classes written by the emitter, then laid out by the
    template with the constants, helpers and exports they need."""
    zero_init_default, norm = _options(network)
    norm2d = "SyncBatchNorm" if norm == "syncbatchnorm" else "BatchNorm2d"
    em = BlockEmitter(network, norm2d, python_names)
    cls, values = _network_class(network, em, plan)
    blocks = list(em.classes.values())
    for c in [*blocks, cls]:  # stages that differ only by numbers: one function builds them
        group_stages(c, {b.name: b for b in blocks})
    factory = fresh(py_name(network.name), {c.name for c in blocks} | {cls.name})
    constants, meta_items = _constants(network, weights, output, plan)
    extra = template_names(inference)
    command = regenerate_command(
        network,
        spec_arg,
        overrides,
        output,
        network_arg,
        input_shape,
        weights,
        _flags(inference),
        codegen_features.extra_args(plan),
    )
    return (
        _environment()
        .get_template("module.py.j2")
        .render(
            network=network,
            net=cls,
            blocks=blocks,
            factory=factory,
            constants=constants,
            exports=_exports(constants, meta_items, blocks, cls.name, factory, extra["exports"]),
            meta_items=meta_items,
            inference=inference,
            norm2d=norm2d,
            spec=spec_arg or network.source_file,
            spec_hash=sources_hash(network),
            command=command,
            version=__version__,
            title=network.meta.get("title", network.name),
            defined_at=_defined_at(network),
            weights_default="WEIGHTS" if weights is not None else "None",
            **_zero_init(values, blocks, inference, zero_init_default),
            **_imports_and_helpers(em, [*blocks, cls], plan, extra, norm2d, constants, scheme_of(network.meta)),
        )
    )


def _defined_at(network: Network) -> str:
    return portable(network.definition.span) if network.definition else network.name


def _network_class(network: Network, em: BlockEmitter, plan: Plan | None) -> tuple[ClassDef, dict[str, Any]]:
    """The network's class (its body written by the emitter, which collects the block classes
    it uses) and the network parameters that are values, which become its arguments."""
    # a layer-valued parameter (norm = groupnorm(32)) is built into the layers it made
    values = {k: v for k, v in network.params.items() if not isinstance(v, LayerCall) and k not in _input_only(network)}
    net_params: list[tuple[str, str, str | None]] = [(py_name(k), py_type(v), py_default(v)) for k, v in values.items()]
    title = network.meta.get("title", network.name)
    cls = ClassDef("", doc_text(f"{title} as written in {_defined_at(network)}"), net_params)
    # the network's value bindings (stem = 32 if fix_stem_head else ...) are locals of its
    # constructor, written before the layers that read them: those layers say them by name
    names = frozenset(values) | {n for n, _ in network.root.lets}
    em.scope_body(network.root, cls, _cin(network), names, network=True)
    cls.name = em.class_name(network_class_name(network), "Net")
    if plan is not None:
        codegen_features.apply(plan, cls, em.item_steps)
    return cls, values


def _input_only(network: Network) -> frozenset[str]:
    """The parameters only the ``input`` statement reads (``img_size``): they size INPUT_SIZE,
    a constant of the module, and build nothing, so the class takes no argument for them."""
    if network.definition is None:
        return frozenset()
    sizes: set[str] = set()
    rest: set[str] = set()
    for stmt in network.definition.body:
        if isinstance(stmt, ast.InputStmt):
            sizes |= _names_read(stmt.dims)
        elif isinstance(stmt, ast.MetaStmt):
            rest |= _names_read([e.value for e in stmt.entries])
        else:
            rest |= _names_read([stmt.value])
    return frozenset(sizes - rest)


def _names_read(exprs: Sequence[ast.Expr]) -> set[str]:
    """The names the expressions read, a called one (``norm()``) too."""
    found: set[str] = set()
    for expr in exprs:
        for e in ast.walk(expr):
            if isinstance(e, ast.Name):
                found.add(e.id)
            elif isinstance(e, ast.Call | ast.FuncCall):
                found.add(e.func)
    return found


def _constants(
    network: Network, weights: str | None, output: str | None, plan: Plan | None
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The module's constants (INPUT_SIZE, MEAN, STD, WEIGHTS, FEATURE_INFO) and the rest of the
    spec's meta entries, as META's items."""
    meta = dict(network.meta)
    prep = preprocessing(network)  # what build_model's model carries, per input channel
    constants = {"INPUT_SIZE": py_default(list(prep.input_size))}
    for key, numbers in (("mean", prep.mean), ("std", prep.std)):
        if numbers is not None:
            constants[key.upper()] = py_default(list(numbers))
            meta.pop(key)
    if weights is not None:
        constants["WEIGHTS"] = weights_expr(weights, output)
    if plan is not None and plan.features:
        constants["FEATURE_INFO"] = codegen_features.feature_info_source(plan)
    return constants, [(py_str(k), py_default(v)) for k, v in meta.items()]


def _exports(
    constants: Mapping[str, str],
    meta_items: list[tuple[str, str]],
    blocks: list[ClassDef],
    net: str,
    factory: str,
    extra: list[str],
) -> list[str]:
    """``__all__``, isort-style, as ruff's RUF022 sorts it (see export_order)."""
    helpers = ["load_weights", "preprocess"]
    own = [*(b.name for b in blocks), net, factory]
    assert not set(own) & RESERVED, own  # the spec's names, renamed
    return export_order([*constants, *(["META"] if meta_items else []), *own, *helpers, *extra])


def _zero_init(
    values: Mapping[str, Any], blocks: list[ClassDef], inference: InferenceParts | None, default: bool
) -> dict[str, Any]:
    """build_model's zero_init_residual switch: the spec's own parameter when it has one (renamed
    as every value is), else an argument of the network class; an inference module starts from
    trained weights, so has neither. Blocks that zero the same attributes share a branch."""
    groups: dict[tuple[tuple[str, str | None], ...], list[str]] = {}
    for b in blocks:
        if b.zero_init:
            groups.setdefault(tuple(b.zero_init), []).append(b.name)
    own = "zero_init_residual" in values
    return {
        "zero_init_param": inference is None and not own,
        "zero_init_name": py_name("zero_init_residual") if own else "zero_init_residual",
        "zero_init_default": "True" if default else "False",
        "zero_groups": [(classes, attrs) for attrs, classes in groups.items()],
    }


def _imports_and_helpers(
    em: BlockEmitter,
    classes: list[ClassDef],
    plan: Plan | None,
    extra: Mapping[str, Any],
    norm2d: str,
    constants: Mapping[str, str],
    scheme: Scheme | None = None,
) -> dict[str, Any]:
    """What the module imports and copies in: only what its classes use. make_shortcut (which
    needs ZeroPadShortcut) where a kind is chosen at run time; ZeroPadShortcut alone where a
    fixed shortcut pads; neither where no shortcut needs them."""
    shortcut_helper = em.uses_make_shortcut
    checkpoints = plan is not None and plan.checkpoint
    params = [p for c in classes for p in c.params]
    norm_classes = sorted(em.norm_classes | ({norm2d} if em.uses_projection or em.variable_kinds else set()))
    abc = {"Mapping", "Sequence", *(["Callable"] if shortcut_helper else []), *extra["abc"]}
    return {
        "typing": sorted(
            ({"Any"} if any("Any" in t for _, t, _ in params) else set())
            | set(extra["typing"])
            | ({"Final"} if any(c.flags for c in classes) else set())
        ),
        "shortcut_helper": shortcut_helper,
        "zero_pad_helper": em.uses_zero_pad and not shortcut_helper,
        "zero_pad_source": zero_pad_source(),
        "abc_imports": sorted(abc | ({"Iterable"} if checkpoints else set())),
        "uses_bias": em.uses_bias,
        "ordered_dict": em.uses_ordered_dict,
        "runtime_source": runtime_source(),
        "layer_sources": layer_sources(em.runtime_classes),
        "weights_source": weights_source(),
        "has_mean": "MEAN" in constants,
        "has_std": "STD" in constants,
        "norm_classes": norm_classes or ["BatchNorm2d"],
        "checkpoint_source": checkpoint_source() if checkpoints else "",
        "uses_math": functions.needs_math(functions.used()) or (scheme is not None and scheme.uses_math),
        "init_rules": _init_rules(scheme),
        "divisible_source": divisible_source() if "make_divisible" in functions.used() else "",
    }


def _init_rules(scheme: Scheme | None) -> list[tuple[str, tuple[str, ...]]]:
    """The ``isinstance`` test and statements of each kind a scheme initialises, as the
    constructor's init loop writes them; none for torchvision's default (the template's own)."""
    if scheme is None:
        return []
    grouped: dict[tuple[str, ...], list[str]] = {}  # kinds given the same statements share a branch (SIM114)
    for kind, lines in scheme.rules:
        grouped.setdefault(lines, []).extend(f"nn.{c}" for c in KINDS[kind])
    rules = []
    for lines, c in grouped.items():
        test = f"isinstance(m, {c[0] if len(c) == 1 else '(' + ', '.join(c) + ')'})"
        first, rest = lines[0], lines[1:]
        if first.startswith("if ") and rest and all(line.startswith("    ") for line in rest):
            # one guarded block: its guard joins the test (SIM102); the kinds' classes are distinct
            test, lines = f"{test} and {first[3:-1]}", tuple(line[4:] for line in rest)
        rules.append((test, lines))
    return rules


def _cin(network: Network) -> Any:
    from resdsl.syntax import ast

    return ast.IntLit(network.input_shape[0])


def _flags(inference: InferenceParts | None) -> list[str]:
    if inference is None:
        return []
    return ["--inference"] + ([] if inference.channels_last else ["--no-channels-last"])


def generate(
    network: Network,
    overrides: Mapping[str, Any] | None = None,
    spec_arg: str | None = None,
    output: str | None = None,
    network_arg: str | None = None,
    input_shape: Sequence[int] | None = None,
    weights: str | None = None,
    inference: bool = False,
    channels_last: bool = True,
    features: Sequence[str] | None = None,
    checkpoint: Checkpoint = None,
) -> str:
    """The finished file: formatted, with a header that names its source and hashes its body.

    ``features`` and ``checkpoint`` are :func:`resdsl.ir.features.plan`'s: the network class
    then returns a dict of those outputs, or checkpoints those stages while its
    ``grad_checkpointing`` attribute is true.
    """
    wanted = requested(network, features, checkpoint)
    source = render(
        network, overrides, spec_arg, output, network_arg, input_shape, weights, inference, channels_last, wanted
    )
    return seal(format_code(source))


def weights_expr(weights: str, output: str | None) -> str:
    """``WEIGHTS``: the checkpoint's path relative to the generated file's folder (found from
    ``__file__``, wherever the two are moved together), absolute when written to stdout."""
    target = Path(weights).resolve()
    if output is None:
        return py_str(str(target))
    relative = os.path.relpath(target, Path(output).resolve().parent)
    return f"os.path.join(os.path.dirname(__file__), {py_str(relative)})"
