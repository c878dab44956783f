"""What the template writes, read from the checked IR.

:class:`Emitter` walks each scope's ``items`` (layers and nested scopes, in statement order)
with the value bindings at the places ``Scope.let_at`` records, and fills one
:class:`ClassDef` per block type and one for the network: constructor lines and a flat
forward pass. Channel counts and strides are carried symbolically, in the terms of the
class being written, so a block class works for every instance. Nothing here reads a block
body or network body from the syntax tree; an IR item the emitter cannot place is an
internal error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resdsl.backends.codegen.classes import Call, ClassDef, Ctor, Step
from resdsl.backends.codegen.expr import (
    RESERVED,
    Translator,
    attr_name,
    camel,
    const_value,
    doc_text,
    fold,
    free_names,
    fresh,
    is_const,
    is_expr,
    lit,
    py,
    py_default,
    py_name,
    py_str,
    py_type,
    symbolic_shape,
)
from resdsl.backends.codegen.stages import StageWriter
from resdsl.diagnostics.span import portable
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, fmt_shape
from resdsl.semantics.values import LayerCall
from resdsl.syntax import ast

_LOCALS = ("x", "out", "identity", "network_input", "self")

__all__ = ["Call", "ClassDef", "Ctor", "Emitter", "Step", "input_arg", "portable"]


class Emitter:
    """Fills class definitions for one network; ``norm2d`` is the 2-D norm class to use."""

    def __init__(
        self, network: Network, norm2d: str = "BatchNorm2d", value_names: frozenset[str] = frozenset()
    ) -> None:
        self.net = network
        self.tr = Translator(network)
        self.norm2d = norm2d
        self.value_names = value_names  # every spec value name as written in Python: classes avoid them
        self.classes: dict[tuple[str, Any], ClassDef] = {}  # by block and variant (see _variant)
        self.class_names: dict[tuple[str, Any], str] = {}
        self.block_out: dict[tuple[str, Any], Any] = {}
        self.variants: dict[int, Any] = {}  # id(scope) -> _variant(scope), worked out once
        self.uses_zero_pad = False
        self.uses_projection = False
        self.variable_kinds = False  # some shortcut kind is a parameter: the helper handles every kind
        self.norm_classes: set[str] = set()
        self.shortcut_norm_flag = False  # some projection has no batchnorm
        self.uses_bias = False  # some projection's conv has a bias (its batchnorm folded in)
        self.tap_flag = False  # some projection reads from a project_from tap of another shape
        self.item_steps: list[tuple[Layer | Scope, int]] = []  # network items: where their steps start
        self.runtime_classes: set[str] = set()  # resdsl.runtime.layers classes the module copies
        self.stages = StageWriter(self)  # stages, and the net_index counts of the classes being written

    # -- names ------------------------------------------------------------------------------

    def class_name(self, wanted: str, suffix: str) -> str:
        taken = set(self.class_names.values()) | set(self.value_names) | RESERVED
        name = wanted
        while name in taken:
            name += suffix
        return name

    # -- one op layer -----------------------------------------------------------------------

    def attrs(self, layer: Layer, names: frozenset[str]) -> dict[str, Any]:
        """Attribute values of one op layer, in the terms of its scope."""
        op = OPS[layer.op]
        out: dict[str, Any] = {}
        for p in op.params:
            if p.name in layer.exprs:
                out[p.name] = self.tr.normalize(layer.exprs[p.name], names)
            elif p.default_from and p.default_from in layer.exprs:
                out[p.name] = self.tr.normalize(layer.exprs[p.default_from], names)
            else:
                out[p.name] = layer.attrs.get(p.name)
        for key, value in out.items():  # an argument written where this class cannot see: its value
            if is_expr(value) and not free_names(value) <= names:
                out[key] = layer.attrs.get(key)
        return {k: (const_value(v) if is_expr(v) and is_const(v) else v) for k, v in out.items()}

    def ctor(self, layer: Layer, cin: Any, names: frozenset[str], attribute: bool = True) -> tuple[Ctor, Any]:
        op = OPS[layer.op]
        assert op.torch is not None
        attrs = self.attrs(layer, names)
        attrs["inplace"] = layer.inplace
        shape = layer.in_shapes[0]
        if op.flatten_input and len(shape) > 1 and shape[1] * shape[2] != 1:
            cin = fold(ast.BinOp("*", cin, ast.IntLit(shape[1] * shape[2])))
        c = op.torch(attrs, cin, shape)
        cls = c.cls
        if cls == "BatchNorm2d":
            cls = self.norm2d
        defaults = op.torch_defaults.get(cls, {})
        if cls.startswith("BatchNorm") or cls == "SyncBatchNorm":
            self.norm_classes.add(cls)
        cls = self.qualified(cls, c.runtime)
        args = [py(a) for a in c.args]
        for key, value in c.kwargs.items():
            if key in defaults and not is_expr(value) and value == defaults[key]:
                continue
            args.append(f"{key}={py(value)}")
        out = op.channels(attrs, cin)
        if out is cin and len(shape) == 3 and layer.shape is not None and len(layer.shape) == 1:
            out = fold(ast.BinOp("*", cin, ast.IntLit(shape[1] * shape[2])))  # flattening keeps every value
        return Ctor(attr_name(layer.module, layer.span) if attribute else "", cls, args), out

    def qualified(self, cls: str, runtime: bool) -> str:
        """How generated code names a module class: ``nn.Conv2d``, or a copied runtime class."""
        if runtime:
            self.runtime_classes.add(cls)
            return cls
        return f"nn.{cls}"

    # -- a scope body -----------------------------------------------------------------------

    def scope_body(self, scope: Scope, cls: ClassDef, cin: Any, names: frozenset[str], network: bool) -> Any:
        """Fill ``cls.init`` and ``cls.forward`` from one scope; returns its output channels."""
        self.stages.begin(scope, cls, names, network)
        try:
            return self._scope_body(scope, cls, cin, names, network)
        finally:
            self.stages.end(cls, network)

    def _scope_body(self, scope: Scope, cls: ClassDef, cin: Any, names: frozenset[str], network: bool) -> Any:
        main = "x" if network else "out"
        cls.main = main
        cls.attrs |= {i.module if isinstance(i, Layer) else i.name for i in scope.items}
        cls.locals |= {py_name(n) for n in names} | set(_LOCALS)
        var: dict[str, str] = {scope.input: "x"}
        channels: dict[str, Any] = {scope.input: cin}
        strides: dict[str, Any] = {scope.input: ast.IntLit(1)}  # spatial stride so far, symbolically
        reads = self.net.shortcut_reads(scope)
        saved = set(reads) - {scope.input}
        current = scope.input
        if network and scope.input in reads:  # "x" is about to be reassigned: keep the input
            cls.forward.append(Step("save", "network_input", source="x"))
            var[scope.input] = "network_input"
        registered: set[str] = set()
        for kind, payload in _statement_order(scope):
            if kind == "let":
                name, expr = payload
                cls.init.append(("let", (py_name(name), py(self.tr.normalize(expr, names)))))
                continue
            if kind == "plain":
                self.plain_residual(payload, cls, names)
                continue
            item = payload
            if network:
                self.item_steps.append((item, len(cls.forward)))
            source_var = var[current]
            if isinstance(item, Scope) and item.side:  # a gate's branch: its own variable, x stays
                if item.input != current:
                    raise AssertionError(f"codegen: gate branch {item.path} does not read the value before it")
                out_ch = self.child_scope(item, cls, channels[current], names)
                gate = fresh(f"{py_name(item.name)}_gate", cls.locals)
                cls.locals.add(gate)
                out_layer = self.net.layer(item.output)
                cls.forward.append(
                    Step("call", gate, attr_name(item.name, item.span), source_var, fmt_shape(out_layer.shape))
                )
                var[item.output] = gate
                channels[item.output] = out_ch
                continue
            if isinstance(item, Layer) and OPS[item.op].merge is not None and item.shortcut is None:
                first, second = self.net.port(item.id, 0), self.net.port(item.id, 1)
                if first != current or second not in var:
                    raise AssertionError(f"codegen: merge {item.path or item.id} does not combine what came before")
                merge = OPS[item.op].merge
                assert merge is not None
                cls.forward.append(Step("merge", main, source=merge.expr(var[first], var[second])))
                current = item.id
                channels[current] = self.merge_channels(item, channels[first], channels[second])
                strides[current] = strides[first]
                var[current] = main
                if current in saved:
                    name = fresh(f"{py_name(self.net.layer(current).name)}_out", cls.locals)
                    cls.locals.add(name)
                    cls.forward.append(Step("save", name, source=main))
                    var[current] = name
                continue
            if isinstance(item, Scope):
                if item.input != current:
                    raise AssertionError(f"codegen: {item.path} does not read the value before it in {scope.path!r}")
                out_ch = self.child_scope(item, cls, channels[current], names)
                out_layer = self.net.layer(item.output)
                in_layer = self.net.layer(item.input)
                ratio = self.net.path_stride(item.input, item.output)
                if ratio is None:
                    assert in_layer.shape is not None and out_layer.shape is not None
                    ratio = (in_layer.shape[1] // out_layer.shape[1]) if len(out_layer.shape) == 3 else 1
                stride = fold(ast.BinOp("*", strides[current], ast.IntLit(max(ratio, 1))))
                comment = fmt_shape(out_layer.shape) if network else symbolic_shape(out_ch, stride, out_layer)
                cls.forward.append(Step("call", main, attr_name(item.name, item.span), source_var, comment))
                current = item.output
                channels[current] = out_ch
                strides[current] = stride
                var[current] = main
            elif item.op == "residual":
                main_input = self.net.port(item.id, 0)
                if main_input != current:
                    raise AssertionError(f"codegen: residual {item.path} does not add to the value before it")
                self.residual(item, cls, var, channels, strides, names, main)
                current = item.id
                channels[current] = channels[main_input]
                strides[current] = strides[main_input]
                var[current] = main
            elif item.op in OPS and OPS[item.op].own_param is not None:
                if self.net.port(item.id, 0) != current:
                    raise AssertionError(f"codegen: layer {item.path} does not read the value before it")
                self.own_param(item, cls, channels[current], names, main, source_var, registered)
                source = current
                current = item.id
                channels[current] = channels[source]
                strides[current] = strides[source]
                var[current] = main
            elif item.op in OPS and OPS[item.op].torch is not None:
                if self.net.port(item.id, 0) != current:
                    raise AssertionError(f"codegen: layer {item.path} does not read the value before it")
                ctor, out_ch = self.ctor(item, channels[current], names)
                if item.module not in registered:
                    registered.add(item.module)
                    cls.init.append(("module", ctor))
                if OPS[item.op].flatten_input and len(item.in_shapes[0]) > 1:
                    cls.forward.append(Step("flatten", main, source=source_var))
                    source_var = main
                op_stride = OPS[item.op].stride(self.attrs(item, names))
                stride = fold(ast.BinOp("*", strides[current], op_stride if is_expr(op_stride) else lit(op_stride)))
                comment = fmt_shape(item.shape) if network else symbolic_shape(out_ch, stride, item)
                cls.forward.append(Step("call", main, attr_name(item.module, item.span), source_var, comment))
                current = item.id
                channels[current] = out_ch
                strides[current] = stride
                var[current] = main
            else:
                raise AssertionError(
                    f"codegen cannot place {item.op!r} layer {item.path or item.id!r} of {scope.path!r}"
                )
            if current in saved:
                name = fresh(f"{py_name(self.net.layer(current).name)}_out", cls.locals)
                cls.locals.add(name)
                cls.forward.append(Step("save", name, source=main))
                var[current] = name
        if current != scope.output:
            raise AssertionError(f"codegen: scope {scope.path!r} ends at {current!r}, the IR says {scope.output!r}")
        return channels[current]

    @staticmethod
    def merge_channels(item: Layer, main: Any, other: Any) -> Any:
        """A merge's output channels, by its op's rule (concatenation adds them up)."""
        rule = OPS[item.op].merge_channels
        if rule is None:
            return main
        return rule(main, other, lambda a, b: fold(ast.BinOp("+", a, b)))

    def own_param(
        self,
        item: Layer,
        cls: ClassDef,
        cin: Any,
        names: frozenset[str],
        main: str,
        source: str,
        registered: set[str],
    ) -> None:
        """An op held as a parameter of this class (layer_scale): the tensor, then its use."""
        form = OPS[item.op].own_param
        assert form is not None
        attr = attr_name(item.module, item.span)
        if item.module not in registered:
            registered.add(item.module)
            size = ", ".join(py(d) for d in form.shape(self.attrs(item, names), cin))
            fill = py(form.fill(self.attrs(item, names)))
            cls.init.append(("param", (attr, f"({size},)", fill)))
        applied = form.apply(source, f"self.{attr}", item.in_shapes[0])
        cls.forward.append(Step("merge", main, source=applied))

    def plain_residual(self, kind_expr: ast.Expr, cls: ClassDef, names: frozenset[str]) -> None:
        """``residual(none)`` in this instance: a constructor that refuses any other kind."""
        kind = self.tr.normalize(kind_expr, names)
        if is_const(kind):
            if const_value(kind) != "none":
                raise AssertionError(f"codegen: a skipped residual of kind {const_value(kind)!r}")
            return
        message = py_str("this module was generated with this residual absent (kind 'none'); regenerate it for another")
        cls.init.append(("refuse", (py(kind), message)))
        cls.plain_kinds.append(kind)

    def residual(
        self,
        item: Layer,
        cls: ClassDef,
        var: dict[str, str],
        channels: dict[str, Any],
        strides: dict[str, Any],
        names: frozenset[str],
        main: str,
    ) -> None:
        if item.shortcut is None:
            raise AssertionError(f"codegen: residual {item.path} was not realised by the checker")
        kind_expr = self.tr.normalize(item.exprs["shortcut"], names)
        fixed = is_const(kind_expr)
        kind = const_value(kind_expr) if fixed else None
        branch = self.net.port(item.id, 1)
        tap = self.net.port(item.id, 2)
        main_input = self.net.port(item.id, 0)
        assert branch is not None and main_input is not None
        out_ch = channels[main_input]
        stride = _ratio(strides[main_input], strides[branch])  # the main branch's stride since the branch point
        attr = attr_name(item.module, item.span)
        step = Step("residual", main, source=var[branch], inplace=item.inplace)
        if not fixed:
            self.variable_kinds = True
            self.guard(cls, step, kind_expr)
        if kind == "identity":
            cls.forward.append(step)
            return
        if kind is not None:
            self.uses_zero_pad |= kind == "zero_pad"
            self.uses_projection |= kind in ("projection", "projection_all", "avgpool_projection")
        args = [py(kind_expr), py(channels[branch]), py(out_ch), py(stride)]
        norm = self.shortcut_norm(item, names)
        if norm is not None:
            self.shortcut_norm_flag = True
            args.append(f"norm={norm}")
        step.module = var[branch]
        if tap is not None:  # the module reads from the tap: its channels and stride from there
            tap_stride = _ratio(strides[main_input], strides[tap])
            if (py(channels[tap]), py(tap_stride)) != (py(channels[branch]), py(stride)):
                self.tap_flag = True
                args += [f"tap_channels={py(channels[tap])}", f"tap_stride={py(tap_stride)}"]
            step.module = var[tap]
        if item.shortcut.bias:
            self.uses_bias = True
        cls.init.append(("shortcut", (attr, args, item.shortcut.bias)))
        step.shortcut = attr
        step.optional = kind != "projection_all"
        cls.forward.append(step)

    def shortcut_norm(self, item: Layer, names: frozenset[str]) -> str | None:
        """The projection's norm argument: None for the default batchnorm, ``False`` for none,
        or a function of the channel count for a norm the spec chose (groupnorm(32))."""
        shortcut = item.shortcut
        assert shortcut is not None
        written = item.exprs.get("norm")
        if written is not None and not isinstance(written, (ast.BoolLit, ast.Name)):
            raise AssertionError(f"codegen: residual {item.path} has a norm it cannot write")
        if isinstance(written, ast.Name) and written.id in names and not isinstance(item.attrs.get("norm"), tuple):
            return py(self.tr.normalize(written, names))  # a boolean parameter of the class
        if not shortcut.norm:
            return "False"
        ctor = OPS[shortcut.norm_op].torch
        assert ctor is not None
        channels = ast.Name("c")
        c = ctor(shortcut.norm_attrs, channels, (0, 1, 1))  # only the rank matters to a norm
        defaults = OPS[shortcut.norm_op].torch_defaults.get(c.cls, {})
        if c.cls == "BatchNorm2d" and all(defaults.get(k) == v for k, v in c.kwargs.items()):
            return None if self.norm2d == "BatchNorm2d" else f"nn.{self.norm2d}"  # SyncBatchNorm
        args = [py(a) for a in c.args] + [
            f"{k}={py(v)}" for k, v in c.kwargs.items() if not (k in defaults and v == defaults[k])
        ]
        return f"lambda c: {self.qualified(c.cls, c.runtime)}({', '.join(args)})"

    def guard(self, cls: ClassDef, step: Step, kind: Any) -> None:
        """Make a residual's addition depend on its kind not being ``none`` at run time."""
        step.guard = fresh("add_shortcut", cls.attrs | {s.guard or "" for s, _ in cls.kinds}, "_")
        cls.kinds.append((step, kind))

    # -- blocks and stages ------------------------------------------------------------------

    def child_scope(self, scope: Scope, parent: ClassDef, cin: Any, names: frozenset[str]) -> Any:
        """A block or stage used from ``parent``: its class, the constructor call, its channels."""
        if scope.kind == "block":
            call, out = self.block_call(scope, cin, hidden=self.stages.plain_block(scope))
            parent.init.append(("assign", (attr_name(scope.name, scope.span), call)))
            return out
        if scope.kind == "sequential":  # layers numbered by position, as nn.Sequential numbers them
            ctors: list[Ctor] = []
            channels = cin
            for layer in scope.items:
                if not isinstance(layer, Layer):
                    raise AssertionError(f"codegen: a block inside the sequential group {scope.path!r}")
                ctor, channels = self.ctor(layer, channels, names, attribute=False)  # numbered, not named
                ctors.append(ctor)
            parent.init.append(("sequential", (attr_name(scope.name, scope.span), ctors)))
            return channels
        if scope.kind != "stage":
            raise AssertionError(f"codegen: a {scope.kind} scope {scope.path!r} inside another scope")
        return self.stages.write(scope, parent, cin, names)

    def block_call(
        self,
        scope: Scope,
        cin: Any,
        exprs: Mapping[str, ast.Expr] | None = None,
        values: Mapping[str, Any] | None = None,
        hidden: Sequence[tuple[str, Any]] = (),
        simplify: Callable[[Any], Any] | None = None,
    ) -> tuple[Call, Any]:
        """The constructor call of a block instance (``exprs``: other arguments, as for the
        later blocks of a stage; ``values``: what the instance values they read are, in the
        caller's terms, and ``simplify`` what to do to the arguments then; ``hidden``: the
        net_index arguments of its class) and its output channels in the caller's terms."""
        cls, args, mapping = self.block_mapping(scope, cin, exprs, values, simplify)
        block = scope.block
        assert block is not None
        for kind in cls.plain_kinds:
            value = self.tr.subst(kind, mapping)
            if is_const(value) and const_value(value) != "none":
                raise AssertionError(
                    f"codegen: block {block.name!r} has a residual that is 'none' in one instance "
                    f"and {const_value(value)!r} in {scope.path!r}; no single class was chosen for both"
                )
        args += [f"{name}={py(value)}" for name, value in hidden]
        return Call(cls.name, args), self.tr.subst(self.block_out[self.class_key(scope)], mapping)

    def block_mapping(
        self,
        scope: Scope,
        cin: Any,
        exprs: Mapping[str, ast.Expr] | None = None,
        values: Mapping[str, Any] | None = None,
        simplify: Callable[[Any], Any] | None = None,
    ) -> tuple[ClassDef, list[str], dict[str, Any]]:
        """A block instance's class, its constructor arguments (source) and what each of the
        class's names is in the caller's terms."""
        block = scope.block
        assert block is not None
        cls = self.block_class(scope)
        exprs = dict(scope.arg_exprs if exprs is None else exprs)
        caller_names = frozenset(k for k, v in self.net.params.items() if not isinstance(v, LayerCall))
        args = [py(cin)]
        mapping: dict[str, Any] = {cls.params[0][0]: cin}
        for p in block.params:
            if p.name in cls.layer_params:
                continue
            if p.name in exprs:
                value = self.tr.normalize(exprs[p.name], caller_names)
                if values:
                    value = self.tr.subst(value, values)
                if simplify is not None:
                    value = simplify(value)
                text = py(value)
                args.append(text if p.default is None else f"{py_name(p.name)}={text}")
                mapping[p.name] = value
            elif p.default is not None:
                mapping[p.name] = self.tr.subst(self.tr.normalize(p.default, frozenset()), mapping)
        for name, expr in scope.lets:
            mapping[name] = self.tr.subst(self.tr.normalize(expr, frozenset(scope.args)), mapping)
        return cls, args, mapping

    def class_key(self, scope: Scope) -> tuple[str, Any]:
        """Which class a block instance needs: its block, and the layers it makes (_variant)."""
        assert scope.block is not None
        if id(scope) not in self.variants:
            self.variants[id(scope)] = _variant(scope, self.class_key)
        return scope.block.name, self.variants[id(scope)]

    def block_class(self, scope: Scope) -> ClassDef:
        """The class of a block instance: one per block, or one per variant where instances make
        different layers (``relu if act else identity`` with act differing between them)."""
        block = scope.block
        assert block is not None
        key = self.class_key(scope)
        if key in self.classes:
            return self.classes[key]
        # The class is written from one instance; take one where the most residuals are present
        # (an instance with shortcut=none has no addition node, others may need it).
        scope = max(
            (s for s in self.net.root.scopes() if s.kind == "block" and s.block is block and self.class_key(s) == key),
            key=lambda s: sum(isinstance(i, Layer) and i.op == "residual" for i in s.items),
        )
        variant = sum(k[0] == block.name for k in self.class_names) + 1
        name = self.class_name(camel(block.name) + (str(variant) if variant > 1 else ""), "Block")
        self.class_names[key] = name
        arg = input_arg(scope)
        params: list[tuple[str, str, str | None]] = [(arg, "int", None)]
        layer_params = {p.name for p in block.params if isinstance(scope.args.get(p.name), LayerCall)}
        for p in block.params:
            if p.name in layer_params:  # a layer (norm = batchnorm): built into the class
                continue
            default = None
            if p.default is not None:
                default_expr = self.tr.normalize(p.default, frozenset())
                default = py_default(const_value(default_expr)) if is_const(default_expr) else "None"
            params.append((py_name(p.name), py_type(scope.args.get(p.name)), default))
        hidden = self.stages.hidden_params(block, {n for n, _, _ in params})
        if hidden:  # its stages read net_index: keyword-only, from whoever builds it
            params.append(("*", "", None))
            params += [(n, "int", None) for pair in hidden.values() for n in pair]
        which = f" (the layers of {scope.path} and the instances like it)" if variant > 1 else ""
        cls = ClassDef(name, doc_text(f"Block ``{block.name}`` from {portable(block.span)}{which}."), params)
        cls.layer_params = layer_params
        cls.locals.add(arg)
        self.classes[key] = cls  # before the body: nested blocks come first in the file
        names = frozenset(scope.args) - cls.layer_params | frozenset(n for n, _ in scope.lets)
        for p in block.params:
            if p.name in cls.layer_params:
                continue
            if p.default is not None and not is_const(self.tr.normalize(p.default, frozenset())):
                cls.init.append(("default", (py_name(p.name), py(self.tr.normalize(p.default, names)))))
        self.block_out[key] = self.scope_body(scope, cls, ast.Name(arg), names, network=False)
        for layer in scope.layers():
            if layer.op == "residual" and layer.scope is scope:
                norm = self.net.last_norm(layer)
                if norm is not None:
                    cls.zero_init.append(attr_name(norm.module, norm.span))
        # a class is emitted after the classes it uses
        self.classes.pop(key)
        self.classes[key] = cls
        return cls


def _variant(scope: Scope, key: Callable[[Scope], Any]) -> tuple[Any, ...]:
    """What a block class writes the same for every instance it serves: each layer's op and module
    and each nested scope's name and class (``key``). Residuals are left out: one that is absent in
    an instance (kind none) is refused or guarded by the class, and its shortcut decided at run time."""
    out: list[Any] = []
    for item in scope.items:
        if isinstance(item, Layer):
            if item.op != "residual":
                out.append((item.op, item.module))
        elif item.kind == "block":
            out.append(("block", item.name, key(item)))
        else:  # a stage (its first block and the rest) or a sequential group
            inner = [key(s) if s.kind == "block" else _variant(s, key) for s in item.items if isinstance(s, Scope)]
            layers = [(i.op, i.module) for i in item.items if isinstance(i, Layer)]
            out.append((str(item.kind), item.name, tuple(inner[:2]), tuple(layers)))
    return tuple(out)


def _ratio(stride: Any, since: Any) -> Any:
    if isinstance(since, ast.IntLit) and since.value == 1:
        return stride
    return fold(ast.BinOp("//", stride, since))


def _statement_order(scope: Scope) -> list[tuple[str, Any]]:
    """The scope's items with its value bindings and skipped residuals where they stood."""
    if len(scope.let_at) != len(scope.lets):
        raise AssertionError(
            f"codegen: scope {scope.path!r} records {len(scope.lets)} bindings, {len(scope.let_at)} places"
        )
    extra: list[tuple[int, int, str, Any]] = [
        (at, 0, "let", let) for at, let in zip(scope.let_at, scope.lets, strict=True)
    ]
    extra += [(at, 1, "plain", kind) for at, kind in scope.plain]
    extra.sort(key=lambda e: (e[0], e[1]))
    out: list[tuple[str, Any]] = []
    pending = iter(extra)
    nxt = next(pending, None)
    for i, item in enumerate([*scope.items, None]):
        while nxt is not None and nxt[0] <= i:
            out.append((nxt[2], nxt[3]))
            nxt = next(pending, None)
        if item is not None:
            out.append(("item", item))
    return out


def input_arg(scope: Scope) -> str:
    """The constructor argument that receives a block's input channels."""
    taken = {py_name(n) for n in scope.args} | {py_name(n) for n, _ in scope.lets}
    return fresh("in_channels", taken)
