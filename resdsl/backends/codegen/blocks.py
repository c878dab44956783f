"""Blocks, stages and sequential groups in generated code.

A block type becomes a class, written from each of its instances in turn (:class:`Emitter`
checks every symbolic value against the instance it writes). Instances whose classes come out
the same share that class, which is the rule for a block whose shape follows its arguments
(every shipped block); one whose instances need different code gets one class per form,
``BasicBlock``, ``BasicBlock2``, ... (a layer-valued argument that differs, a condition that picks other
layers, a global pool at two map sizes). A stage is :mod:`stages`'s: an ``nn.Sequential`` of its
first block and a loop over the later ones where one call says them all (instance values
included), else the blocks one by one. A sequential group is an ``nn.Sequential`` of its
layers, blocks and groups, numbered by position. Every child reports its output channels and
its stride in its caller's terms, from the class's own (``stride`` of a block that strides
through a block inside it included). A block class whose stages read ``net_index`` takes the
running counts as keyword-only arguments (:mod:`netcount`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resdsl.backends.codegen.classes import Call, ClassDef
from resdsl.backends.codegen.emit import Emitter, Values
from resdsl.backends.codegen.expr import (
    attr_name,
    const_value,
    doc_text,
    fold,
    fresh,
    is_const,
    py,
    py_default,
    py_name,
    py_type,
)
from resdsl.backends.codegen.stages import StageWriter
from resdsl.diagnostics.span import portable
from resdsl.ir import Layer, Network, Scope
from resdsl.ir.classnames import block_class_name
from resdsl.ir.steps import flattens
from resdsl.ops import OPS
from resdsl.semantics.elaborate import SHORTCUTS
from resdsl.semantics.values import LayerCall, ShortcutKind
from resdsl.syntax import ast

__all__ = ["BlockEmitter", "input_arg"]


class BlockEmitter(Emitter):
    """The emitter with block classes, stages and sequential groups."""

    def __init__(
        self, network: Network, norm2d: str = "BatchNorm2d", value_names: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(network, norm2d, value_names)
        self.class_of: dict[int, ClassDef] = {}  # id(instance) -> the class that builds it
        self.stages = StageWriter(self)  # stages, and the net_index counts of the classes being written

    def begin_class(self, scope: Scope, cls: ClassDef, names: frozenset[str], network: bool) -> None:
        self.stages.begin(scope, cls, names, network)

    def end_class(self, cls: ClassDef, network: bool) -> None:
        self.stages.end(cls, network)

    def child_scope(
        self, scope: Scope, parent: ClassDef, cin: Any, names: frozenset[str], values: Values | None
    ) -> tuple[Any, Any]:
        attr = attr_name(scope.name, scope.span)
        if scope.kind == "block":
            hidden = self.stages.plain_block(scope)
            call, out, stride = self.block_call(scope, cin, names, values, hidden=hidden)
            parent.init.append(("assign", (attr, call)))
            return out, stride
        if scope.kind == "sequential":  # layers numbered by position, as nn.Sequential numbers them
            modules, out, stride = self.sequential(scope, parent, cin, names, values)
            parent.init.append(("sequential", (attr, modules)))
            return out, stride
        if scope.kind != "stage":
            raise AssertionError(f"codegen: a {scope.kind} scope {scope.path!r} inside another scope")
        return self.stages.write(scope, parent, cin, names, values)

    def sequential(
        self, scope: Scope, parent: ClassDef, cin: Any, names: frozenset[str], values: Values | None
    ) -> tuple[list[str], Any, Any]:
        """A group's modules as source, numbered by position; its output channels and stride.
        A stage among them (MobileNet's ``blocks.1``) is built into a local of ``parent``'s
        constructor first, and the group holds the local."""
        modules: list[str] = []
        channels, stride = cin, ast.IntLit(1)
        for item in scope.items:
            if isinstance(item, Scope) and item.kind == "block":
                hidden = self.stages.plain_block(item)
                call, channels, own = self.block_call(item, channels, names, values, hidden=hidden)
                modules.append(f"{call.name}({', '.join(call.args)})")
            elif isinstance(item, Scope) and item.kind == "sequential":
                inner, channels, own = self.sequential(item, parent, channels, names, values)
                modules.append(f"nn.Sequential({', '.join(inner)})")
            elif isinstance(item, Scope) and item.kind == "stage":
                local = fresh(f"{py_name(scope.name)}_{item.name}", parent.locals | names | set(self.value_names))
                parent.locals.add(local)
                channels, own = self.stages.write(item, parent, channels, names, values, local=local)
                modules.append(local)
            elif isinstance(item, Layer) and item.op in OPS and OPS[item.op].torch is not None:
                ctor, channels = self.ctor(item, channels, names, attribute=False, values=values)
                own = self.op_stride(item, names, values)
                if flattens(item):  # as build_model's FlattenLinear
                    modules.append(f"{self.qualified('FlattenLinear', True)}({', '.join(ctor.args)})")
                else:
                    modules.append(f"{ctor.cls}({', '.join(ctor.args)})")
            else:
                raise AssertionError(f"codegen: {item.path or item.name!r} cannot stand in the group {scope.path!r}")
            stride = fold(ast.BinOp("*", stride, own))
        return modules, channels, stride

    def block_call(
        self,
        scope: Scope,
        cin: Any,
        names: frozenset[str],
        values: Values | None = None,
        exprs: Mapping[str, ast.Expr] | None = None,
        inst: Mapping[str, Any] | None = None,
        hidden: Sequence[tuple[str, Any]] = (),
        simplify: Callable[[Any], Any] | None = None,
        expected: Mapping[str, Any] | None = None,
    ) -> tuple[Call, Any, Any]:
        """The constructor call of a block instance, its output channels and its stride in the
        caller's terms. ``exprs``: other arguments, as for the later blocks of a stage; ``inst``:
        what the instance values they read (index, net_index, ...) are, in the caller's terms,
        and ``simplify`` what to do to the arguments then; ``hidden``: the net_index arguments
        of its class; ``values``: the caller instance's, to check each argument against;
        ``expected``: what each argument is there (default: ``scope``'s own arguments)."""
        cls, args, mapping = self.block_mapping(scope, cin, names, values, exprs, inst, simplify, expected)
        args += [f"{name}={py(value)}" for name, value in hidden]
        return Call(cls.name, args), self.tr.subst(cls.out_channels, mapping), self.tr.subst(cls.out_stride, mapping)

    def block_mapping(
        self,
        scope: Scope,
        cin: Any,
        names: frozenset[str],
        values: Values | None = None,
        exprs: Mapping[str, ast.Expr] | None = None,
        inst: Mapping[str, Any] | None = None,
        simplify: Callable[[Any], Any] | None = None,
        expected: Mapping[str, Any] | None = None,
    ) -> tuple[ClassDef, list[str], dict[str, Any]]:
        """A block instance's class, its constructor arguments (source) and what each of the
        class's names is in the caller's terms; ``expected``: as for :meth:`block_call`."""
        block = scope.block
        assert block is not None
        cls = self.block_class(scope)
        exprs = dict(scope.arg_exprs if exprs is None else exprs)
        expected = scope.args if expected is None else expected
        args = [py(cin)]
        mapping: dict[str, Any] = {cls.params[0][0]: cin}
        for p in block.params:
            if p.name in cls.layer_params:
                continue
            if p.name in cls.fixed:
                mapping[p.name] = cls.fixed[p.name]
                continue
            if p.name in exprs:
                value = self.tr.normalize(exprs[p.name], names)
                if inst:
                    value = self.tr.subst(value, inst)
                if simplify is not None:
                    value = simplify(value)
                value = self.checked(value, expected.get(p.name), values)
                text = py(value)
                args.append(text if p.default is None else f"{py_name(p.name)}={text}")
                mapping[p.name] = value
            elif p.default is not None:
                mapping[p.name] = self.tr.subst(self.tr.normalize(p.default, frozenset()), mapping)
        own = self.snapshots(scope, cls.params[0][0])  # each binding's test reads the values before it
        for (name, expr), before in zip(scope.lets, own, strict=False):
            mapping[name] = self.tr.subst(self.binding(expr, frozenset(scope.args), before), mapping)
        return cls, args, mapping

    def block_class(self, scope: Scope) -> ClassDef:
        """The class that builds this instance (its block's classes are written on first use)."""
        if id(scope) not in self.class_of:
            self.write_classes(scope)
        return self.class_of[id(scope)]

    def write_classes(self, scope: Scope) -> None:
        """Write the block's class from each instance; instances whose classes agree share one."""
        block = scope.block
        assert block is not None
        forms: dict[str, ClassDef] = {}
        users: dict[str, list[Scope]] = {}
        written: dict[str, tuple[ClassDef, str]] = {}  # an instance's arguments and input: its class
        for instance in self.instances(scope):
            shape = self.net.layer(instance.input).shape
            same = repr((sorted(instance.args.items()), shape))
            if same not in written:  # the class depends on nothing else: write it once per such instance
                cls = self.write_class(instance)
                written[same] = cls, cls.key()
            cls, key = written[same]
            forms.setdefault(key, cls)
            users.setdefault(key, []).append(instance)
            self.class_of[id(instance)] = forms[key]
        first = ""
        for n, (key, cls) in enumerate(forms.items()):
            cls.name = self.class_name(block_class_name(block.name) + (str(n + 1) if n else ""), "Block")
            self.class_names[(block.name, n)] = cls.name
            doc = f"Block ``{block.name}`` from {portable(block.span)}"
            if n:
                paths = ", ".join(s.path for s in users[key][:3]) + (", ..." if len(users[key]) > 3 else "")
                doc += f", in the form {paths} need (its other instances use ``{first}``)"
            cls.doc = doc_text(doc + ".")
            first = first or cls.name
            self.classes[(block.name, n)] = cls  # after the classes it uses, which were written first

    def write_class(self, scope: Scope) -> ClassDef:
        """The class of a block, written from one instance."""
        block = scope.block
        assert block is not None
        arg = input_arg(scope)
        params: list[tuple[str, str, str | None]] = [(arg, "int", None)]
        layer_params = {p.name for p in block.params if isinstance(scope.args.get(p.name), LayerCall)}
        fixed = self.fixed_kinds(scope)
        for p in block.params:
            if p.name in layer_params or p.name in fixed:  # a layer (norm = batchnorm), a kind: built in
                continue
            default = None
            if p.default is not None:
                default_expr = self.tr.normalize(p.default, frozenset())
                default = py_default(const_value(default_expr)) if is_const(default_expr) else "None"
            params.append((py_name(p.name), self.param_type(scope, p.name), default))
        hidden = self.stages.hidden_params(block, {n for n, _, _ in params})
        if hidden:  # its stages read net_index: keyword-only, from whoever builds it
            params.append(("*", "", None))
            params += [(n, "int", None) for pair in hidden.values() for n in pair]
        cls = ClassDef("", "", params)
        cls.layer_params = layer_params
        cls.fixed = fixed
        cls.locals.add(arg)
        names = frozenset(scope.args) - cls.layer_params - set(fixed) | frozenset(n for n, _ in scope.lets)
        self.tr.fixed.append(fixed)
        try:
            for p in block.params:
                if p.name in cls.layer_params or p.name in fixed:
                    continue
                if p.default is not None and not is_const(self.tr.normalize(p.default, frozenset())):
                    cls.init.append(("default", (py_name(p.name), py(self.tr.normalize(p.default, names)))))
            cls.out_channels, cls.out_stride = self.scope_body(scope, cls, ast.Name(arg), names, network=False, arg=arg)
        finally:
            self.tr.fixed.pop()
        return cls

    def param_type(self, scope: Scope, name: str) -> str:
        """A parameter's annotation: its type in this instance, ``float`` where the block's
        instances hold ints in some and floats in others (an expansion of 6 and of 2.5: one
        class takes both, as Python's numeric tower does), so that they can share one class."""
        own = py_type(scope.args.get(name))
        types = {py_type(instance.args.get(name)) for instance in self.instances(scope)}
        for numeric in _NUMERIC:
            if own in numeric and types <= set(numeric):
                return numeric[-1] if len(types) > 1 else own
        return own

    def fixed_kinds(self, scope: Scope) -> dict[str, ast.Expr]:
        """The block's parameters that hold one shortcut kind in every instance of the network,
        each given by no caller or as the kind itself (``shortcut=zero_pad``), never through a
        parameter: the kind each is. The class writes that kind (torchvision's ``downsample``)
        instead of taking a string and choosing at construction; a kind that reaches the block
        from a parameter of the network stays a parameter, and the class handles every kind."""
        block = scope.block
        assert block is not None
        instances = self.instances(scope)
        spec_names = {n for s in self.net.root.scopes() for n in [*s.args, *(m for m, _ in s.lets)]}
        spec_names |= set(self.net.params) | {n for s in instances for n, _ in s.lets}
        fixed: dict[str, ast.Expr] = {}
        for p in block.params:
            kind = instances[0].args.get(p.name)
            if not isinstance(kind, ShortcutKind) or p.name in SHORTCUTS:
                continue
            if any(instance.args.get(p.name) != kind for instance in instances):
                continue
            if all(_kind_word(instance.arg_exprs.get(p.name), spec_names) for instance in instances):
                fixed[p.name] = ast.StrLit(str(kind))
        return fixed


# the annotations an int parameter and a float one (or tuples of them) share: the last of each
_NUMERIC = (("int", "float"), ("tuple[int, ...]", "tuple[float, ...]"))


def _kind_word(expr: ast.Expr | None, spec_names: set[str]) -> bool:
    """Whether a block argument as written is absent or a shortcut kind itself, not a name of
    the spec's that holds one."""
    if expr is None or isinstance(expr, ast.StrLit):
        return True
    return isinstance(expr, ast.Name) and expr.id in SHORTCUTS and expr.id not in spec_names


def input_arg(scope: Scope) -> str:
    """The constructor argument that receives a block's input channels."""
    taken = {py_name(n) for n in scope.args} | {py_name(n) for n, _ in scope.lets}
    return fresh("in_channels", taken)
