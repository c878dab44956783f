"""What the template writes, read from the checked IR: one scope's body.

:class:`Emitter` writes a scope's statements, in order, into a :class:`ClassDef`: constructor
lines and a flat forward pass. Channel counts and strides are carried symbolically, in the
terms of the class being written, so a block class works for every instance; each symbolic
value is checked against the instance it is written from (its channels, strides and arguments
in the IR), and one that does not give the instance's value is written as that value, so the
class is right for that instance whatever it says. Instances of one block are lined up
statement by statement (:mod:`statements`): a residual that is ``none`` in this instance but
adds in another is written as the other's guarded addition, and a statement whose condition
chooses between layers is written with each side that some instance takes. Op layers are
:mod:`layers`'s, additions :mod:`residuals`'s; a merge (a gate's multiply, a concatenation of the
block input) is one forward line, and an op held as a parameter (layer_scale) a tensor of the
class. Which instances can then share one class, and the constructor calls of blocks, stages and
groups, are :mod:`blocks`'s. An IR item the emitter cannot place is an internal error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any

from resdsl.backends.codegen.choices import Leaf, Tree, decide, forward_steps, init_lines, point_expr, unguarded
from resdsl.backends.codegen.classes import Body, Call, ClassDef, Ctor, Guard, Point, merged
from resdsl.backends.codegen.expr import (
    RESERVED,
    attr_name,
    fold,
    fresh,
    is_expr,
    lit,
    py,
    py_name,
    py_str,
    symbolic_shape,
)
from resdsl.backends.codegen.instances import Values
from resdsl.backends.codegen.residuals import ResidualEmitter
from resdsl.backends.codegen.statements import (
    Condition,
    Entry,
    Variant,
    body_of,
    chosen,
    conditions,
    layerish,
    read_after,
    variant,
)
from resdsl.diagnostics.span import portable
from resdsl.ir import Layer, Network, Scope
from resdsl.ir import forward as ir_forward
from resdsl.ir import steps as ir_steps
from resdsl.ir.steps import Save, Step
from resdsl.ops import OPS, channels_of, fmt_shape
from resdsl.syntax import ast

_LOCALS = ("x", "out", "identity", "network_input", "self")

__all__ = ["Body", "Call", "ClassDef", "Ctor", "Emitter", "Point", "portable"]


class Emitter(ResidualEmitter, ABC):
    """Fills class definitions for one network; ``norm2d`` is the 2-D norm class to use.
    :class:`resdsl.backends.codegen.blocks.BlockEmitter` adds blocks, stages and groups (the
    abstract methods at the end)."""

    def __init__(
        self, network: Network, norm2d: str = "BatchNorm2d", value_names: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(network, norm2d)
        self.value_names = value_names  # every spec value name as written in Python: classes avoid them
        self.classes: dict[tuple[str, int], ClassDef] = {}
        self.class_names: dict[tuple[str, int], str] = {}
        self.item_steps: list[tuple[Layer | Scope, int]] = []  # network items: where their steps start

    # -- names ------------------------------------------------------------------------------

    def class_name(self, wanted: str, suffix: str) -> str:
        taken = set(self.class_names.values()) | set(self.value_names) | RESERVED
        name = wanted
        while name in taken:
            name += suffix
        return name

    # -- a scope body -----------------------------------------------------------------------

    def scope_body(
        self, scope: Scope, cls: ClassDef, cin: Any, names: frozenset[str], network: bool, arg: str = ""
    ) -> tuple[Any, Any]:
        """Fill ``cls.init`` and ``cls.forward`` from one scope; returns its output channels and
        its stride (both in the class's terms)."""
        self.begin_class(scope, cls, names, network)
        try:
            return self._scope_body(scope, cls, cin, names, network, arg)
        finally:
            self.end_class(cls, network)

    def _scope_body(
        self, scope: Scope, cls: ClassDef, cin: Any, names: frozenset[str], network: bool, arg: str
    ) -> tuple[Any, Any]:
        main = "x" if network else "out"
        cls.main = main
        for instance in self.instances(scope):
            cls.attrs |= {i.module if isinstance(i, Layer) else i.name for i in instance.items}
        cls.locals |= {py_name(n) for n in names} | set(_LOCALS)
        start = Point("x", cin, ast.IntLit(1))
        body = Body(scope, cls, names, network, main, arg, body_of(self.net, scope), start, {-1: start})
        body.node = scope.input
        body.saves = self._saves(scope)
        if network and -1 in body.saves:  # "x" is about to be reassigned: keep the input
            cls.forward.append(Save("network_input", "x"))
            body.current = body.points[-1] = replace(start, var="network_input")
        for entry in self.entries(scope):
            self.statement(body, entry)
        if body.node != scope.output:
            raise AssertionError(f"codegen: scope {scope.path!r} ends at {body.node!r}, the IR says {scope.output!r}")
        return body.current.channels, body.current.stride

    def _saves(self, scope: Scope) -> set[int]:
        """The statements whose value the class reads after its main variable moved on (a
        residual's branch and tap, a concatenation's other operand): where the IR's reads stand
        (:meth:`read_at`). A block's input stays in ``x``, which nothing reassigns."""
        saves = set(self.read_at(scope).values())
        return saves - {-1} if scope.block is not None else saves

    def residual_at(self, scope: Scope, index: int) -> tuple[Scope, Layer] | None:
        """A residual written at statement ``index``: this instance's, else the first instance's
        that adds there (a residual that is ``none`` here is written guarded, from it)."""
        entry = self.entries(scope)[index]
        first = entry.items[0] if entry.items else None
        if isinstance(first, Layer) and first.op == "residual":
            return scope, first
        return self.donors(scope)[index]

    def statement(self, body: Body, entry: Entry) -> None:
        """Write what one statement made, then note where its value is."""
        cls = body.cls
        label: str | None = None
        conds = conditions(entry.stmt)
        # a network's statement that made nothing (after the last feature output) writes nothing
        dropped = body.network and not entry.items and entry.let is None
        if conds and not dropped and self._chooses(body, entry, conds):
            start = len(cls.forward)
            self.choice(body, entry, conds)
            if body.network:
                self.item_steps += [(item, start) for item in entry.items]
            label = entry.name or entry.items[-1].name
        elif entry.let is not None:
            name, expr = entry.let
            cls.init.append(("let", (py_name(name), py(self.tr.normalize(expr, body.names)))))
        elif entry.plain is not None:
            donor = self.residual_at(body.scope, entry.index)
            if donor is None:
                self.plain_residual(entry.plain, cls, body.names)
            else:
                instance, layer = donor
                label = self.items(body, entry, instance, [layer])
        elif entry.items:
            label = self.items(body, entry, body.scope, entry.items, record=body.network)
        if entry.items:
            last = entry.items[-1]
            body.node = last.output if isinstance(last, Scope) else last.id
        body.label = label or body.label  # a binding or a residual that is none leaves the value as it was
        if entry.index in body.saves and body.current.var == body.main:  # a later residual reads it
            name = fresh(f"{py_name(body.label if body.label.isidentifier() else 'value')}_out", cls.locals)
            cls.locals.add(name)
            cls.forward.append(Save(name, body.main))
            body.current = replace(body.current, var=name)
        body.points[entry.index] = body.current

    def _chooses(self, body: Body, entry: Entry, conds: list[Condition]) -> bool:
        """Whether a statement is written as a choice: some instance takes a side that makes
        a layer while a condition picks it (a binding that could be a layer is one too)."""
        if entry.let is not None:
            return layerish(entry.let[1], body.names)
        return bool(self._variant(body, entry.index, body.scope, conds))

    def _variant(self, body: Body, index: int, instance: Scope, conds: list[Condition]) -> Any:
        values = self.values_before(instance, body.arg, index)  # what the statement's test reads
        return variant(conds, lambda test: self.value(self.tr.normalize(test, body.names), values))

    def items(self, body: Body, entry: Entry, instance: Scope, items: list[Layer | Scope], record: bool = False) -> str:
        """Write the items one statement made in ``instance`` (this body's or another's);
        returns the name of the layer whose output the statement leaves."""
        cls, names, main = body.cls, body.names, body.main
        values = self.values(instance, body.arg)
        first = items[0]
        local: dict[str, Point] = {first.input if isinstance(first, Scope) else self.port(first, 0): body.current}
        last = ""
        for item in items:
            if record:
                self.item_steps.append((item, len(cls.forward)))
            cur = local.get(item.input if isinstance(item, Scope) else self.port(item, 0))
            if cur is None:
                raise AssertionError(f"codegen: {item.path or item.name} does not read the value before it")
            if isinstance(item, Scope) and item.side:  # a gate's branch: its own variable, x stays
                out_ch, _ = self.child_scope(item, cls, cur.channels, names, values)
                gate = fresh(f"{py_name(item.name)}_gate", cls.locals)
                cls.locals.add(gate)
                comment = self._gate_comment(body, item, out_ch, cur)
                cls.forward.append(ir_steps.Call(gate, attr_name(item.name, item.span), cur.var, comment))
                local[item.output] = Point(gate, out_ch, cur.stride)
                continue
            if isinstance(item, Layer) and OPS[item.op].merge is not None and item.shortcut is None:
                point = self.merge_item(body, entry, item, cur, local.get(self.port(item, 1)), values)
            elif isinstance(item, Scope):
                point = self.scope_item(body, item, cur, values)
            elif item.op == "residual":
                self.residual(body, entry.index, item, values)
                point = Point(main, cur.channels, cur.stride)
            elif item.op in OPS and OPS[item.op].own_param is not None:
                point = self.own_param(body, item, cur, values)
            elif item.op in OPS and OPS[item.op].own_modules is not None:
                point = self.own_modules(body, item, cur, values)
            elif item.op in OPS and OPS[item.op].torch is not None:
                point = self.op_item(body, item, cur, values)
            else:
                raise AssertionError(f"codegen cannot place {item.op!r} layer {item.path or item.id!r}")
            local[item.output if isinstance(item, Scope) else item.id] = point
            body.current = point
            last = self.net.layer(item.output).name if isinstance(item, Scope) else item.name
            last = last if last.isidentifier() else item.name  # a group's last layer is numbered
        return last

    def merge_item(
        self, body: Body, entry: Entry, item: Layer, cur: Point, other: Point | None, values: Values
    ) -> Point:
        """A merge: a gate's multiply (both operands made by its statement), or a concatenation
        (a radix combination) of the value the previous residual or merge left, the block input
        at first, or of the layer its tap names."""
        at = self.read_at(body.scope).get((entry.index, 1))
        if other is None and at is not None:
            other = body.points[at]
        if other is None:
            raise AssertionError(f"codegen: merge {item.path or item.id} does not combine what came before")
        merge = OPS[item.op].merge
        assert merge is not None
        attrs = self.attrs(item, body.names, values)
        args = self._merge_args(body.cls, attrs)
        body.cls.forward.append(ir_forward.merge_step(merge, body.main, cur.var, other.var, inplace=False, args=args))
        channels = self.merge_channels(item, cur.channels, other.channels, attrs, values)
        # the map of the operand that is not pooled to 1 x 1 (the other broadcasts over it)
        stride = other.stride if cur.pooled else cur.stride
        return Point(body.main, channels, stride, cur.pooled and other.pooled)

    @staticmethod
    def _merge_args(cls: ClassDef, attrs: dict[str, Any]) -> dict[str, str]:
        """A merge's arguments as its forward line reads them: a number as written, a value in
        the class's terms (a block's ``radix``) through an attribute the constructor sets
        (``self.radix = radix``), so the class follows its arguments."""
        out: dict[str, str] = {}
        for key, value in attrs.items():
            if not is_expr(value):
                out[key] = repr(value)
                continue
            src = py(value, -1)
            held = next((d[0] for k, d in cls.init if k == "attr" and d[1] == src and d[0] in cls.held), None)
            if held is None:
                held = fresh(py_name(key), cls.attrs | cls.flags)
                cls.attrs.add(held)
                cls.held.add(held)
                cls.init.append(("attr", (held, src)))
            out[key] = f"self.{held}"
        return out

    def own_param(self, body: Body, item: Layer, cur: Point, values: Values) -> Point:
        """An op held as a parameter of the class (layer_scale): the tensor, then its use."""
        form = OPS[item.op].own_param
        assert form is not None
        attr = attr_name(item.module, item.span)
        if not body.constructed(item.module):
            body.register(item.module)
            attrs = self.attrs(item, body.names, values)
            cin = self.checked(cur.channels, channels_of(item.in_shapes[0]), values)
            dims = [py(d) for d in form.shape(attrs, cin)]
            size = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
            body.cls.init.append(("param", (attr, size, py(form.fill(attrs)))))
        body.cls.forward.append(ir_forward.own_param_step(item, body.main, cur.var, attr))
        return Point(body.main, cur.channels, cur.stride)

    def own_modules(self, body: Body, item: Layer, cur: Point, values: Values) -> Point:
        """An op whose modules are attributes of the class (res2_hierarchy's convs, bns, pool):
        their constructor lines, then the lines that run them."""
        form = OPS[item.op].own_modules
        assert form is not None
        cls = body.cls
        attrs = self.attrs(item, body.names, values)
        for own in form.modules(
            attrs, item.in_shapes[0], lambda a, b: fold(ast.BinOp("-", a if is_expr(a) else lit(a), lit(b)))
        ):
            if body.constructed(own.attr):
                continue
            body.register(own.attr)
            if own.op is None:
                cls.init.append(("attr", (own.attr, py(own.value, -1))))
                continue
            name, args = self.module_call(own.op, dict(own.args, inplace=False), own.cin, own.in_shape)
            call = f"{name}({', '.join(args)})"
            if own.count is not None:
                call = f"nn.ModuleList([{call} for _ in range({py(own.count, -1)})])"
            if is_expr(own.present) or own.present is not True:
                present = py(own.present, -1) if is_expr(own.present) else repr(bool(own.present))
                call = "None" if present == "False" else f"{call} if {present} else None"
            cls.init.append(("attr", (own.attr, call)))
        main = body.main

        def local(name: str) -> str:
            taken = fresh(name, cls.locals)
            cls.locals.add(taken)
            return taken

        cls.forward.append(ir_forward.own_modules_step(item, main, cur.var, local))
        stride = fold(ast.BinOp("*", cur.stride, self.op_stride(item, body.names, values)))
        return Point(main, cur.channels, stride)  # the chunks' channels, concatenated again

    def _gate_comment(self, body: Body, item: Scope, channels: Any, cur: Point) -> str:
        """A gate branch's output shape: the instance's in the network class; in a block class,
        ``C x 1 x 1`` when the branch pools the whole map, else the map it gates (so that every
        instance's class says the same)."""
        out_layer = self.net.layer(item.output)
        if body.network:
            return fmt_shape(out_layer.shape)
        if any(layer.op == "global_avgpool" for layer in item.layers()):
            return f"{py(channels, 3)} x 1 x 1"
        return symbolic_shape(channels, cur.stride, out_layer)

    def scope_item(self, body: Body, item: Scope, cur: Point, values: Values) -> Point:
        """A block, stage or sequential group on the main path."""
        out_ch, own_stride = self.child_scope(item, body.cls, cur.channels, body.names, values)
        out_layer = self.net.layer(item.output)
        out_ch = self.checked(out_ch, channels_of(out_layer.shape) if out_layer.shape else None, values)
        stride = fold(ast.BinOp("*", cur.stride, own_stride))
        comment = fmt_shape(out_layer.shape) if body.network else symbolic_shape(out_ch, stride, out_layer)
        body.cls.forward.append(ir_steps.Call(body.main, attr_name(item.name, item.span), cur.var, comment))
        return Point(body.main, out_ch, stride)

    def op_item(self, body: Body, item: Layer, cur: Point, values: Values) -> Point:
        cls = body.cls
        ctor, out_ch = self.ctor(item, cur.channels, body.names, values=values)
        if not body.constructed(item.module):
            body.register(item.module)
            cls.init.append(("module", ctor))
        stride = fold(ast.BinOp("*", cur.stride, self.op_stride(item, body.names, values)))
        pooled = cur.pooled or item.op == "global_avgpool"
        comment = fmt_shape(item.shape) if body.network else symbolic_shape(out_ch, stride, item, pooled)
        attr = attr_name(item.module, item.span)
        cls.forward += ir_forward.layer_steps(body.main, attr, cur.var, ir_steps.flattens(item), comment)
        return Point(body.main, out_ch, stride, pooled)

    # -- conditions -------------------------------------------------------------------------

    def choice(self, body: Body, entry: Entry, conds: list[Condition]) -> None:
        """A statement whose condition chooses between layers: each side that an instance
        takes, written from that instance, under the condition; a side that none takes
        refuses to build (there is nothing to write it from)."""
        cls = body.cls
        leaves: dict[Any, tuple[Scope, Entry]] = {}
        same = self.same_statement(body.scope, entry.index)
        for instance, other in zip(self.instances(body.scope), same, strict=True):
            leaves.setdefault(self._variant(body, entry.index, instance, conds), (instance, other))
        leaves[self._variant(body, entry.index, body.scope, conds)] = (body.scope, entry)  # this one's, from itself
        makes_layers = any(other.items for _, other in leaves.values())
        written: dict[Any, Leaf] = {}
        start, registered, outer = body.current, body.registered, body.guard
        sides: list[tuple[Guard, dict[str, set[Guard]]]] = []
        for key, (instance, other) in leaves.items():
            n_init, n_forward = len(cls.init), len(cls.forward)
            body.registered = {m: set(g) for m, g in registered.items()}  # each side constructs its own modules,
            body.guard = outer | self._guard(body, key, conds)  # which exist only where it is taken
            if other.let is not None:  # this side binds a value: no layer, and forward skips it
                name, expr = other.let
                if not makes_layers or read_after(body.stmts, entry.index, name):
                    value = self.tr.normalize(chosen(expr, key, conds), body.names)
                    cls.init.append(("let", (py_name(name), py(value))))
                if makes_layers:
                    cls.init.append(("attr", (attr_name(name, expr.span), "None")))
            else:
                self.items(body, other, instance, other.items)
            written[key] = Leaf(cls.init[n_init:], cls.forward[n_forward:], body.current, other.let is not None)
            del cls.init[n_init:], cls.forward[n_forward:]
            body.current = start
            sides.append((body.guard, body.registered))
        body.registered, body.guard = merged(sides, outer), outer
        tree: Tree = decide(
            list(written), [c.cond for c in conds], lambda e: fold(self.tr.normalize(e, body.names)), written
        )
        where = portable(entry.stmt.span) if entry.stmt is not None else "?"
        message = py_str(
            f"this module was generated with no instance taking the other side of the condition at {where}; "
            "regenerate it for these arguments"
        )
        cls.init += unguarded(init_lines(tree, message), cls.init)
        label = py_name(entry.name or "layer")
        present = attr_name(entry.name, entry.stmt.span) if entry.name and entry.stmt else None
        bound: list[Step] = [Save(body.main, start.var)] if makes_layers and start.var != body.main else []
        cls.forward += forward_steps(tree, lambda test: self._flag(cls, label, test), present, bound)
        if not makes_layers and written:
            body.current = start
            return
        vars_ = {leaf.point.var for leaf in written.values() if not leaf.binds}
        if vars_ != {body.main}:
            raise AssertionError(f"codegen: the sides of {where} leave their value in {sorted(vars_)}")
        body.current = Point(
            body.main,
            point_expr(tree, lambda p: p.channels, fold),
            point_expr(tree, lambda p: p.stride, fold),
        )

    def _guard(self, body: Body, key: Variant, conds: list[Condition]) -> Guard:
        """The condition sides an instance that takes ``key`` stands in, in the class's terms
        (a test that is a constant there guards nothing)."""
        guard: set[tuple[str, bool]] = set()
        for index, side in key:
            test = fold(self.tr.normalize(conds[index].cond.test, body.names))
            if not isinstance(test, ast.BoolLit):
                guard.add((py(test, -1), side))
        return frozenset(guard)

    def _flag(self, cls: ClassDef, label: str, test: ast.Expr) -> str:
        """An attribute that holds a condition's test, for forward to choose by."""
        name = fresh(f"choose_{label}", cls.attrs | cls.flags)
        cls.flags.add(name)
        cls.init.append(("attr", (name, py(test, -1))))
        return name

    # -- what blocks.py provides ------------------------------------------------------------

    @abstractmethod
    def child_scope(
        self, scope: Scope, parent: ClassDef, cin: Any, names: frozenset[str], values: Values | None
    ) -> tuple[Any, Any]:
        """A block, stage or group used from ``parent``: its constructor line; returns its
        output channels and its stride, in the parent's terms."""

    @abstractmethod
    def begin_class(self, scope: Scope, cls: ClassDef, names: frozenset[str], network: bool) -> None:
        """Start writing the body of ``cls`` from ``scope`` (the stage counts it keeps)."""

    @abstractmethod
    def end_class(self, cls: ClassDef, network: bool) -> None:
        """Done writing the body of ``cls``."""
