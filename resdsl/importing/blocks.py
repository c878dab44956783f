"""A block class: the statements of each instance, and the parameters that tell them apart."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from resdsl.diagnostics import ResdslError, error
from resdsl.importing.groups import gate_member, group_args, is_group, member_op, render_group
from resdsl.importing.layers import DEFAULTS, is_leaf, op_of
from resdsl.importing.layout import LAYOUT_FREE, channels_last_op
from resdsl.importing.names import reserved_layer, stage_naming
from resdsl.importing.nesting import named_sequential, stage_members
from resdsl.importing.norms import batchnorm_act, scale_init
from resdsl.importing.shortcuts import render_residual, residual_args, shortcut_order
from resdsl.importing.trace import Step, refuse, trace
from resdsl.importing.variants import fits, missing, optional_layers, pad, shape_of, skip_at

Statement = tuple[str, str, dict[str, object]]  # (layer name or "", op, arguments); as variants'
# (statement position, nested block class, its instance or, for a stage, its instances)
_Nested = tuple[int, "BlockClass", "int | list[int]"]
WIDTHS = ("out", "planes", "width")  # the arguments that are widths: derived from the block's `planes`


def literal(value: object) -> str:
    """A Python value as the language writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is str:  # a layer name or an expression is a str subclass, written bare
        return json.dumps(value)
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
    _lazy: list[tuple[int, int, BlockClass, int | list[int]]] = field(default_factory=list)
    _params: dict[tuple[int, str], str] | None = None
    _derived: dict[tuple[int, str], str] = field(default_factory=dict)
    _optional: set[str] = field(default_factory=set)  # layers some instances lack

    @property
    def gates(self) -> bool:
        """Whether the module multiplies its input by what it computes (timm's SEModule): it is
        written as a branch and used through ``gate(...)``."""
        return bool(self.instances) and self.instances[0][-1][1] == "scale"

    def add(self, module: nn.Module, path: str, channels_last: bool = False) -> tuple[BlockClass, int]:
        """Records one instance; the block class that holds it (this one, or the variant of this
        module class whose layers it has) and its index there, for :meth:`single` and :meth:`stage`."""
        statements, nested = self._statements(module, path, channels_last)
        ops = shape_of(statements)
        if "scale" in [op for _, op, _ in ops[:-1]]:
            raise refuse("E904", f"`{path}` multiplies by its input before its last step", module, path, "")
        return self._place(statements, nested, module)

    def _place(self, statements: list[Statement], nested: list[_Nested], module: nn.Module) -> tuple[BlockClass, int]:
        """Appends an instance here if it has this class's layers, else to the next variant
        (timm's one class with an SE module or an activation in some instances only: a block each)."""
        if self.instances and not fits(self.instances[0], statements):
            if not self._merge(statements, nested):
                return self.klass_of(type(module), self.variant + 1)._place(statements, nested, module)
            return self, len(self.instances) - 1
        self._lazy += [(len(self.instances), p, k, n) for p, k, n in nested]
        self.instances.append(statements)
        self._align_skips()
        return self, len(self.instances) - 1

    def _merge(self, statements: list[Statement], nested: list[_Nested]) -> bool:
        """Appends an instance that differs from the others only by named layers that one side
        lacks (:mod:`.variants`): absent layers are put in place on both sides, and those layers
        become optional; False (nothing changed) where it differs otherwise."""
        lined = pad(self.instances[0], statements)
        if lined is None:
            return False
        into_old, into_new = lined
        old = [list(inst) for inst in self.instances]
        lazy = list(self._lazy)
        for at, stand_in in into_old:
            for inst in old:
                inst.insert(at, (stand_in[0], stand_in[1], dict(stand_in[2])))
            lazy = [(j, p + (p >= at), k, n) for j, p, k, n in lazy]
        new = list(statements)
        for at, stand_in in into_new:
            new.insert(at, stand_in)
            nested = [(p + (p >= at), k, n) for p, k, n in nested]
        templates = [next((inst[i] for inst in old if not missing(inst[i])), old[0][i]) for i in range(len(old[0]))]
        names = optional_layers(templates, new)
        if names is None or any(optional_layers(templates, inst) is None for inst in old):
            return False
        self.instances[:] = old
        self._lazy = lazy + [(len(old), p, k, n) for p, k, n in nested]
        self.instances.append(new)
        self._optional |= names
        return True

    def _template(self, i: int) -> Statement:
        """Statement ``i`` as the block writes it: the first instance's, or, for an optional
        layer, the first instance's that holds it."""
        first = self.instances[0][i]
        if first[0] in self._optional:
            return next((inst[i] for inst in self.instances if not missing(inst[i])), first)
        return first

    def _align_skips(self) -> None:
        """Where the new instance and the first differ only by one identity residual (timm's
        ``has_skip``: no addition where the shapes change), the one without it gets a ``none``
        there, so that the block's residual is ``identity_if_same``."""
        first, new = self.instances[0], self.instances[-1]
        at = skip_at(first, new) if len(self.instances) > 1 else None
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
                found = nested.values(index) if isinstance(index, int) else nested.stage_values(index)
                self.instances[inst][i][2].update(found)
            self._params = {}
            for i in range(len(self.instances[0])):
                name, op, _args = self._template(i)
                held = [inst for inst in self.instances if not (name in self._optional and missing(inst[i]))]
                keys = dict.fromkeys(k for inst in held for k in inst[i][2])
                for key in keys:
                    if op == "residual" or key.rpartition(".")[2] in ("body", "absent"):
                        continue
                    if len(seen := {repr(self._value(inst, i, key)) for inst in self.instances}) > 1:
                        if any(isinstance(self._value(inst, i, key), PerIndex) for inst in self.instances):
                            raise _differing_stage(name, op, key, seen)
                        bare, flat = key.rpartition(".")[2], key.replace(".", "_")
                        named = f"{name}_{flat}" if name else flat  # an anonymous op's: first
                        self._params[(i, key)] = "stride" if bare in ("s", "stride") else named
                if name in self._optional:
                    self._params[(i, "present")] = f"has_{name}"
            self._derive_channels()
        return self._params

    def _value(self, inst: list[Statement], i: int, key: str) -> object:
        """An argument of statement ``i``, its op's default where the instance leaves it out; for
        an optional layer the instance lacks, the value of the first that holds it (never used)."""
        if inst[i][0] in self._optional:
            if key == "present":
                return not missing(inst[i])
            if missing(inst[i]):
                inst = [self._template(i) if j == i else s for j, s in enumerate(inst)]
        _name, op, args = inst[i]
        if key in args:
            return args[key]
        if op.endswith("sequential") and "." in key:  # a group's member: m1.out
            op, key = member_op(args, key)
        return DEFAULTS.get(op, {}).get(key)

    def _derive_channels(self) -> None:
        """Widths that are a whole multiple (or part) of the first varying width in every instance
        are written ``planes * 4`` (a bottleneck's expansion), so the block has one width parameter."""
        assert self._params is not None
        outs = [(i, k) for (i, k) in self._params if k.rpartition(".")[2] in WIDTHS]
        if not outs:
            return
        base = outs[-1] if self.gates else outs[0]  # a gate's width is its input's: se_module(planes)
        self._params[base] = "planes"
        for pos in self._params:  # a depthwise conv's groups: its width
            held = self._held(pos[0])  # the base's stand-ins count: the layer at pos is built from them
            if pos not in outs and held and all(self._value(i, *pos) == self._value(i, *base) for i in held):
                self._derived[pos] = "planes"
        for pos in outs:
            if pos == base:
                continue
            ratios = {
                self._value(inst, pos[0], pos[1]) / self._value(inst, base[0], base[1])  # type: ignore[operator]
                for inst in self._held(pos[0])
            }
            if len(ratios) == 1:
                r = ratios.pop()
                if r == int(r):
                    self._derived[pos] = f"planes * {int(r)}" if r != 1 else "planes"
                elif r and (1 / r) == int(1 / r):
                    self._derived[pos] = f"planes // {int(1 / r)}"

    def _held(self, i: int) -> list[list[Statement]]:
        """The instances that hold the layer at ``i`` (where an optional layer is missing it is
        not built, so its stand-in values need not follow any derivation)."""
        return [inst for inst in self.instances if not (inst[i][0] in self._optional and missing(inst[i]))]

    def definition(self) -> list[str]:
        """The ``block name(...) { ... }`` lines."""
        params = self.params()
        names = list(dict.fromkeys(p for pos, p in params.items() if p != "stride" and pos not in self._derived))
        names.sort(key=lambda p: p != "planes")  # the width comes first: calls give it by position
        if "stride" in params.values():
            names.append("stride = 1")
        lines = [f"block {self.name}({', '.join(names)}) {{"]
        for i in range(len(self.instances[0])):
            layer, op, args = self._template(i)
            if op == "scale":
                continue
            if op == "residual":
                args = self._residual(i)
            keys = [k for k in (*args, *(k for (j, k) in params if j == i)) if k not in ("present", "absent")]
            keys = sorted(dict.fromkeys(keys), key=_order_of)
            first = {k: args[k] if k in args else self._value(self.instances[0], i, k) for k in keys}
            shown = {k: self._derived.get((i, k), params.get((i, k))) or first[k] for k in keys}
            text = _render(layer, op, shown, {k for k in keys if (i, k) in params})
            if layer in self._optional:  # layer = op(...) if has_layer else identity
                text = f"{text} if {params[(i, 'present')]} else identity"
            lines.append("    " + text)
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

    def _statements(self, module: nn.Module, path: str, last: bool) -> tuple[list[Statement], list[_Nested]]:
        """One instance's statements (its layers in forward order and its merges) and the blocks
        nested in it, whose arguments are filled in once all their instances are seen. ``last``:
        the module runs on a channels-last map (:mod:`.layout`), as its forward may in stretches."""
        out: list[Statement] = []
        nested: list[_Nested] = []
        start = last
        steps = trace(module, path).steps
        shortcut_order(module, steps, path)
        reserved = next((reserved_layer(s.target) for s in steps if reserved_layer(s.target)), None)
        if reserved is not None:
            raise refuse(
                "E912",
                f"`{path}.{reserved}` is named `{reserved}`, a word the language reserves for its own use",
                module,
                path,
                "a spec's layer cannot be named with a reserved word (E005), so its state_dict keys cannot "
                f"read `{reserved}.`: rename the attribute",
            )
        for step in steps:
            child = module.get_submodule(step.target) if step.kind in ("module", "gate") else None
            if step.kind in ("channels_last", "channels_first"):
                if last == (step.kind == "channels_last"):
                    raise refuse("E904", f"`{path}` permutes a map that is {step.kind[9:]} already", module, path, "")
                last = not last
            elif last and (step.kind != "module" or child is None):
                raise refuse("E904", f"`{path}` merges or computes on a channels-last map", module, path, _LAST_HINT)
            elif last:
                out.append(self._channels_last(child, step.target, f"{path}.{step.target}", len(out), nested))
            elif step.kind == "residual":
                out.append(("", "residual", residual_args(module, step, path)))
            elif step.kind == "layer_scale":
                out.append((step.target, "layer_scale", scale_init(getattr(module, step.target))))
            elif child is not None and step.kind == "module" and expanded(child, f"{path}.{step.target}"):
                parts = expanded(child, f"{path}.{step.target}")
                out += [(step.target if i == 0 else "", op, args) for i, (op, args) in enumerate(parts)]
            elif step.kind in ("module", "gate"):
                layer, op, args = self._child(module, step, f"{path}.{step.target}", len(out), nested)
                reused = op in STATELESS and any(s[0] == layer for s in out)  # self.act1 called twice
                bare = op in (*STATELESS, "identity") and layer == op and not args  # self.relu, self.identity
                out.append(("" if reused or bare else layer, op, args))
            else:  # an op of the table; one on the module's own tensor is named as it (cls_token)
                out.append((step.target, step.kind, dict(step.args)))
        if last != start:
            raise refuse("E904", f"`{path}` returns a map in another layout than it takes", module, path, _LAST_HINT)
        return out, nested

    def _channels_last(
        self, child: nn.Module | None, attr: str, path: str, position: int, found: list[_Nested]
    ) -> Statement:
        """A layer run on a channels-last map: a LayerNorm or Linear as the op over the channels,
        a layer that does not care (an activation, dropout), or a block read as channels-last."""
        assert child is not None
        op = channels_last_op(child)
        if op is not None:
            return (attr, *op)
        if is_leaf(child) and op_of(child, path)[0] in LAYOUT_FREE:
            return (attr, *op_of(child, path))
        if is_leaf(child) or isinstance(child, nn.Sequential):
            raise refuse("E904", f"`{path}` is a group on a channels-last map", child, path, _LAST_HINT)
        nested, index = self.klass_of(type(child), 0).add(child, path, channels_last=True)
        found.append((position, nested, index))
        return (attr, f"block {nested.name}", {})

    def _child(self, module: nn.Module, step: Step, path: str, position: int, found: list[_Nested]) -> Statement:
        """A child module: an op, a group of ops, or a block nested in this one (a gate)."""
        child = module.get_submodule(step.target)
        gate = step.kind == "gate"
        if is_leaf(child) and not gate:
            op, args = op_of(child, path)
            return (step.target, op, args)
        named = named_sequential(child)  # transition1.norm: a block, not a group
        if is_group(child):
            return (step.target, "gate sequential" if gate else "sequential", group_args(child, path))
        run = None if gate else stage_members(child)
        if run is not None:  # ConvNeXt's stage.blocks, DenseNet's denseblock1 in features
            return self._stage(child, run, step.target, path, position, found)
        if is_leaf(child) or (isinstance(child, nn.Sequential) and not named):
            raise gate_member(child, path) or refuse(
                "E904", f"`{path}` is no block, group or op a block can hold", child, path, ""
            )
        nested, index = self.klass_of(type(child), 0).add(child, path)
        if gate and nested.gates:
            raise refuse("E904", f"`{path}` is a gate applied as a gate", child, path, "")
        found.append((position, nested, index))
        return (step.target, f"{'gate' if gate or nested.gates else 'block'} {nested.name}", {})

    def _stage(
        self,
        child: nn.Module,
        run: list[tuple[str, nn.Module]],
        attr: str,
        path: str,
        position: int,
        found: list[_Nested],
    ) -> Statement:
        """A run of one block class held by this block (ConvNeXt's stage.blocks, DenseNet's dense
        block: :func:`.nesting.stage_members`): a ``stage`` statement whose arguments, ``repeat``
        among them, are this block's to vary; blocks named denselayer1 ... keep their keys."""
        names = [name for name, _ in run]
        naming = stage_naming(names)
        placed = [self.klass_of(type(m), 0).add(m, f"{path}.{n}") for n, m in run]
        if naming is None or any(klass is not placed[0][0] for klass, _ in placed):
            message = f"`{path}` holds blocks that are no stage of one block ({', '.join(names[:3])}, ...)"
            raise refuse("E904", message, child, path, _STAGE_HINT)
        found.append((position, placed[0][0], [index for _, index in placed]))
        return (attr, f"stage {placed[0][0].name} {naming}".rstrip(), {})

    def stage_values(self, indices: list[int]) -> dict[str, object]:
        """A nested stage's arguments: its blocks' (a value that changes block by block written
        with ``index``: :class:`PerIndex`), ``repeat`` and ``stride``."""
        rows = [self.values(i) for i in indices]
        first, rest = dict(rows[0]), rows[1:]
        stride = first.pop("stride", 1)
        if any(r.get("stride", 1) != 1 for r in rest):
            raise ResdslError(error("E904", f"a stage of `{self.name}` strides in a later block", help=_STAGE_HINT))
        for key, value in first.items():
            later = [r[key] for r in rest]
            if later and {repr(v) for v in later} != {repr(value)}:
                first[key] = PerIndex(_per_index([value, *later]))
        return {**first, "repeat": len(indices), "stride": stride}


def _differing_stage(layer: str, op: str, key: str, seen: set[str]) -> ResdslError:
    """A stage inside a block whose blocks change block by block, otherwise in each instance."""
    inner = op.split()[1]
    message = (
        f"a stage inside a block differs between the block's instances: `{layer} = stage({inner}(...))`"
        f" has {key} = {'; '.join(f'`{v}`' for v in sorted(seen))}"
    )
    return ResdslError(error("E904", message, help="write the variants as two block classes"))


class PerIndex(str):
    """A nested stage's argument that changes block by block (``[24, 16][index]``): written as
    is, and the same in every instance of the holding block, whose parameters cannot say it."""

    def __repr__(self) -> str:
        return str(self)


_ORDER = ("out", "planes", "width", "scale", "k", "s", "p", "d", "groups", "bias")
_LAST_HINT = "between permute(0, 2, 3, 1) and permute(0, 3, 1, 2) a forward may call layers only"


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
        body = render_group(args, symbolic, lambda member, own, mine: _render("", member, own, mine))
        return f"{layer} = gate({body})" if op.startswith("gate") else f"{layer} = {body}"
    texts = {k: str(v) if k in symbolic else literal(v) for k, v in args.items()}
    if op.startswith("stage "):
        given: dict[str, str] = {k: t for k, t in texts.items() if k not in ("repeat", "stride")}
        tail = f", stride={texts['stride']}" if texts.get("stride", "1") != "1" else ""
        naming = op.split(" ", 2)[2] if op.count(" ") > 1 else ""
        tail += f", {naming}" if naming else ""
        called = f"{op.split()[1]}({', '.join(_arg(k, v) for k, v in given.items())})"
        return f"{layer} = stage({called}, repeat={texts['repeat']}{tail})"
    if op.startswith(("gate ", "block ")):
        inner = f"{op.split()[1]}({', '.join(_arg(k, text) for k, text in texts.items())})"
        return f"{layer} = gate({inner})" if op.startswith("gate") else f"{layer} = {inner}"
    parts = [text if k == "out" else f"{k}={text}" for k, text in texts.items()]
    if not layer or (layer == op and not parts and op in STATELESS):
        return f"{op}({', '.join(parts)})" if parts else op
    return f"{layer} = {op}({', '.join(parts)})"


def expanded(module: nn.Module, path: str) -> list[tuple[str, dict[str, object]]]:
    """The ops of a timm BatchNormAct2d that has an activation (batchnorm, then it): the layer
    keeps batchnorm's keys and its activation is written after it; [] for any other module."""
    parts = batchnorm_act(module)
    if parts is None or parts[1] is None:
        return []
    return [parts[0], op_of(parts[1], f"{path}.act")]


# ops without state that a layer named like them (``self.relu``) is written as, bare
STATELESS = frozenset({"relu", "relu6", "silu", "gelu", "sigmoid", "hardswish", "hardsigmoid", "flatten"})
