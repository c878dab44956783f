"""A block class: the statements of each instance, and the parameters that tell them apart."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from resdsl.diagnostics import ResdslError, error
from resdsl.importing.layers import DEFAULTS, is_leaf, op_of
from resdsl.importing.trace import refuse, trace

Statement = tuple[str, str, dict[str, object]]  # (layer name or "", op, arguments)


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
    """The instances of one module class, each as a list of statements."""

    instances: list[list[Statement]] = field(default_factory=list)
    _params: dict[tuple[int, str], str] | None = None

    def add(self, module: nn.Module, path: str) -> int:
        """Records one instance; its index for :meth:`single` and :meth:`stage`."""
        self.instances.append(_statements(module, path))
        if len(self.instances) > 1 and [s[:2] for s in self.instances[-1]] != [s[:2] for s in self.instances[0]]:
            raise refuse(
                "E904",
                f"`{path}` has other layers than the first {type(module).__name__}",
                module,
                path,
                "instances of one class must have the same layers; write the variants as two classes",
            )
        return len(self.instances) - 1

    def params(self) -> dict[tuple[int, str], str]:
        """(statement index, argument) -> parameter name, for every value that differs between instances."""
        if self._params is None:
            self._params = {}
            for i, (name, _op, _args) in enumerate(self.instances[0]):
                keys = dict.fromkeys(k for inst in self.instances for k in inst[i][2])
                for key in keys:
                    if key in ("kind", "name"):
                        continue
                    if len({repr(self._value(inst, i, key)) for inst in self.instances}) > 1:
                        self._params[(i, key)] = "stride" if key == "s" else f"{name}_{key}"
            self._derive_channels()
        return self._params

    def _value(self, inst: list[Statement], i: int, key: str) -> object:
        """An argument of statement ``i``, its op's default where the instance leaves it out."""
        _name, op, args = inst[i]
        return args[key] if key in args else DEFAULTS.get(op, {}).get(key)

    def _derive_channels(self) -> None:
        """Widths that are a whole multiple of the first varying width in every instance are written
        as ``planes * k`` (a bottleneck's 4x expansion), so the block has one width parameter."""
        assert self._params is not None
        outs = [(i, k) for (i, k) in self._params if k == "out"]
        if not outs:
            return
        base = outs[0]
        self._params[base] = "planes"
        self._derived: dict[tuple[int, str], str] = {}
        for pos in outs[1:]:
            ratios = {self._value(inst, pos[0], "out") / self._value(inst, base[0], "out") for inst in self.instances}  # type: ignore[operator]
            if len(ratios) == 1:
                r = ratios.pop()
                if r == int(r):
                    self._derived[pos] = f"planes * {int(r)}" if r != 1 else "planes"
                elif (1 / r) == int(1 / r):
                    self._derived[pos] = f"planes // {int(1 / r)}"

    def definition(self, name: str) -> list[str]:
        """The ``block name(...) { ... }`` lines."""
        params = self.params()
        derived = getattr(self, "_derived", {})
        names = list(dict.fromkeys(p for pos, p in params.items() if p != "stride" and pos not in derived))
        if "stride" in params.values():
            names.append("stride = 1")
        lines = [f"block {name}({', '.join(names)}) {{"]
        for i, (layer, op, args) in enumerate(self.instances[0]):
            keys = dict.fromkeys([*args, *(k for (j, k) in params if j == i)])
            if op == "residual":  # identity where no instance projects, else the kind the projecting ones have
                kinds = {str(inst[i][2]["kind"]) for inst in self.instances} - {"identity"}
                if len(kinds) > 1:
                    message = f"instances of block `{name}` use different shortcut kinds: {', '.join(sorted(kinds))}"
                    raise ResdslError(error("E904", message, help="write the variants as two classes"))
                args = {**args, "kind": kinds.pop() if kinds else "identity"}
            first = {k: args[k] if k in args else self._value(self.instances[0], i, k) for k in keys}
            shown = {k: derived.get((i, k), params.get((i, k))) or first[k] for k in keys}
            lines.append("    " + _render(layer, op, shown, {k for k in keys if (i, k) in params}))
        return [*lines, "}"]

    def _values(self, index: int) -> dict[str, object]:
        inst = self.instances[index]
        derived = getattr(self, "_derived", {})
        return {p: self._value(inst, i, k) for (i, k), p in self.params().items() if (i, k) not in derived}

    def single(self, name: str, index: int) -> str:
        """A call of the block for one instance."""
        values = self._values(index)
        return f"{name}({', '.join(_arg(k, literal(v)) for k, v in values.items())})"

    def stage(self, name: str, indices: list[int]) -> str:
        """``stage(block(...), repeat=N, stride=S)`` for a run of instances."""
        rows = [self._values(i) for i in indices]
        first, rest = rows[0], rows[1:]
        stride = first.pop("stride", 1)
        args = []
        for key, value in first.items():
            later = {repr(r[key]) for r in rest}
            if later and later != {repr(value)}:
                if len(later) > 1:
                    raise ValueError(f"stage of {name}: {key} differs block by block")
                args.append(_arg(key, f"{literal(value)} if index == 0 else {later.pop()}"))
            else:
                args.append(_arg(key, literal(value)))
        if any(r.get("stride", 1) != 1 for r in rest):
            raise ValueError(f"stage of {name}: a later block strides")
        tail = f", stride={stride}" if stride != 1 else ""
        return f"stage({name}({', '.join(args)}), repeat={len(indices)}{tail})"


def _arg(key: str, text: str) -> str:
    """The width by position (``bottleneck(64)``), the rest by name."""
    return text if key == "planes" else f"{key}={text}"


def _render(layer: str, op: str, args: dict[str, object], symbolic: set[str]) -> str:
    if op == "residual":
        extra = f", name={literal(args['name'])}" if args.get("name", "downsample") != "downsample" else ""
        return f"residual({args['kind']}{extra})"
    parts = []
    for k, v in args.items():
        text = str(v) if k in symbolic else literal(v)
        parts.append(text if k == "out" else f"{k}={text}")
    body = f"{op}({', '.join(parts)})" if parts or (layer and op != "relu") else op
    return body if not layer or op == "relu" else f"{layer} = {body}"


def _statements(module: nn.Module, path: str) -> list[Statement]:
    """One instance's statements: its layers in forward order and its residual additions."""
    out: list[Statement] = []
    for step in trace(module, path).steps:
        if step.kind == "residual":
            kind = _shortcut_kind(module, step.shortcut, path)
            out.append(("", "residual", {"kind": kind, "name": step.shortcut or "downsample"}))
        elif step.kind != "module":
            out.append(("", step.kind, {}))
        else:
            child = module.get_submodule(step.target)
            if not is_leaf(child):
                raise refuse("E904", f"`{path}.{step.target}` is a block inside a block", child, path, "")
            op, args = op_of(child, f"{path}.{step.target}")
            out.append((step.target, op, args))
    return out


def _shortcut_kind(module: nn.Module, attr: str, path: str) -> str:
    """identity, projection (1x1 conv + bn) or avgpool_projection (ResNet-D)."""
    if not attr:
        return "identity"
    shortcut = module.get_submodule(attr)
    parts = [type(m) for m in shortcut] if isinstance(shortcut, nn.Sequential) else []
    if parts == [nn.Conv2d, nn.BatchNorm2d]:
        return "projection"
    if not parts and _pads_channels(shortcut):
        return "zero_pad"
    if len(parts) == 3 and parts[0] in (nn.AvgPool2d, nn.Identity) and parts[1:] == [nn.Conv2d, nn.BatchNorm2d]:
        return "avgpool_projection"
    raise refuse(
        "E904",
        f"shortcut `{path}.{attr}` is no kind the language has",
        module,
        path,
        "identity, a 1x1 conv + batchnorm (projection), avgpool + 1x1 conv + batchnorm (ResNet-D), or "
        "a stateless module that subsamples and appends zero channels (option A)",
    )


def _pads_channels(shortcut: nn.Module) -> bool:
    """Whether a module without state is option A: every ``s``-th position, zero channels appended
    (``pad_channels``); found by running it on a probe, since such modules are written many ways."""
    if shortcut.state_dict() or any(True for _ in shortcut.children()):
        return False
    probe = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = shortcut(probe)
    except Exception:
        return False
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[1] < 4 or not out.shape[2]:
        return False
    stride = 8 // out.shape[2]
    expected = torch.nn.functional.pad(probe[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, out.shape[1] - 4))
    return out.shape == expected.shape and torch.equal(out, expected)
