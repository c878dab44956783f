"""A block class: the statements of each instance, and the parameters that tell them apart."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from resdsl.diagnostics import ResdslError, error
from resdsl.importing.layers import DEFAULTS, is_leaf, op_of
from resdsl.importing.shortcuts import render_residual, residual_args
from resdsl.importing.trace import Step, refuse, trace

Statement = tuple[str, str, dict[str, object]]  # (layer name or "", op, arguments)
_Nested = tuple[int, "BlockClass", int]  # (statement position, nested block class, its instance)
WIDTHS = ("out", "planes")  # the arguments that are widths: derived from the block's `planes`


def literal(value: object) -> str:
    """A Python value as the language writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def call(op: str, args: dict[str, object], named: bool = False) -> str:
    """``op(out, k=v)``: a width by position, the rest by name; a bare ``op`` where an anonymous
    layer takes no arguments (``relu``), ``op()`` for a named one."""
    if not args and not named:
        return op
    parts = [literal(v) if k == "out" else f"{k}={literal(v)}" for k, v in args.items()]
    return f"{op}({', '.join(parts)})"


@dataclass
class BlockClass:
    """The instances of one module class, each as a list of statements. ``klass_of`` gives the
    block class of a module class and variant (for blocks nested in this one: a gate, an SE
    module; for instances with other layers than this class's first: ``variant + 1``)."""

    name: str
    klass_of: Callable[[type, int], BlockClass]
    variant: int = 0
    instances: list[list[Statement]] = field(default_factory=list)
    _lazy: list[tuple[int, int, BlockClass, int]] = field(default_factory=list)
    _params: dict[tuple[int, str], str] | None = None
    _derived: dict[tuple[int, str], str] = field(default_factory=dict)

    @property
    def gates(self) -> bool:
        """Whether the module multiplies its input by what it computes (timm's SEModule): it is
        written as a branch and used through ``gate(...)``."""
        return bool(self.instances) and self.instances[0][-1][1] == "scale"

    def add(self, module: nn.Module, path: str) -> tuple[BlockClass, int]:
        """Records one instance; the block class that holds it (this one, or the variant of this
        module class whose layers it has) and its index there, for :meth:`single` and :meth:`stage`."""
        statements, nested = self._statements(module, path)
        ops = _shape_of(statements)
        if "scale" in [op for _, op, _ in ops[:-1]]:
            raise refuse("E904", f"`{path}` multiplies by its input before its last step", module, path, "")
        return self._place(statements, nested, module)

    def _place(self, statements: list[Statement], nested: list[_Nested], module: nn.Module) -> tuple[BlockClass, int]:
        """Appends an instance here if it has this class's layers, else to the next variant
        (timm's one class with an SE module or an activation in some instances only: a block each)."""
        if self.instances and not _fits(self.instances[0], statements):
            return self.klass_of(type(module), self.variant + 1)._place(statements, nested, module)
        self._lazy += [(len(self.instances), p, k, n) for p, k, n in nested]
        self.instances.append(statements)
        self._align_skips()
        return self, len(self.instances) - 1

    def _align_skips(self) -> None:
        """Where the new instance and the first differ only by one identity residual (timm's
        ``has_skip``: no addition where the shapes change), the one without it gets a ``none``
        there, so that the block's residual is ``identity_if_same``."""
        first, new = self.instances[0], self.instances[-1]
        at = _skip_at(first, new) if len(self.instances) > 1 else None
        if at is None:
            return
        size = min(len(first), len(new))  # the loop lengthens it
        for index, inst in enumerate(self.instances):
            if len(inst) == size:
                inst.insert(at, ("", "residual", {"kind": "none"}))
                self._lazy = [(j, p + (j == index and p >= at), k, n) for j, p, k, n in self._lazy]

    def params(self) -> dict[tuple[int, str], str]:
        """(statement index, argument) -> parameter name, for every value that differs between instances."""
        if self._params is None:
            for inst, i, nested, index in self._lazy:
                self.instances[inst][i][2].update(nested.values(index))
            self._params = {}
            for i, (name, op, _args) in enumerate(self.instances[0]):
                keys = dict.fromkeys(k for inst in self.instances for k in inst[i][2])
                for key in keys:
                    if op == "residual" or key == "body":
                        continue
                    if len({repr(self._value(inst, i, key)) for inst in self.instances}) > 1:
                        self._params[(i, key)] = "stride" if key in ("s", "stride") else f"{name}_{key}"
            self._derive_channels()
        return self._params

    def _value(self, inst: list[Statement], i: int, key: str) -> object:
        """An argument of statement ``i``, its op's default where the instance leaves it out."""
        _name, op, args = inst[i]
        return args[key] if key in args else DEFAULTS.get(op, {}).get(key)

    def _derive_channels(self) -> None:
        """Widths that are a whole multiple (or part) of the first varying width in every instance
        are written ``planes * 4`` (a bottleneck's expansion), so the block has one width parameter."""
        assert self._params is not None
        outs = [(i, k) for (i, k) in self._params if k in WIDTHS]
        if not outs:
            return
        base = outs[-1] if self.gates else outs[0]  # a gate's width is its input's: se_module(planes)
        self._params[base] = "planes"
        for pos in outs:
            if pos == base:
                continue
            ratios = {
                self._value(inst, pos[0], pos[1]) / self._value(inst, base[0], base[1])  # type: ignore[operator]
                for inst in self.instances
            }
            if len(ratios) == 1:
                r = ratios.pop()
                if r == int(r):
                    self._derived[pos] = f"planes * {int(r)}" if r != 1 else "planes"
                elif r and (1 / r) == int(1 / r):
                    self._derived[pos] = f"planes // {int(1 / r)}"

    def definition(self) -> list[str]:
        """The ``block name(...) { ... }`` lines."""
        params = self.params()
        names = list(dict.fromkeys(p for pos, p in params.items() if p != "stride" and pos not in self._derived))
        if "stride" in params.values():
            names.append("stride = 1")
        lines = [f"block {self.name}({', '.join(names)}) {{"]
        for i, (layer, op, args) in enumerate(self.instances[0]):
            if op == "scale":
                continue
            if op == "residual":
                args = self._residual(i)
            keys = sorted(dict.fromkeys([*args, *(k for (j, k) in params if j == i)]), key=_order_of)
            first = {k: args[k] if k in args else self._value(self.instances[0], i, k) for k in keys}
            shown = {k: self._derived.get((i, k), params.get((i, k))) or first[k] for k in keys}
            lines.append("    " + _render(layer, op, shown, {k for k in keys if (i, k) in params}))
        return [*lines, "}"]

    def _residual(self, i: int) -> dict[str, object]:
        """Identity where no instance projects, else what the projecting ones have."""
        if {inst[i][2]["kind"] for inst in self.instances} == {"identity", "none"}:
            return {"kind": "identity_if_same"}
        projecting = [inst[i][2] for inst in self.instances if inst[i][2]["kind"] != "identity"]
        kinds = {render_residual(args) for args in projecting}
        if len(kinds) > 1:
            message = f"instances of block `{self.name}` use different shortcuts: {'; '.join(sorted(kinds))}"
            raise ResdslError(error("E904", message, help="write the variants as two classes"))
        if not projecting:
            return self.instances[0][i][2]
        if any(args.get("same") for args in projecting):  # option C: every block projects
            if len(projecting) < len(self.instances) or projecting[0]["kind"] != "projection":
                message = f"block `{self.name}` projects where the shapes agree in some instances only"
                raise ResdslError(error("E904", message, help="option C projects in every block"))
            return {**projecting[0], "kind": "projection_all"}
        return projecting[0]

    def values(self, index: int) -> dict[str, object]:
        """The block's arguments for one instance: parameter name -> value."""
        inst = self.instances[index]
        return {p: self._value(inst, i, k) for (i, k), p in self.params().items() if (i, k) not in self._derived}

    def single(self, index: int) -> str:
        """A call of the block for one instance (``gate(...)`` around it where the block gates)."""
        text = f"{self.name}({', '.join(_arg(k, literal(v)) for k, v in self.values(index).items())})"
        return f"gate({text})" if self.gates else text

    def stage(self, indices: list[int], naming: str = "") -> str:
        """``stage(block(...), repeat=N, stride=S)`` for a run of instances; a value that changes
        block by block is written with ``index`` (the first block's, a step per block, or a list
        indexed by it). ``naming`` is ``prefix="b", start=1`` where the blocks are named so."""
        rows = [self.values(i) for i in indices]
        first, rest = rows[0], rows[1:]
        stride = first.pop("stride", 1)
        args = []
        for key, value in first.items():
            later = [r[key] for r in rest]
            if later and {repr(v) for v in later} != {repr(value)}:
                args.append(_arg(key, _per_index([value, *later])))
            else:
                args.append(_arg(key, literal(value)))
        if any(r.get("stride", 1) != 1 for r in rest):
            raise ResdslError(error("E904", f"a stage of `{self.name}` strides in a later block", help=_STAGE_HINT))
        tail = (f", stride={stride}" if stride != 1 else "") + (f", {naming}" if naming else "")
        return f"stage({self.name}({', '.join(args)}), repeat={len(indices)}{tail})"

    def _statements(self, module: nn.Module, path: str) -> tuple[list[Statement], list[_Nested]]:
        """One instance's statements (its layers in forward order and its merges) and the blocks
        nested in it, whose arguments are filled in once all their instances are seen."""
        out: list[Statement] = []
        nested: list[_Nested] = []
        for step in trace(module, path).steps:
            if step.kind == "residual":
                out.append(("", "residual", residual_args(module, step, path)))
            elif step.kind in ("module", "gate"):
                layer, op, args = self._child(module, step, f"{path}.{step.target}", len(out), nested)
                reused = op in STATELESS and any(s[0] == layer for s in out)  # self.act1 called twice
                out.append(("" if reused else layer, op, args))
            else:
                out.append(("", step.kind, {}))
        return out, nested

    def _child(self, module: nn.Module, step: Step, path: str, position: int, found: list[_Nested]) -> Statement:
        """A child module: an op, a group of ops, or a block nested in this one (a gate)."""
        child = module.get_submodule(step.target)
        gate = step.kind == "gate"
        if is_leaf(child) and not gate:
            op, args = op_of(child, path)
            return (step.target, op, args)
        if isinstance(child, nn.Sequential) and all(is_leaf(m) for m in child):
            group = ", ".join(call(*op_of(m, f"{path}.{i}")) for i, m in enumerate(child))
            return (step.target, "gate sequential" if gate else "sequential", {"body": group})
        if is_leaf(child) or isinstance(child, nn.Sequential):
            raise refuse("E904", f"`{path}` is no block, group or op a block can hold", child, path, "")
        nested, index = self.klass_of(type(child), 0).add(child, path)
        if gate and nested.gates:
            raise refuse("E904", f"`{path}` is a gate applied as a gate", child, path, "")
        found.append((position, nested, index))
        return (step.target, f"{'gate' if gate or nested.gates else 'block'} {nested.name}", {})


def _skip_at(first: list[Statement], new: list[Statement]) -> int | None:
    """Where one of two instances has an identity residual the other lacks, all else alike."""
    if abs(len(first) - len(new)) != 1:
        return None
    longer, shorter = (first, new) if len(first) > len(new) else (new, first)
    at = next((i for i, (a, b) in enumerate(zip(longer, shorter, strict=False)) if a[:2] != b[:2]), len(shorter))
    if longer[at][1] != "residual" or longer[at][2]["kind"] not in ("identity", "none"):
        return None
    return at if _shape_of(longer[:at] + longer[at + 1 :]) == _shape_of(shorter) else None


def _fits(first: list[Statement], new: list[Statement]) -> bool:
    """Whether an instance has the layers of a block class's first (or lacks only its skip)."""
    return _shape_of(first) == _shape_of(new) or _skip_at(first, new) is not None


def _shape_of(statements: list[Statement]) -> list[tuple[str, str, object]]:
    """What instances of one class must share: names, ops and groups' bodies."""
    return [(s[0], s[1], s[2].get("body")) for s in statements]


_ORDER = ("out", "planes", "k", "s", "p", "d", "groups", "bias")


def _order_of(key: str) -> int:
    """Arguments in the op table's order (``conv(planes, k=3, s=stride, p=1)``)."""
    return _ORDER.index(key) if key in _ORDER else len(_ORDER)


_STAGE_HINT = "a stage's first block takes the stride; write the blocks one by one"


def _per_index(values: list[object]) -> str:
    """A stage argument that changes block by block: ``a if index == 0 else b``,
    ``a + index * d`` for a step per block (a DenseNet-like widening), else ``[a, b, c][index]``."""
    if len({repr(v) for v in values[1:]}) == 1:
        return f"{literal(values[0])} if index == 0 else {literal(values[1])}"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        step = values[1] - values[0]  # type: ignore[operator]
        if all(b - a == step for a, b in itertools.pairwise(values)):  # type: ignore[operator]
            return f"{values[0]} + index * {step}"
    return f"[{', '.join(literal(v) for v in values)}][index]"


def _arg(key: str, text: str) -> str:
    """The width by position (``bottleneck(64)``), the rest by name."""
    return text if key == "planes" else f"{key}={text}"


def _render(layer: str, op: str, args: dict[str, object], symbolic: set[str]) -> str:
    """One statement of a block's body."""
    if op == "residual":
        return render_residual(args)
    if op.endswith("sequential"):
        body = f"sequential({args['body']})"
        return f"{layer} = gate({body})" if op.startswith("gate") else f"{layer} = {body}"
    texts = {k: str(v) if k in symbolic else literal(v) for k, v in args.items()}
    if op.startswith(("gate ", "block ")):
        inner = f"{op.split()[1]}({', '.join(_arg(k, text) for k, text in texts.items())})"
        return f"{layer} = gate({inner})" if op.startswith("gate") else f"{layer} = {inner}"
    parts = [text if k == "out" else f"{k}={text}" for k, text in texts.items()]
    if not layer or (layer == op and not parts and op in STATELESS):
        return f"{op}({', '.join(parts)})" if parts else op
    return f"{layer} = {op}({', '.join(parts)})"


# ops without state that a layer named like them (``self.relu``) is written as, bare
STATELESS = frozenset({"relu", "relu6", "silu", "gelu", "sigmoid", "hardswish", "hardsigmoid", "flatten"})
