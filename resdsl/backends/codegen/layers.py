"""One op layer in generated code: its constructor call, its attributes and its stride.

An op's module comes from the op table (:attr:`resdsl.ops.OpDef.torch`), with the layer's
arguments in the terms of the class being written; each symbolic value is checked against the
instance the class is written from (:meth:`Instances.checked`), so a value the class cannot say
for that instance is written as the instance's own. A module class is ``nn.Conv2d`` or, for the
layers torch.nn lacks, a class of :mod:`resdsl.runtime.layers` that the generated file copies
(:attr:`LayerEmitter.runtime_classes`).
"""

from __future__ import annotations

from typing import Any

from resdsl.backends.codegen.classes import Ctor
from resdsl.backends.codegen.expr import attr_name, const_value, fold, free_names, is_const, is_expr, lit, py
from resdsl.backends.codegen.instances import Instances, Values
from resdsl.ir import Layer, Network
from resdsl.ops import OPS, channels_of
from resdsl.syntax import ast

__all__ = ["LayerEmitter", "Symbolic"]


class Symbolic:
    """A channel count in generated code (a number or an expression of the class's terms) that
    computes with ``+ - * //`` as a number does: an op's channel rule (:attr:`OpDef.channels`,
    :attr:`OpDef.merge_channels`) is written once, over numbers, and gives an expression here."""

    def __init__(self, value: Any) -> None:
        self.expr: ast.Expr = value.expr if isinstance(value, Symbolic) else value if is_expr(value) else lit(value)

    def _op(self, op: str, other: Any, right: bool = False) -> Symbolic:
        b = Symbolic(other).expr
        a = self.expr
        if op == "//" and not right and isinstance(a, ast.BinOp) and a.op == "*" and py(a.right) == py(b):
            return Symbolic(a.left)  # (c * radix) // radix: c
        return Symbolic(fold(ast.BinOp(op, b, self.expr) if right else ast.BinOp(op, self.expr, b)))

    def __add__(self, other: Any) -> Symbolic:
        return self._op("+", other)

    def __radd__(self, other: Any) -> Symbolic:
        return self._op("+", other, right=True)

    def __sub__(self, other: Any) -> Symbolic:
        return self._op("-", other)

    def __rsub__(self, other: Any) -> Symbolic:
        return self._op("-", other, right=True)

    def __mul__(self, other: Any) -> Symbolic:
        return self._op("*", other)

    def __rmul__(self, other: Any) -> Symbolic:
        return self._op("*", other, right=True)

    def __floordiv__(self, other: Any) -> Symbolic:
        return self._op("//", other)

    def __rfloordiv__(self, other: Any) -> Symbolic:
        return self._op("//", other, right=True)

    @staticmethod
    def of(value: Any) -> Any:
        """An expression wrapped for a channel rule; a number (or anything else) as it is."""
        return Symbolic(value) if is_expr(value) else value

    @staticmethod
    def unwrap(value: Any) -> Any:
        """The expression a rule's result stands for (a number it kept as one stays a number)."""
        return value.expr if isinstance(value, Symbolic) else value

    @staticmethod
    def wrap(args: dict[str, Any]) -> dict[str, Any]:
        """Arguments for a channel rule: expressions wrapped, numbers and the rest as they are."""
        return {k: Symbolic.of(v) for k, v in args.items()}


class LayerEmitter(Instances):
    """Writes op layers; ``norm2d`` is the 2-D norm class the network uses."""

    def __init__(self, network: Network, norm2d: str = "BatchNorm2d") -> None:
        super().__init__(network)
        self.norm2d = norm2d
        self.norm_classes: set[str] = set()  # batchnorm classes the module names
        self.runtime_classes: set[str] = set()  # resdsl.runtime.layers classes the module copies
        self.uses_ordered_dict = False  # a stage names its blocks (prefix=, start=)

    def qualified(self, cls: str, runtime: bool) -> str:
        """How generated code names a module class: ``nn.Conv2d``, or a copied runtime class."""
        if runtime:
            self.runtime_classes.add(cls)
            return cls
        return f"nn.{cls}"

    def attrs(self, layer: Layer, names: frozenset[str], values: Values | None = None) -> dict[str, Any]:
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
            elif is_expr(value):
                out[key] = self.checked(value, layer.attrs.get(key), values)
        return {k: (const_value(v) if is_expr(v) and is_const(v) else v) for k, v in out.items()}

    def ctor(
        self, layer: Layer, cin: Any, names: frozenset[str], attribute: bool = True, values: Values | None = None
    ) -> tuple[Ctor, Any]:
        """The constructor of an op layer (``Ctor.cls`` as the generated file names it) and
        its output channels or features, in the class's terms."""
        op = OPS[layer.op]
        assert op.torch is not None
        attrs = self.attrs(layer, names, values)
        attrs["inplace"] = layer.inplace
        shape = layer.in_shapes[0]
        cin = self.checked(cin, channels_of(shape), values)
        if op.flatten_input and len(shape) == 3 and shape[1] * shape[2] != 1:
            cin = fold(ast.BinOp("*", cin, ast.IntLit(shape[1] * shape[2])))
        cls, args = self.module_call(layer.op, attrs, cin, shape)
        out = Symbolic.unwrap(op.channels(Symbolic.wrap(attrs), Symbolic.of(cin)))
        if out is cin and len(shape) == 3 and layer.shape is not None and len(layer.shape) == 1:
            out = fold(ast.BinOp("*", cin, ast.IntLit(shape[1] * shape[2])))  # flattening keeps every value
        out = self.checked(out, channels_of(layer.shape) if layer.shape else None, values)
        attr = attr_name(layer.module, layer.span) if attribute else ""
        return Ctor(attr, cls, args), out

    def module_call(
        self, op_name: str, attrs: dict[str, Any], cin: Any, shape: tuple[int, ...]
    ) -> tuple[str, list[str]]:
        """The class (as the generated file names it) and the arguments of the module the op
        ``op_name`` builds from ``attrs`` (in the class's terms), leaving out torch's defaults."""
        op = OPS[op_name]
        assert op.torch is not None, op_name
        c = op.torch(attrs, cin, shape)
        cls = self.norm2d if c.cls == "BatchNorm2d" else c.cls
        defaults = op.torch_defaults.get(cls, {})
        if cls.startswith("BatchNorm") or cls == "SyncBatchNorm":
            self.norm_classes.add(cls)
        args = [py(a, -1) for a in c.args]  # an argument stands alone: a condition needs no parentheses
        for key, value in c.kwargs.items():
            if key in defaults and not is_expr(value) and value == defaults[key]:
                continue
            args.append(f"{key}={py(value, -1)}")
        return self.qualified(cls, c.runtime), args

    def op_stride(self, layer: Layer, names: frozenset[str], values: Values | None) -> Any:
        """The spatial stride of one op layer, in the terms of its scope."""
        stride = OPS[layer.op].stride(self.attrs(layer, names, values))
        return stride if is_expr(stride) else lit(stride)

    def merge_channels(self, layer: Layer, main: Any, other: Any, attrs: dict[str, Any], values: Values | None) -> Any:
        """A merge's output channels, by its op's rule (concatenation adds them up); ``attrs``:
        its arguments in the class's terms."""
        rule = OPS[layer.op].merge_channels
        args = Symbolic.wrap(attrs)
        out = main if rule is None else Symbolic.unwrap(rule(Symbolic.of(main), Symbolic.of(other), args))
        return self.checked(out, channels_of(layer.shape) if layer.shape else None, values)
