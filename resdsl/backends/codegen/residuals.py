"""Residual additions in generated code.

A residual's shortcut module comes from ``make_shortcut`` (the helper the generated file
carries, the one build_model runs), called with the kind, the channels and the stride of the
block input against the main branch, all in the class's terms and checked against the
instance. Where the kind is a parameter the addition is guarded by an attribute, so one class
runs every kind, ``none`` included; a residual that is ``none`` in every instance refuses any
other kind. The branch and the ``project_from`` tap are the values the IR says the addition reads
(:func:`resdsl.ir.forward.reads`), found at the statement that leaves them in every instance
(:meth:`~resdsl.backends.codegen.instances.Instances.read_at`), so every instance reads the same.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from resdsl.backends.codegen.classes import Body, ClassDef, Point
from resdsl.backends.codegen.expr import attr_name, const_value, fold, fresh, is_const, is_expr, lit, py, py_str
from resdsl.backends.codegen.instances import Values
from resdsl.backends.codegen.layers import LayerEmitter
from resdsl.diagnostics import ResdslError, error
from resdsl.ir import Layer, Network
from resdsl.ir.steps import Residual
from resdsl.ops import OPS, channels_of
from resdsl.ops.shortcut import Shortcut, infer_stride
from resdsl.syntax import ast

__all__ = ["ResidualEmitter", "ratio"]


class ResidualEmitter(LayerEmitter):
    """Writes residual additions; ``norm2d`` is the 2-D norm class the network uses."""

    def __init__(self, network: Network, norm2d: str = "BatchNorm2d") -> None:
        super().__init__(network, norm2d)
        self.uses_zero_pad = False  # ZeroPadShortcut is written
        self.uses_projection = False  # a projection is written (its norm class is used)
        self.variable_kinds = False  # some shortcut kind is a parameter: the helper handles every kind
        self.uses_make_shortcut = False  # some shortcut is made by the general helper
        self.uses_bias = False  # the helper makes a projection whose conv has a bias (its batchnorm folded in)

    def plain_residual(self, kind_expr: ast.Expr, cls: ClassDef, names: frozenset[str]) -> None:
        """``residual(none)`` in every instance: a constructor that refuses any other kind."""
        kind = self.tr.normalize(kind_expr, names)
        if is_const(kind):
            if const_value(kind) != "none":
                raise AssertionError(f"codegen: a skipped residual of kind {const_value(kind)!r}")
            return
        message = py_str("this module was generated with this residual absent (kind 'none'); regenerate it for another")
        cls.init.append(("refuse", (py(kind), message)))
        cls.plain_kinds.append(kind)

    def residual(self, body: Body, index: int, item: Layer, values: Values) -> None:
        """The addition at statement ``index``, written from ``item`` (this instance's, or
        another instance's for an instance where it is ``none``)."""
        if item.shortcut is None:
            raise AssertionError(f"codegen: residual {item.path} was not realised by the checker")
        cls, names, main = body.cls, body.names, body.main
        kind_expr = self.tr.normalize(item.exprs["shortcut"], names)
        fixed = is_const(kind_expr)
        kind = const_value(kind_expr) if fixed else None
        read_at = self.read_at(body.scope)  # where the IR's reads stand: a value not there is the current one
        at, tap_at = read_at.get((index, 1)), read_at.get((index, 2))
        branch = body.current if at is None else body.points[at]
        tap = None
        if item.attrs.get("project_from") is not None:
            tap = body.current if tap_at is None else body.points[tap_at]
        expected = self._expected(item)
        out_ch = self.checked(body.current.channels, expected["out"], values)
        in_ch = self.checked(branch.channels, expected["in"], values)
        stride = self.checked(ratio(body.current.stride, branch.stride), expected["stride"], values)
        merge = OPS[item.op].merge
        assert merge is not None and merge.operator is not None, item.op  # the op table's "+"
        step = Residual(main, branch.var, inplace=item.inplace, operator=merge.operator)
        if kind == "identity_if_same":
            self._if_same(cls, step, item, (in_ch, out_ch, stride))
            return
        if not fixed:
            if item.attrs.get("shortcut") == "identity_if_same":
                raise ResdslError(
                    error(
                        "E507",
                        f"residual {item.path}: identity_if_same comes through a parameter, so its class "
                        "would choose the kind at run time; whether it adds is decided block by block",
                        item.span,
                        help="write residual(identity_if_same) in the block, or build the network with build_model",
                    )
                )
            if item.attrs.get("step_names"):
                raise ResdslError(
                    error(
                        "E508",
                        f"residual {item.path}: step_names with a shortcut kind chosen at run time",
                        item.span,
                        help="give the residual one kind in every instance of the block, or build with build_model",
                    )
                )
            self.variable_kinds = True
            step = replace(step, guard=self.guard_name(cls))
        norm_layer = self.net.last_norm(item)
        if norm_layer is not None:
            absent = index in self.absent(body.scope)
            cls.zero_init.append((attr_name(norm_layer.module, norm_layer.span), step.guard if absent else None))
        if kind != "identity":
            step = self._shortcut(body, item, (kind, kind_expr), step, (in_ch, out_ch, stride), tap, values)
        if not fixed:
            cls.kinds.append((step, kind_expr))
        cls.forward.append(step)

    def _if_same(self, cls: ClassDef, step: Residual, item: Layer, shape: tuple[Any, Any, Any]) -> None:
        """``identity_if_same`` (timm's ``has_skip``): the addition where the block keeps its
        input's shape, guarded by ``self.has_skip`` where the class cannot tell for every
        instance; its last norm is zero-initialised only where it adds."""
        in_ch, out_ch, stride = (v if is_expr(v) else lit(v) for v in shape)
        same = [fold(ast.BinOp("==", in_ch, out_ch)), fold(ast.BinOp("==", stride, ast.IntLit(1)))]
        if any(isinstance(c, ast.BoolLit) and not c.value for c in same):
            return  # the shape always changes: nothing is added in any instance
        tests = [c for c in same if not isinstance(c, ast.BoolLit)]
        if tests:
            guard = fresh("has_skip", cls.attrs | {s.guard or "" for s, _ in cls.kinds}, "_")
            cls.attrs.add(guard)
            cls.init.append(("attr", (guard, " and ".join(py(c, -1) for c in tests))))
            step = replace(step, guard=guard)
        norm_layer = self.net.last_norm(item)
        if norm_layer is not None:
            cls.zero_init.append((attr_name(norm_layer.module, norm_layer.span), step.guard))
        cls.forward.append(step)

    def _shortcut(
        self,
        body: Body,
        item: Layer,
        kinds: tuple[str | None, Any],
        step: Residual,
        shape: tuple[Any, Any, Any],
        tap: Point | None,
        values: Values,
    ) -> Residual:
        """The shortcut module of a residual that may not be an identity (``kinds``: its kind
        where the class fixes it, and as written): its constructor line, and the step that
        calls it, on the ``project_from`` tap's value where there is one."""
        cls, names, (kind, kind_expr) = body.cls, body.names, kinds
        in_ch, out_ch, stride = shape
        attr = attr_name(item.module, item.span)
        expected = self._expected(item)
        tap_ch = tap_stride = None
        if tap is not None:  # the module reads from the tap: its channels and stride from there
            tap_ch = self.checked(tap.channels, expected["tap_in"], values)
            tap_stride = self.checked(ratio(body.current.stride, tap.stride), expected["tap_stride"], values)
        step = replace(step, tap=tap.var if tap is not None else step.source)
        source = (in_ch, stride) if tap_ch is None else (tap_ch, tap_stride)
        written = None if kind is None else self.fixed_shortcut(item, names, kind, in_ch, out_ch, stride, source)
        if written is not None:  # torchvision's form: the module itself, built where the shape changes
            condition, module = written
            if module is None:
                return step
            cls.init.append(("downsample", (attr, condition, module)))
            return replace(step, shortcut=attr, optional=condition is not None)
        self.uses_make_shortcut = True
        args = [py(kind_expr), py(in_ch), py(out_ch), py(stride)]
        norm = self.shortcut_norm(item, names)
        if norm is not None:
            args.append(f"norm={norm}")
        if tap_ch is not None and (py(tap_ch), py(tap_stride)) != (py(in_ch), py(stride)):
            args += [f"tap_channels={py(tap_ch)}", f"tap_stride={py(tap_stride)}"]
        if item.shortcut is not None and item.shortcut.bias:
            self.uses_bias = True
        cls.init.append(("shortcut", (attr, args, bool(item.shortcut and item.shortcut.bias))))
        return replace(step, shortcut=attr, optional=kind != "projection_all")

    def fixed_shortcut(
        self, item: Layer, names: frozenset[str], kind: str, in_ch: Any, out_ch: Any, stride: Any, source: Any
    ) -> tuple[str | None, str | None] | None:
        """A shortcut of a kind fixed in the class, written as torchvision writes it: (the
        condition under which the module exists, None where it always does; the module's source,
        None where it never exists), as ``make_shortcut`` decides them; ``source``: the channels
        and stride the module reads (a project_from tap's). None where only the general helper
        can say it: the projection's norm is a parameter of the class."""
        in_ch, out_ch, stride = (v if is_expr(v) else lit(v) for v in (in_ch, out_ch, stride))
        source = tuple(v if is_expr(v) else lit(v) for v in source)
        changes = [fold(ast.BinOp("!=", stride, ast.IntLit(1))), fold(ast.BinOp("!=", in_ch, out_ch))]
        if kind == "projection_all" or any(isinstance(c, ast.BoolLit) and c.value for c in changes):
            condition: str | None = None
        else:
            tests = [c for c in changes if not isinstance(c, ast.BoolLit)]
            if not tests:
                return None, None  # the shape never changes: added as it is
            condition = " or ".join(py(c, -1) for c in tests)
        channels, step = source
        if kind == "zero_pad":
            self.uses_zero_pad = True
            return condition, f"ZeroPadShortcut({py(step)}, {py(fold(ast.BinOp('-', out_ch, channels)))})"
        if self._norm_parameter(item, names) is not None:
            return None  # a parameter of the class turns the norm on and off: the helper does
        norm = self.fixed_norm(item, out_ch)
        layers = []
        if kind == "avgpool_projection":  # ResNet-D: pool first, so that the 1x1 conv sees every input position
            pool = f"nn.AvgPool2d({py(step)}, {py(step)}, ceil_mode=True, count_include_pad=False)"
            bigger = fold(ast.BinOp(">", step, ast.IntLit(1)))
            if isinstance(bigger, ast.BoolLit):
                layers.append(pool if bigger.value else "nn.Identity()")
            else:
                layers.append(f"({pool} if {py(bigger, -1)} else nn.Identity())")
            step = ast.IntLit(1)
        strided = "" if isinstance(step, ast.IntLit) and step.value == 1 else f", stride={py(step)}"
        bias = "True" if item.shortcut is not None and item.shortcut.bias else "False"
        layers.append(f"nn.Conv2d({py(channels)}, {py(out_ch)}, kernel_size=1{strided}, bias={bias})")
        if norm is not None:
            layers.append(norm)
        self.uses_projection = True
        parts = item.shortcut.step_names if item.shortcut is not None else ()
        if parts and len(parts) == len(layers):  # step_names=: the parts by name (timm's RegNet)
            self.uses_ordered_dict = True
            pairs = ", ".join(f"({py_str(part)}, {layer})" for part, layer in zip(parts, layers, strict=True))
            return condition, f"nn.Sequential(OrderedDict([{pairs}]))"
        return condition, f"nn.Sequential({', '.join(layers)})"

    def fixed_norm(self, item: Layer, channels: Any) -> str | None:
        """The norm module after a fixed projection's conv (source), None for none."""
        shortcut = item.shortcut
        assert shortcut is not None
        if not shortcut.norm:
            return None
        return self._norm_source(shortcut, py(channels))[0]

    def _expected(self, item: Layer) -> dict[str, Any]:
        """What build_model passes to make_shortcut for this residual (see the torch back end)."""
        s = item.shortcut
        assert s is not None
        main, branch = self.net.layer(self.port(item, 0)), self.net.layer(self.port(item, 1))
        assert main.shape is not None and branch.shape is not None
        out: dict[str, Any] = {
            "in": channels_of(branch.shape),
            "out": channels_of(main.shape),
            "tap_in": None,
            "tap_stride": None,
        }
        if self.net.shortcut_source(item) == branch.id:
            out["stride"] = s.stride
        else:
            out["stride"] = infer_stride(branch.shape, main.shape) or 1
            out["tap_in"], out["tap_stride"] = s.in_channels, s.stride
        return out

    def shortcut_norm(self, item: Layer, names: frozenset[str]) -> str | None:
        """make_shortcut's norm argument: None for the default batchnorm, ``False`` for none,
        or a function of the channel count for a norm the spec chose (groupnorm(32))."""
        shortcut = item.shortcut
        assert shortcut is not None
        parameter = self._norm_parameter(item, names)
        if parameter is not None:
            return parameter
        if not shortcut.norm:
            return "False"
        source, default = self._norm_source(shortcut, "c")
        if default:
            return None if self.norm2d == "BatchNorm2d" else f"nn.{self.norm2d}"  # SyncBatchNorm
        return f"lambda c: {source}"

    def _norm_parameter(self, item: Layer, names: frozenset[str]) -> str | None:
        """The class's boolean parameter that turns the projection's norm on and off, if one does."""
        written = item.exprs.get("norm")
        if written is not None and not isinstance(written, (ast.BoolLit, ast.Name)):
            raise AssertionError(f"codegen: residual {item.path} has a norm it cannot write")
        if isinstance(written, ast.Name) and written.id in names and not isinstance(item.attrs.get("norm"), tuple):
            return py(self.tr.normalize(written, names))
        return None

    def _norm_source(self, shortcut: Shortcut, channels: str) -> tuple[str, bool]:
        """The projection's norm module for ``channels`` (source), and whether it is the default
        batchnorm (the network's 2-D norm class)."""
        ctor = OPS[shortcut.norm_op].torch
        assert ctor is not None
        c = ctor(shortcut.norm_attrs, ast.Name("c"), (0, 1, 1))  # only the rank matters to a norm
        defaults = OPS[shortcut.norm_op].torch_defaults.get(c.cls, {})
        if c.cls == "BatchNorm2d" and all(defaults.get(k) == v for k, v in c.kwargs.items()):
            return f"nn.{self.norm2d}({channels})", True
        args = [channels if py(a) == "c" else py(a) for a in c.args] + [
            f"{k}={py(v)}" for k, v in c.kwargs.items() if not (k in defaults and v == defaults[k])
        ]
        return f"{self.qualified(c.cls, c.runtime)}({', '.join(args)})", False

    def guard_name(self, cls: ClassDef) -> str:
        """The attribute that makes a residual's addition depend on its kind not being
        ``none`` at run time (its step goes in ``cls.kinds``, with the kind)."""
        return fresh("add_shortcut", cls.attrs | {s.guard or "" for s, _ in cls.kinds}, "_")


def ratio(stride: Any, since: Any) -> Any:
    """The stride between two points of a body: ``stride // since``, folded."""
    if isinstance(since, ast.IntLit) and since.value == 1:
        return stride
    return fold(ast.BinOp("//", stride, since))
