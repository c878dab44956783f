"""Test helper: the front-end fuzzer's cases, its oracle, and a worker pool with a hard timeout.

Two kinds of case, both deterministic (case ``i`` of seed ``s`` comes from ``random.Random`` seeded
with ``"s:kind:i"``, so any failure can be rebuilt from its kind and index alone):

- ``generated``: whole ``.arch`` programs written from the grammar: imports (the shipped library,
  missing files, a second generated file, cycles), blocks with defaults, networks and aliases,
  stages, ``residual`` with every shortcut kind, every op, arithmetic, lists, huge numbers, deep
  nesting and odd layer names. Some programs are written to check cleanly, others mix in invalid
  pieces with a per-program probability.
- ``mutated``: a shipped spec (``specs/*.arch``, ``specs/std/*.arch``) with byte, token, line,
  encoding (invalid UTF-8, BOM), layout (CRLF, CR, tabs) or truncation mutations. Every spec meets
  every mutation group within the first ``len(SEED_FILES) * len(GROUPS)`` cases.

:func:`judge` is the oracle (see its docstring). :class:`Pool` runs cases in worker processes,
each with a per-case wall-clock limit and a memory limit, so a hang or a runaway allocation fails
the case instead of stalling the test run.

Command line, for reproducing and minimising by hand (run from the repository root with
``PYTHONPATH=$PWD``)::

    python -m tests.fuzz_gen show generated 123        # print the files of one case
    python -m tests.fuzz_gen run mutated 0 2000        # run a range, print failures by class
    python -m tests.fuzz_gen check some.arch           # the oracle on one file
"""

from __future__ import annotations

import contextlib
import io
import json
import keyword
import multiprocessing
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 20240611

# The files a case tree holds: shipped specs, the example, the broken corpus (for its imports).
TREE_DIRS = {"specs": ROOT / "specs", "examples": ROOT / "examples", "broken": ROOT / "tests" / "broken"}
SPEC_FILES = sorted(f"specs/{p.name}" for p in (ROOT / "specs").glob("*.arch")) + sorted(
    f"specs/std/{p.name}" for p in (ROOT / "specs" / "std").glob("*.arch")
)
SEED_FILES = [*SPEC_FILES, "examples/exotic.arch"]  # what the mutator starts from

MAIN = "specs/fz_main.arch"  # a generated program lives next to the shipped specs, so relative
OTHER = "specs/fz_other.arch"  # imports of "std/blocks.arch" or "cifar_resnet.arch" resolve

# -- name pools -----------------------------------------------------------------------------

LANG_KEYWORDS = ["import", "block", "network", "input", "meta", "true", "false"]
PY_KEYWORDS = [k for k in keyword.kwlist if k not in LANG_KEYWORDS] + ["match", "case", "_", "type"]
MODULE_ATTRS = [
    "forward", "training", "train", "eval", "to", "cuda", "cpu", "parameters", "modules", "children",
    "state_dict", "load_state_dict", "named_modules", "apply", "zero_grad", "half", "float", "double",
    "register_buffer", "add_module", "extra_repr", "requires_grad_", "__init__", "__call__", "__class__",
    "__dict__", "_modules", "_parameters", "_buffers", "dump_patches", "call_super_init", "get_submodule",
    "register_module", "bfloat16", "share_memory", "_version", "T_destination", "self", "super", "nn", "torch",
]  # fmt: skip
OP_NAMES = [
    "conv", "batchnorm", "relu", "gelu", "silu", "sigmoid", "leaky_relu", "maxpool", "avgpool",
    "global_avgpool", "flatten", "linear", "dropout", "identity",
]  # fmt: skip
SHORTCUTS = ["identity", "zero_pad", "projection", "projection_all", "avgpool_projection", "none"]
ACTIVATIONS = ["relu", "gelu", "silu", "sigmoid", "leaky_relu"]
PLAIN_NAMES = [
    "a", "b", "c", "n", "k", "w", "h", "x1", "y", "planes", "width", "depth", "conv1", "conv2", "bn1", "bn2",
    "stem", "head", "fc", "pool", "layer1", "layer2", "drop", "act", "out", "_tmp", "Z9", "blk", "unit",
]  # fmt: skip
EXOTIC_NAMES = [*PY_KEYWORDS, *MODULE_ATTRS, *OP_NAMES, *SHORTCUTS, "stage", "residual", "x", "x224", "xx"]
OP_PARAMS = {
    "conv": ["out", "k", "s", "p", "d", "groups", "bias", "in_channels"],
    "batchnorm": ["eps", "momentum", "affine"],
    "leaky_relu": ["slope"],
    "maxpool": ["k", "s", "p", "ceil"],
    "avgpool": ["k", "s", "p", "ceil", "count_include_pad"],
    "linear": ["out", "bias", "in_features"],
    "dropout": ["p"],
}
OP_ALIASES = {
    ("conv", "out"): ["out", "out_channels"],
    ("linear", "out"): ["out", "out_features"],
    **{(op, "k"): ["k", "kernel", "kernel_size"] for op in ("conv", "maxpool", "avgpool")},
    **{(op, "s"): ["s", "stride"] for op in ("conv", "maxpool", "avgpool")},
    **{(op, "p"): ["p", "padding"] for op in ("conv", "maxpool", "avgpool")},
    ("conv", "d"): ["d", "dilation"],
    ("leaky_relu", "slope"): ["slope", "negative_slope"],
    ("maxpool", "ceil"): ["ceil", "ceil_mode"],
    ("avgpool", "ceil"): ["ceil", "ceil_mode"],
}
HUGE = "1" + "0" * 30  # 10**30
MEGA = "9" * 5000  # more digits than int() converts by default


# -- cases ----------------------------------------------------------------------------------


@dataclass
class Case:
    """One fuzz input: files to place in the case tree, which of them to check, and how."""

    kind: str  # generated | mutated | regression
    index: int
    label: str
    files: dict[str, bytes]  # paths relative to the case tree root
    targets: list[str]  # the files resdsl.check is run on
    overrides: dict[str, str] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    cli: bool = False  # also run `resdsl check` through resdsl.tools.cli.main
    cli_json: bool = False
    must_stay_clean: str = ""  # why the targets must check without errors (a layout-only change of a clean spec)

    @property
    def name(self) -> str:
        return f"{self.kind}#{self.index}"


def case_rng(seed: int, kind: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{index}")


def make_case(kind: str, index: int, seed: int = DEFAULT_SEED) -> Case:
    if kind == "generated":
        return generated_case(index, seed)
    if kind == "mutated":
        return mutated_case(index, seed)
    raise ValueError(kind)


def cases(kind: str, start: int, count: int, seed: int = DEFAULT_SEED) -> Iterator[Case]:
    for i in range(start, start + count):
        yield make_case(kind, i, seed)


# -- generated programs ---------------------------------------------------------------------


@dataclass
class BlockInfo:
    """What the generator knows about a block it wrote (or a shipped one): how to call it well."""

    name: str
    params: list[str]  # first is the width parameter
    has_stride: bool
    has_shortcut: bool
    expansion: int  # output channels = width * expansion
    changes_shape: bool  # may change shape without a shortcut parameter (then only safe if widths match)


STD_BLOCKS = [
    BlockInfo("basic", ["planes", "stride", "shortcut"], True, True, 1, False),
    BlockInfo(
        "bottleneck",
        ["planes", "stride", "groups", "width_per_group", "expansion", "shortcut"],
        True,
        True,
        4,
        False,
    ),
    BlockInfo("preact_basic", ["planes", "stride", "shortcut"], True, True, 1, False),
    BlockInfo("preact_bottleneck", ["planes", "stride", "expansion", "shortcut"], True, True, 4, False),
]


class ProgramGen:
    """Writes one random program. ``bad`` is the chance that a choice point picks an invalid form."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng
        self.bad = 0.0 if rng.random() < 0.45 else rng.choice([0.01, 0.03, 0.06, 0.12, 0.25, 0.5])
        self.used: set[str] = set()
        self.blocks: list[BlockInfo] = []
        self.networks: list[tuple[str, list[str]]] = []
        self.notes: list[str] = []

    # helpers
    def oops(self, scale: float = 1.0) -> bool:
        return self.r.random() < self.bad * scale

    def pick(self, seq: Any) -> Any:
        return self.r.choice(list(seq))

    def fresh(self, base: str | None = None, exotic: float = 0.12) -> str:
        """A name not used yet (or, when things go wrong on purpose, one that is)."""
        r = self.r
        if self.used and self.oops(0.3):
            return self.pick(sorted(self.used))  # a duplicate
        if self.oops(0.15):
            return self.pick(LANG_KEYWORDS)  # a syntax error
        for _ in range(50):
            if r.random() < exotic:
                name = self.pick(EXOTIC_NAMES)
            else:
                name = base or self.pick(PLAIN_NAMES)
                if name in self.used or r.random() < 0.3:
                    name = f"{name}{r.randrange(100)}"
            if name not in self.used and name not in LANG_KEYWORDS:
                self.used.add(name)
                return name
        name = f"n{len(self.used)}_{r.randrange(10**6)}"
        self.used.add(name)
        return name

    # expressions
    def same(self, x: str, depth: int = 1) -> str:
        """An expression equal to whole number ``x`` (text) for any value x >= 0."""
        r = self.r
        if depth <= 0 or r.random() < 0.4:
            return x
        inner = self.same(x, depth - 1)
        y = inner if re.fullmatch(r"\w+", inner) else f"({inner})"
        m = r.choice([1, 2, 3, 4, 7, 64])
        return self.pick(
            [
                f"{y} * {m} / {m}",
                f"({y} * {m}) // {m}",
                f"{y} + 0",
                f"0 + {y}",
                f"({y} + {m}) - {m}",
                f"{y} * 1",
                f"[0, {y}, 2][1]",
                f"[{y}][0]",
                f"[{y}, 1][-2]",
                f"-(-{y})",
                f"-(0 - {y})",
                f"{y} % ({y} + 1)",
                f"({y})",
                f"{y} // 1",
                f"{y} / 1",
            ]
        )

    def num(self, value: int, depth: int = 1) -> str:
        """An expression for the whole number ``value``, or now and then a broken one."""
        r = self.r
        if self.oops(0.5):
            return self.bad_expr(str(value))
        if depth <= 0 or r.random() < 0.35:
            return str(value)
        a = r.randrange(0, max(value, 1) + 1)
        forms = [
            f"{a} + {value - a}",
            f"{value + a} - {a}",
            f"{value * 3} / 3",
            f"({value * 2 + 1}) // 2",
            f"{value} * 1",
            f"[{a}, {value}][1]",
            f"-{-value}" if value < 0 else f"-(-{value})",
            f"{value} % {value + 7}" if value >= 0 else str(value),
        ]
        return self.same(self.pick(forms), depth - 1)

    def bad_expr(self, x: str) -> str:
        return self.pick(
            [
                f"{x} / 0",
                f"{x} // (1 - 1)",
                f"{x} % 0",
                f"{x} / 3",
                f"{x} * 2.5",
                f"{x} + 0.5",
                f'"{x}"',
                f'"a" * {x}',
                f"true + {x}",
                f"[{x}]",
                f"[{x}][3]",
                f"[{x}][-2]",
                f"{x}[0]",
                "-true",
                '-"s"',
                f"[1] + {x}",
                "undefined_name",
                HUGE,
                f"{HUGE} * {HUGE}",
                f"-{HUGE}",
                MEGA,
                "1e400",
                "1e400 - 1e400",
                f"{MEGA[:400]} * 0.5",
                "0",
                "-1",
                f"{x} x",
                f"({x}",
                f"{x})",
                f"{x} +",
                f"{x} ** 2",
                "projection",
                "relu",
                "relu()",
                "basic(8)",
                "residual(identity)",
                "stage(basic(8))",
                "conv",
                "'x'",
                "",
            ]
        )

    def string(self) -> str:
        if self.oops(2):  # escapes that Python's unicode_escape refuses or reads oddly
            return self.pick(['"\\x"', '"\\x4"', '"\\u12"', '"\\N{nope}"', '"\\0"', '"\\777"', '"\\', '"a\nb"'])
        return self.pick(
            [
                '"ImageNet"',
                '"CIFAR-10"',
                '""',
                '"a \\"quoted\\" word"',
                '"tab\\tnewline\\n"',
                '"unicode é ∑ 🙂"',
                '"\\U0001F600"',
                '"\\N{BULLET}"',
                '"\\\\"',
                '"' + "s" * 3000 + '"',
            ]
        )

    def value(self) -> str:
        """Any meta-worthy value."""
        r = self.r
        kind = r.randrange(7)
        if kind == 0:
            return self.num(r.randrange(0, 1000))
        if kind == 1:
            return f"{r.uniform(0, 2):.4f}" if r.random() < 0.8 else self.pick(["1e-5", "1E5", ".5", "5.", "1e400"])
        if kind == 2:
            return self.string()
        if kind == 3:
            return self.pick(["true", "false"])
        if kind == 4:
            items = [self.value() for _ in range(r.randrange(0, 4))]
            return "[" + ", ".join(items) + ("," if items and r.random() < 0.2 else "") + "]"
        if kind == 5:
            return self.pick(SHORTCUTS)
        return self.num(r.randrange(1, 100))

    # op calls
    def op_call(self, op: str, args: list[tuple[str, str]]) -> str:
        """``op(args)`` with positional, keyword and alias spellings mixed; args are (parameter, text)."""
        r = self.r
        order = OP_PARAMS.get(op, [])
        parts: list[str] = []
        positional = r.random() < 0.6
        for i, (name, val) in enumerate(args):
            if positional and i < len(order) and order[i] == name and r.random() < 0.8:
                parts.append(val)
                continue
            positional = False
            parts.append(f"{self.pick(OP_ALIASES.get((op, name), [name]))}={val}")
        if self.oops(0.3):
            parts.append(self.pick(["k=3", "bogus=1", "7", "s=1, stride=1", "p=-1", "groups=0", "bias=1", "8"]))
        if self.oops(0.2) and parts:
            del parts[r.randrange(len(parts))]
        if self.oops(0.1) and len(parts) > 1:
            parts.reverse()  # a positional argument after a keyword one, perhaps
        if not parts and r.random() < 0.3 and op not in ("conv", "linear", "maxpool", "avgpool"):
            return op  # a bare op
        trailing = "," if parts and r.random() < 0.1 else ""
        return f"{op}({', '.join(parts)}{trailing})"

    def spatial_ops(self, ch: str, depthwise_ok: bool) -> list[str]:
        """Layers that keep a C x H x W shape with C = ch (text), for block and network bodies."""
        r = self.r
        out = []
        for _ in range(r.randrange(1, 5)):
            kind = r.randrange(10)
            if kind < 3:
                k = r.choice([1, 3, 5, 7])
                d = r.choice([1, 1, 1, 2])
                args: list[tuple[str, str]] = [("out", self.same(ch)), ("k", self.num(k))]
                if d != 1 or r.random() < 0.3:
                    args.append(("s", "1"))
                args.append(("p", self.num(d * (k // 2))))
                if d != 1:
                    args.append(("d", str(d)))
                if depthwise_ok and r.random() < 0.25:
                    args.append(("groups", ch))
                if r.random() < 0.15:
                    args.append(("bias", self.pick(["true", "false"])))
                out.append(f"{self.fresh('conv')} = {self.op_call('conv', args)}")
            elif kind < 5:
                args = []
                if r.random() < 0.3:
                    args.append(("eps", self.pick(["1e-5", "0.001", "1e-3", "0"])))
                if r.random() < 0.2:
                    args.append(("momentum", self.pick(["0.1", "0.01", "1"])))
                if r.random() < 0.1:
                    args.append(("affine", self.pick(["true", "false"])))
                stmt = self.op_call("batchnorm", args)
                out.append(f"{self.fresh('bn')} = {stmt}" if r.random() < 0.7 else stmt)
            elif kind < 7:
                act = self.pick(ACTIVATIONS)
                stmt = self.op_call(act, [("slope", self.pick(["0.1", "0.2", "1e-2"]))] if act == "leaky_relu" else [])
                out.append(f"{self.fresh(act)} = {stmt}" if r.random() < 0.3 else stmt)
            elif kind == 7:
                op = self.pick(["maxpool", "avgpool"])
                args = [("k", "3"), ("s", "1"), ("p", "1")]
                if r.random() < 0.2:
                    args.append(("ceil", self.pick(["true", "false"])))
                out.append(f"{self.fresh('pool')} = {self.op_call(op, args)}")
            elif kind == 8:
                out.append(self.pick(["identity", "identity()", f"{self.fresh('skip')} = identity()"]))
            else:
                out.append(f"{self.fresh('drop')} = {self.op_call('dropout', [('p', self.pick(['0.1', '0.5', '0']))])}")
        return out

    def any_op(self) -> str:
        """Any op with any arguments: for the invalid share."""
        r = self.r
        op = self.pick(OP_NAMES)
        params = OP_PARAMS.get(op, [])
        args: list[tuple[str, str]] = []
        for p in params:
            if r.random() < 0.5:
                args.append((p, self.pick([self.num(r.randrange(0, 9)), self.value(), "true", "2.5", HUGE, "-3"])))
        return self.op_call(op, args)

    # blocks
    def block(self) -> str:
        r = self.r
        name = self.fresh("blk", exotic=0.02)
        width = self.pick(["c", "planes", "width", "ch"])
        params = [width]
        header = [width]
        has_stride = r.random() < 0.8
        has_shortcut = r.random() < 0.8
        expansion = r.choice([1, 1, 1, 2, 4])
        default_kind = self.pick(["projection", "projection_all", "avgpool_projection"])
        if has_stride:
            params.append("stride")
            header.append(f"stride = {self.num(1)}")
        if has_shortcut:
            params.append("shortcut")
            header.append(f"shortcut = {default_kind}")
        if r.random() < 0.3:
            params.append("e")
            header.append(f"e = {expansion}")
        if r.random() < 0.2:
            extra = self.fresh("extra")
            params.append(extra)
            header.append(f"{extra} = {width} * 2")  # a default using an earlier parameter
        if self.oops(0.3):
            header.append(self.pick(["stride = 1", "1 = x", "q = ", f"{width}", "z = undefined + 1"]))
        body: list[str] = []
        if r.random() < 0.3:
            body.append(f"mid = {self.same(width)}")
        first = self.fresh("conv")
        stride = "stride" if has_stride else "1"
        kind = r.randrange(4)
        out_ch = width if expansion == 1 else f"{width} * {'e' if 'e' in params else expansion}"
        pre = kind == 2
        if pre:  # pre-activation: BN-ReLU before the conv, the projection branches off after them
            body.append(f"{self.fresh('bn')} = batchnorm()")
            act = self.fresh("act")
            body.append(f"{act} = relu()")
        body.append(f"{first} = conv({self.same(width)}, k=3, s={stride}, p=1)")
        body.extend(self.spatial_ops(width, True))
        body.append(f"{self.fresh('conv')} = conv({self.same(out_ch)}, k={self.pick(['1', '3, p=1'])})")
        if kind == 3 and self.blocks:  # nest an earlier block that keeps the width
            inner = self.pick(self.blocks)
            if inner.expansion == 1:
                body.append(f"{self.fresh('inner')} = {inner.name}({self.same(out_ch)})")
        if not pre:
            body.append(self.pick(["batchnorm()", f"{self.fresh('bn')} = batchnorm()"]))
        kind_text = "shortcut" if has_shortcut else default_kind
        if self.oops(0.5):
            kind_text = self.pick([*SHORTCUTS, "shortcut", "zero_pad", "3", '"projection"'])
        res_args = [kind_text]
        if pre:
            res_args.append(f"project_from={act if not self.oops(0.5) else self.pick(['nope', first, '3'])}")
            res_args.append(self.pick(["norm=false", "norm=true"]))
        if r.random() < 0.15:
            res_args.append(f'name="{self.pick(["downsample", "shortcut", "proj", "down sample", ""])}"')
        body.append(f"residual({', '.join(res_args)})")
        if not pre:
            body.append(self.pick(ACTIVATIONS[:4]))
        if r.random() < 0.2:  # a second unit in the same block: shape-keeping, identity shortcut
            body.extend(self.spatial_ops(out_ch, False))
            body.append("residual(identity)")
        if self.oops():
            body.insert(r.randrange(len(body) + 1), self.pick(["input 3 x 8 x 8", "meta { a = 1 }", "64 * 2"]))
        if self.oops():
            body.insert(r.randrange(len(body) + 1), self.any_op())
        self.blocks.append(BlockInfo(name, params, has_stride, has_shortcut, expansion, False))
        return f"block {name}({', '.join(header)}) {{\n" + "".join(f"    {s}\n" for s in body) + "}\n"

    def block_use(
        self, info: BlockInfo, width: int, stride: int, in_ch: int, as_stage: bool, repeats: list[str]
    ) -> str:
        """``info(width, ...)`` or a stage of it, safe for an input of in_ch channels."""
        r = self.r
        args = [self.num(width)]
        out = width * info.expansion
        settings: list[str] = []
        if info.name == "bottleneck" and r.random() < 0.3:
            g = r.choice([1, 2, 4])
            args.append(f"groups={g}")
            args.append(f"width_per_group={r.choice([16, 32, 64])}")
        kind = "projection"
        if out == in_ch and stride == 1:
            kind = self.pick(SHORTCUTS)
        elif out >= in_ch:
            kind = self.pick(["projection", "projection_all", "zero_pad", "avgpool_projection", "none"])
        else:
            kind = self.pick(["projection", "projection_all", "none"])
        if self.oops():
            kind = self.pick(SHORTCUTS)
            stride = r.choice([1, 2, 3, 0, 7])
        if not as_stage:
            if info.has_stride and (stride != 1 or r.random() < 0.3):
                args.append(f"stride={self.num(stride)}")
            if info.has_shortcut:
                args.append(f"shortcut={kind}")
            return f"{info.name}({', '.join(args)})"
        repeat = self.num(r.choice([1, 1, 2, 2, 3, 4]))
        settings.append(f"repeat={repeat}" if r.random() < 0.6 or not repeats else f"repeat={self.pick(repeats)}")
        if info.has_stride and (stride != 1 or r.random() < 0.3):
            settings.append(f"stride={self.num(stride)}")
        if info.has_shortcut and (kind != "projection" or r.random() < 0.3):
            settings.append(f"shortcut={kind}")
        if self.oops(0.5):
            settings.append(self.pick(["repeat=0", "stride=2", "shortcut=identity", "groups=2", f"repeat={HUGE}"]))
        return f"stage({info.name}({', '.join(args)}), {', '.join(settings)})"

    def kind_for(self, main: tuple[int, int], branch: tuple[int, int]) -> str:
        """A shortcut kind that can add a (channels, size) branch to a main branch (or any, by mistake)."""
        if main == branch or self.oops():
            return self.pick(SHORTCUTS)
        kinds = ["projection", "projection_all", "avgpool_projection", "none"]
        return self.pick([*kinds, "zero_pad"] if main[0] >= branch[0] else kinds)

    def network(self, available: list[BlockInfo]) -> str:
        r = self.r
        name = self.fresh("net", exotic=0.02)
        params: list[str] = []
        header: list[str] = []
        num_classes = r.choice([10, 100, 1000, 1])
        if r.random() < 0.7:
            params.append("num_classes")
            header.append(f"num_classes = {self.num(num_classes)}")
        if r.random() < 0.5:
            params.append("n_rep")
            header.append(f"n_rep = {self.num(r.choice([1, 2, 3]))}")
        if r.random() < 0.3:
            params.append("depths")
            header.append(f"depths = [{', '.join(str(r.randrange(1, 4)) for _ in range(4))}]")
        if self.oops(0.3):
            header.append(self.pick(["missing", "n_rep = 0", f"big = {HUGE}", "q = depths[9]"]))
            params.append("?")
        body: list[str] = []
        vector = r.random() < 0.12
        if vector:  # an MLP on a feature vector
            feats = r.choice([8, 16, 100])
            body.append(f"input {feats}")
            for _ in range(r.randrange(1, 4)):
                body.append(f"{self.fresh('fc')} = linear({self.num(feats)})")
                body.append(self.pick(ACTIVATIONS))
                if r.random() < 0.3:
                    body.append(f"{self.fresh('drop')} = dropout({self.pick(['0.5', '0.1'])})")
                if r.random() < 0.3:
                    body.append("residual(identity)")
            body.append(f"{self.fresh('fc')} = linear({'num_classes' if 'num_classes' in params else num_classes})")
        else:
            c, h = r.choice([1, 3, 3, 3, 4]), r.choice([8, 16, 32, 32, 64, 224])
            shape = self.pick([f"{c} x {h} x {h}", f"{c}x{h}x{h}", f"{c} x{h}\tx {h}"])
            if self.oops(0.5):
                shape = self.pick(
                    [
                        f"{c} x {h}",
                        f"0 x {h} x {h}",
                        f"{c} x 0 x 1",
                        f"{c} x {HUGE} x {h}",
                        f"{c} x {h} x {h} x 2",
                        f"{c} x\n{h} x {h}",
                        f"{c} * {h} * {h}",
                        f"{MEGA} x 1 x 1",
                        "",
                    ]
                )
            if r.random() < 0.9 or self.bad == 0:
                body.append(f"input {shape}")
            if self.oops(0.2):
                body.append(f"input {shape}")
            if r.random() < 0.5:
                entries = [f"{self.pick(['mean', 'std', 'dataset', 'note', 'x', 'input'])} = {self.value()}"]
                entries += [f"{self.fresh('m')} = {self.value()}" for _ in range(r.randrange(3))]
                body.append("meta { " + "  ".join(entries) + " }")
            width = r.choice([4, 8, 16])
            if r.random() < 0.3:
                body.append(f"wide = {self.num(width)}")
            body.append(f"{self.fresh('conv')} = conv({self.num(width)}, k=3, p=1)")
            body.append(f"{self.fresh('bn')} = batchnorm()")
            body.append("relu")
            cur_ch, cur_h = width, h
            branch = (c, h)  # where the next residual in the network body adds from
            if h >= 32 and r.random() < 0.5:
                body.append(f"{self.fresh('maxpool')} = maxpool(k=3, s=2, p=1)")
                cur_h = (h + 1) // 2
            for i in range(r.randrange(0, 4)):
                choice = r.randrange(6)
                stride = 2 if i and cur_h >= 4 and r.random() < 0.6 else 1
                w = width * 2**i
                if choice < 3 and available:
                    info = self.pick(available)
                    stride = stride if info.has_stride else 1
                    repeats = (["n_rep"] if "n_rep" in params else []) + (
                        [f"depths[{i}]", f"depths[{i - 4}]"] if "depths" in params else []
                    )
                    use = self.block_use(info, w, stride, cur_ch, choice < 2, repeats)
                    body.append(f"{self.fresh('layer')} = {use}" if r.random() < 0.9 else use)
                    cur_ch, cur_h = w * info.expansion, -(-cur_h // stride)
                elif choice == 3:
                    body.extend(self.spatial_ops(str(cur_ch), False))
                    body.append(f"residual({self.kind_for((cur_ch, cur_h), branch)})")
                    branch = (cur_ch, cur_h)
                elif choice == 4:  # a unit written in the network body
                    body.append(f"{self.fresh('conv')} = conv({self.num(w)}, k=3, s={stride}, p=1)")
                    body.append("batchnorm()")
                    cur_ch, cur_h = w, -(-cur_h // stride)
                    body.append(f"residual({self.kind_for((cur_ch, cur_h), branch)})")
                    branch = (cur_ch, cur_h)
                else:
                    body.extend(self.spatial_ops(str(cur_ch), False))
            head = r.randrange(4)
            if head == 0:
                body.append(f"{self.fresh('avgpool')} = global_avgpool()")
            elif head == 1:
                body.append("flatten")
            elif head == 2 and cur_h >= 2:
                body.append(f"{self.fresh('pool')} = avgpool(k={cur_h})")
            if r.random() < 0.3:
                body.append(f"{self.fresh('drop')} = dropout()")
            classes = "num_classes" if "num_classes" in params else self.num(num_classes)
            body.append(f"{self.fresh('fc')} = {self.op_call('linear', [('out', classes)])}")
        if self.oops():
            body.insert(r.randrange(len(body) + 1), self.any_op())
        if self.oops():
            misfit = ["conv(8)", "linear(4)", "maxpool(k=99)", "64 * 2", "conv(9, groups=2)", "conv(8, in_channels=5)"]
            body.insert(
                r.randrange(len(body) + 1), self.pick([*misfit, "linear(4, in_features=3)", "conv(6, k=3, s=2)"])
            )
        if self.oops(0.5):
            body.append(f"{self.pick(['x', 'fc', 'relu'])} = {self.pick(['1', 'relu', 'conv(8)'])}")
        self.networks.append((name, params))
        return f"network {name}({', '.join(header)}) {{\n" + "".join(f"    {s}\n" for s in body) + "}\n"

    def alias(self) -> str:
        r = self.r
        name = self.fresh("alias", exotic=0.02)
        if self.networks and not self.oops():
            target, params = self.pick(self.networks)
            args = []
            for p in params:
                if p in ("num_classes", "n_rep") and r.random() < 0.5:
                    args.append(f"{p}={self.num(r.choice([1, 2, 3, 10]))}")
            if self.oops():
                args.append(self.pick(["bogus=1", "5", f"n_rep={HUGE}", "num_classes=0", "depths=[1]"]))
        else:
            target = self.pick(["missing_net", *(n for n, _ in self.networks), name, "relu", "basic"])
            args = [self.pick(["", "n=3", "1, 2"])]
        self.networks.append((name, []))
        return f"network {name} = {target}({', '.join(a for a in args if a)})\n"

    # the deep and the huge
    def deep(self) -> tuple[str, str]:
        """(kind, text of definitions) for one stress construct."""
        r = self.r
        kind = r.choice(
            ["sum", "parens", "neg", "lists", "index", "calls", "chain", "doubling", "wide", "repeat", "digits",
             "stmts", "defs", "longline", "strings"]
        )  # fmt: skip
        size = r.choice(
            [10, 50, 200, 400, 1000, 3000, 20000] if kind in ("sum", "parens") else [10, 50, 200, 400, 1000, 3000]
        )
        net_head = "network deep_net() {\n    input 3 x 8 x 8\n"
        if kind == "sum":
            expr = "+".join(["1"] * size)
            where = r.randrange(3)
            if where == 0:
                return kind, f"network deep_net(n = {expr}) {{\n    input 3 x 8 x 8\n    conv(8)\n}}\n"
            if where == 1:
                return kind, f"{net_head}    v = {expr}\n    relu\n}}\n"
            return kind, f"{net_head}    c = conv({expr})\n}}\n"
        if kind == "parens":
            return kind, f"{net_head}    c = conv({'(' * size}8{')' * size})\n}}\n"
        if kind == "neg":
            return kind, f"{net_head}    v = {'-' * size}1\n    relu\n}}\n"
        if kind == "lists":
            return kind, f"{net_head}    v = {'[' * size}1{']' * size}\n    relu\n}}\n"
        if kind == "index":
            return kind, f"{net_head}    v = {'[' * size}1{']' * size}{'[0]' * size}\n    relu\n}}\n"
        if kind == "calls":
            return kind, f"{net_head}    c = {'conv(' * size}8{')' * size}\n}}\n"
        if kind in ("chain", "doubling", "wide"):
            depth = r.choice([3, 10, 30, 120, 400, 1500]) if kind != "doubling" else r.choice([3, 6, 10, 14, 24, 40])
            uses = 2 if kind == "doubling" else 1
            lines = ["block chain0(c) {\n    conv(c, k=3, p=1)\n    relu\n}\n"]
            for i in range(1, depth):
                body = "".join(f"    u{j} = chain{i - 1}(c)\n" for j in range(uses))
                if kind == "wide":
                    body += "    residual(identity)\n"
                lines.append(f"block chain{i}(c) {{\n{body}}}\n")
            lines.append(f"{net_head}    top = chain{depth - 1}(4)\n}}\n")
            self.notes.append(f"{kind} depth {depth}")
            return kind, "".join(lines)
        if kind == "repeat":
            n = self.pick(["3", "200", HUGE, "1000000000", "2147483648", "-1", "0"])
            return kind, f'import "std/blocks.arch"\n{net_head}    conv(4)\n    s = stage(basic(4), repeat={n})\n}}\n'
        if kind == "digits":
            lit = self.pick([HUGE, MEGA, "9" * 4300, "9" * 4301, "1" * 400, f"{HUGE}.5", "1e400", "1" * 400 + ".5"])
            where = self.pick(
                [
                    f"c = conv({lit})",
                    f"c = conv(8, k={lit})",
                    f"c = conv(8, s={lit})",
                    f"c = conv(8, p={lit})",
                    f"c = conv(8, groups={lit})",
                    f"c = linear({lit})",
                    f"c = dropout({lit})",
                    f"c = leaky_relu({lit})",
                    f"c = batchnorm(eps={lit})",
                    f"c = maxpool(k={lit})",
                    f"v = [1, 2][{lit}]",
                    f"v = {lit} * 0.5",
                    f"v = {lit} / 3",
                    f"v = {lit} // 0.5",
                    f"v = {lit} % 1e-300",
                    f"v = 1e300 * {lit}",
                ]
            )
            if r.random() < 0.3:
                return kind, f"network deep_net() {{\n    input 3 x {lit} x 8\n    conv(8)\n    relu\n}}\n"
            return kind, f"{net_head}    {where}\n    relu\n}}\n"
        if kind == "stmts":
            return kind, net_head + "    relu\n" * size + "}\n"
        if kind == "defs":
            defs = "".join(f"block many{i}() {{\n    relu\n}}\n" for i in range(size))
            return kind, defs + f"{net_head}    many0()\n}}\n"
        if kind == "longline":
            return kind, f"{net_head}    v = {' + '.join(['1'] * size)}  " + "# " + "x" * size + "\n    relu\n}\n"
        return kind, f"{net_head}    meta {{ s = {self.string()} }}\n    relu\n}}\n"

    # the whole program
    def program(self, other: bool) -> tuple[str, list[str]]:
        """The main file's text, and the names of imports it made of other generated files."""
        r = self.r
        imports: list[str] = []
        available: list[BlockInfo] = []
        if r.random() < 0.6:
            imports.append("std/blocks.arch")
            available += STD_BLOCKS
            self.used.update(b.name for b in STD_BLOCKS)
        if r.random() < 0.15:
            imports.append(self.pick(["cifar_resnet.arch", "std/imagenet.arch", "resnet20.arch", "std/blocks.arch"]))
        if other:
            imports.append("fz_other.arch")
        if self.oops(0.5) or r.random() < 0.03:
            imports.append(
                self.pick(
                    [
                        "missing.arch",
                        "std/missing.arch",
                        "fz_main.arch",  # itself: a cycle
                        "",
                        "std",
                        "../specs/std/blocks.arch",
                        "/nonexistent/dir/x.arch",
                        "a" * 300 + ".arch",
                        "x/" * 40 + "y.arch",
                        "\\x",
                        "\\0.arch",
                        "std\\\\blocks.arch",
                        "é.arch",
                    ]
                )
            )
        parts = [f'import "{i}"\n' for i in imports]
        if r.random() < 0.2:
            parts.insert(0, "# a generated program\n")
        defs: list[str] = []
        for _ in range(r.choice([0, 1, 1, 2, 3])):
            defs.append(self.block())
        available += self.blocks
        for _ in range(r.randrange(1, 3)):
            defs.append(self.network(available))
        for _ in range(r.choice([0, 0, 1, 2])):
            defs.append(self.alias())
        if r.random() < 0.3:  # imports may also come after definitions
            pos = r.randrange(len(defs) + 1)
            defs[pos:pos] = parts
            parts = []
        if (self.bad and r.random() < 0.2) or r.random() < 0.04:
            kind, text = self.deep()
            if not self.notes:
                self.notes.append(kind)
            defs.append(text)
        text = "".join(parts) + "\n".join(defs)
        return text, imports


def other_file(rng: random.Random) -> tuple[str, ProgramGen]:
    """A second generated file for the main one to import: blocks, maybe a cycle or a clash."""
    g = ProgramGen(rng)
    parts = []
    if rng.random() < 0.5:
        parts.append('import "std/blocks.arch"\n')
        g.used.update(b.name for b in STD_BLOCKS)
    if rng.random() < 0.12:
        parts.append('import "fz_main.arch"\n')  # a cycle through two files
    for _ in range(rng.randrange(1, 3)):
        parts.append(g.block())
    if rng.random() < 0.2:
        parts.append(g.network(g.blocks))
    if rng.random() < 0.1:
        parts.append(rng.choice(["block basic(c) {\n    relu\n}\n", "network net() {\n", "\udcff"]))
    return "".join(parts), g


def generated_case(index: int, seed: int = DEFAULT_SEED) -> Case:
    r = case_rng(seed, "generated", index)
    g = ProgramGen(r)
    with_other = r.random() < 0.25
    other_text = ""
    if with_other:  # the other file's blocks (and names) are visible in the main file
        other_text, og = other_file(random.Random(r.random()))
        g.used |= og.used
        g.blocks += og.blocks
    text, _imports = g.program(with_other)
    files = {MAIN: text.encode("utf-8", "surrogateescape")}
    if with_other:
        files[OTHER] = other_text.encode("utf-8", "surrogateescape")
    label = f"generated bad={g.bad}" + (f" {' '.join(g.notes)}" if g.notes else "")
    if r.random() < 0.15:  # a syntax-level mutation of the generated text
        files[MAIN], what = mutate(r, files[MAIN], r.choice(["tokens", "truncate", "bytes", "layout"]))
        label += f" + {what}"
    if r.random() < 0.006:  # a long chain of imports
        depth = r.choice([5, 50, 300])
        files[MAIN] = b'import "fz_chain0.arch"\n' + files[MAIN]
        for i in range(depth):
            nxt = f'import "fz_chain{i + 1}.arch"\n' if i + 1 < depth else ""
            files[f"specs/fz_chain{i}.arch"] = f"{nxt}block imported{i}(c) {{\n    relu\n}}\n".encode()
        label += f" import chain {depth}"
    targets = [MAIN] + ([OTHER] if with_other and r.random() < 0.3 else [])
    case = Case("generated", index, label, files, targets)
    if g.networks and r.random() < 0.08:
        keys = sorted({p for _, ps in g.networks for p in ps if p != "?"} | {"nope"})
        for _ in range(r.randrange(1, 3)):
            case.overrides[r.choice(keys)] = r.choice(
                ["3", "0", "-1", HUGE, "[1, 2]", "projection", "true", "1/0", "((", "2.5", "x", "[1,", '"s"', "1 1"]
            )
    if r.random() < 0.05:
        case.input_shape = r.choice([(3, 16, 16), (16,), (3, 1, 1), (1, 2, 2), (3, 10**20, 4), (3, 7, 9)])
    case.cli = r.random() < 0.08
    case.cli_json = case.cli and r.random() < 0.5
    return case


# -- mutations --------------------------------------------------------------------------------

TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n\f\v]+)|(?P<comment>\#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"?)
      |(?P<float>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?)|(?P<int>\d+)
      |(?P<name>[A-Za-z_]\w*)|(?P<op>//|[-+*/%=(),{}\[\]])|(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
NUMBER_SUBS = ["0", "-1", "-{t}", HUGE, MEGA, "1e400", "2.5", "00", "0x10", "{t}.", "-0", "1_000"]
NAME_SUBS = [*LANG_KEYWORDS, *PY_KEYWORDS[:8], *MODULE_ATTRS[:8], *OP_NAMES, *SHORTCUTS, "stage", "residual", "x"]
PUNCT = ["(", ")", "{", "}", "[", "]", "=", ",", "+", "-", "*", "/", "//", "%", "x", '"', "#", "\\", "'", ";", ":"]
STRING_SUBS = ['""', '"\\x"', '"\\u12"', '"\\N{nope}"', '"\\0"', '"', '"unterminated', '"' + "a" * 300 + '.arch"']
BAD_UTF8 = [
    b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80",
]  # fmt: skip
ODD_CHARS = [
    "é", "∑", "\u00a0", "\u200b", "\u2028", "\u2029", "\x85", "（", "🙂", "\x00", "\x0c", "\x0b", "\x1c", "\ufeff",
    "\r", "\t", "\x1b[31m", "ǅ", "ﬁ", "𝟘", "٣",
]  # fmt: skip
# Layout changes that keep a spec's meaning: the grammar skips spaces, tabs, form feeds and line
# ends, and resdsl reads files with universal newlines. A clean spec must stay clean under them.
PRESERVING = {"crlf", "cr", "bom", "tabs", "mixed_tabs", "formfeed", "no_final_newline", "trailing_ws"}
GROUPS = ["bytes", "tokens", "numbers", "names", "utf8", "truncate", "layout", "lines", "mixed"]


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.lastgroup or "other", m.start(), m.end()) for m in TOKEN.finditer(text)]


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def mutate(r: random.Random, data: bytes, group: str) -> tuple[bytes, str]:
    """One mutation of ``group`` applied 1-4 times; returns the bytes and what was done."""
    done: list[str] = []
    times = 1 if group in ("truncate", "utf8") else r.randrange(1, 4 if group != "bytes" else 7)
    for _ in range(times):
        g = r.choice(GROUPS[:-1]) if group == "mixed" else group
        data, what = _MUTATORS[g](r, data)
        done.append(what)
    return data, ", ".join(done)


def _m_bytes(r: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    pos = r.randrange(len(b) + 1)
    kind = r.choice(["set", "bitflip", "insert", "delete", "dup"])
    if kind == "set" and pos < len(b):
        b[pos] = r.randrange(256)
    elif kind == "bitflip" and pos < len(b):
        b[pos] ^= 1 << r.randrange(8)
    elif kind == "insert":
        ins = r.choice(
            [bytes([r.randrange(256)]), r.randbytes(r.randrange(1, 5)), *(c.encode() for c in '(){}[]=,/#"\\0x-\n')]
        )
        b[pos:pos] = ins
    elif kind == "delete":
        del b[pos : pos + r.randrange(1, 12)]
    else:
        end = min(len(b), pos + r.randrange(1, 40))
        b[pos:pos] = b[pos:end]
    return bytes(b), f"byte {kind}@{pos}"


def _token_at(r: random.Random, toks: list[tuple[str, int, int]], kinds: Iterable[str]) -> tuple[str, int, int] | None:
    wanted = set(kinds)
    found = [t for t in toks if t[0] in wanted]
    return r.choice(found) if found else None


def _m_tokens(r: random.Random, data: bytes) -> tuple[bytes, str]:
    text = _decode(data)
    toks = _tokens(text)
    code = [t for t in toks if t[0] not in ("ws", "comment")]
    if not code:
        return data, "tokens: none"
    kind = r.choice(["delete", "dup", "swap", "swap_far", "punct", "insert", "string", "uncomment"])
    _, s, e = r.choice(code)
    if kind == "delete":
        text = text[:s] + text[e:]
    elif kind == "dup":
        text = text[:e] + " " * r.randrange(2) + text[s:e] + text[e:]
    elif kind in ("swap", "swap_far"):
        i = code.index(next(t for t in code if t[1] == s))
        j = min(i + 1, len(code) - 1) if kind == "swap" else r.randrange(len(code))
        (_, s1, e1), (_, s2, e2) = sorted([code[i], code[j]], key=lambda t: t[1])
        text = text[:s1] + text[s2:e2] + text[e1:s2] + text[s1:e1] + text[e2:]
    elif kind == "punct":
        tok = _token_at(r, toks, ["op"])
        if tok:
            text = text[: tok[1]] + r.choice(PUNCT) + text[tok[2] :]
    elif kind == "insert":
        text = text[:s] + r.choice([*PUNCT, *NAME_SUBS, "1", HUGE, '"s"', "relu", "conv(8)"]) + " " + text[s:]
    elif kind == "string":
        tok = _token_at(r, toks, ["string"])
        if tok:
            text = text[: tok[1]] + r.choice(STRING_SUBS) + text[tok[2] :]
    else:
        tok = _token_at(r, toks, ["comment"])
        if tok:
            text = text[: tok[1]] + text[tok[1] + 1 : tok[2]] + text[tok[2] :]
    return _encode(text), f"token {kind}@{s}"


def _short(text: str) -> str:
    return repr(text) if len(text) <= 12 else f"'{text[:6]}...' ({len(text)} chars)"


def _m_numbers(r: random.Random, data: bytes) -> tuple[bytes, str]:
    text = _decode(data)
    toks = _tokens(text)
    tok = _token_at(r, toks, ["int", "float"])
    if tok is None:  # no numbers: put one in
        tok = _token_at(r, toks, ["name"]) or ("", 0, 0)
    _, s, e = tok
    sub = r.choice(NUMBER_SUBS).replace("{t}", text[s:e] or "1")
    # inside an input shape the number is part of a SHAPE token: a huge one still parses
    return _encode(text[:s] + sub + text[e:]), f"number {_short(text[s:e])}->{_short(sub)}@{s}"


def _m_names(r: random.Random, data: bytes) -> tuple[bytes, str]:
    text = _decode(data)
    toks = _tokens(text)
    tok = _token_at(r, toks, ["name"])
    if tok is None:
        return data, "names: none"
    _, s, e = tok
    names = [text[a:b] for k, a, b in toks if k == "name"]
    sub = r.choice([*NAME_SUBS, *names, text[s:e] + "_", text[s:e][:-1] or "_", text[s:e].upper()])
    return _encode(text[:s] + sub + text[e:]), f"name {text[s:e]!r}->{sub!r}@{s}"


def _m_utf8(r: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    pos = r.randrange(len(b) + 1)
    if r.random() < 0.55:
        seq = r.choice(BAD_UTF8)
        b[pos : pos + r.randrange(2)] = seq
        return bytes(b), f"invalid utf-8 {seq!r}@{pos}"
    # a valid but unusual character, at a character boundary
    text = _decode(data)
    p = r.randrange(len(text) + 1)
    ch = r.choice(ODD_CHARS)
    return _encode(text[:p] + ch + text[p:]), f"char {ch!r}@{p}"


def _m_truncate(r: random.Random, data: bytes) -> tuple[bytes, str]:
    text = _decode(data)
    toks = _tokens(text)
    where = r.choice(["anywhere", "name", "number", "string", "comment", "open", "close", "equals", "comma", "line",
                      "eol", "last", "empty", "multibyte"])  # fmt: skip
    pos: int | None = None
    if where == "anywhere":
        return data[: r.randrange(len(data) + 1)], "truncate anywhere"
    if where == "empty":
        return b"", "truncate to empty"
    if where == "multibyte":
        body = _encode(text + " é∑🙂")
        return body[: len(body) - r.randrange(1, 3)], "truncate mid-character"
    if where in ("name", "number", "string", "comment"):
        kinds = {"number": ["int", "float"]}.get(where, [where])
        tok = _token_at(r, toks, kinds)
        if tok and tok[2] - tok[1] > 1:
            pos = r.randrange(tok[1] + 1, tok[2])
    elif where in ("open", "close", "equals", "comma"):
        char = {"open": "({[", "close": ")}]", "equals": "=", "comma": ","}[where]
        spots = [m.start() for m in re.finditer(f"[{re.escape(char)}]", text)]
        if spots:
            pos = r.choice(spots) + (where != "close")  # after an opener, before a closer
    elif where == "line":
        spots = [m.end() for m in re.finditer("\n", text)]
        pos = r.choice(spots) if spots else None
    elif where == "eol":
        spots = [m.start() for m in re.finditer("\n", text)]
        pos = r.choice(spots) if spots else None
    else:
        pos = max(len(text.rstrip()) - 1, 0)
    if pos is None:
        pos = r.randrange(len(text) + 1)
    return _encode(text[:pos]), f"truncate {where}@{pos}"


def _m_layout(r: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = r.choice(["crlf", "cr", "bom", "tabs", "mixed_tabs", "formfeed", "no_final_newline", "trailing_ws",
                     "unicode_lines", "nbsp_indent"])  # fmt: skip
    if kind == "crlf":
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), kind
    if kind == "cr":
        return data.replace(b"\n", b"\r"), kind
    if kind == "bom":
        return b"\xef\xbb\xbf" + data, kind
    if kind == "tabs":
        return re.sub(rb"(?m)^( {4})+", lambda m: b"\t" * (len(m.group(0)) // 4), data), kind
    if kind == "mixed_tabs":
        return re.sub(rb"(?m)^    ", b"  \t", data), kind
    if kind == "formfeed":  # a line of its own; a byte-order mark stays first (elsewhere it is text)
        bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
        lines = data.removeprefix(bom).split(b"\n")
        i = r.randrange(len(lines))
        lines.insert(i, b"\x0c")
        return bom + b"\n".join(lines), kind
    if kind == "no_final_newline":
        return data.rstrip(b"\n"), kind
    if kind == "trailing_ws":
        return data.replace(b"\n", b"  \t\n"), kind
    if kind == "unicode_lines":
        return data.replace(b"\n", r.choice(["\u2028", "\x85", "\x0b"]).encode(), r.randrange(1, 4)), kind
    return re.sub(rb"(?m)^    ", "\u00a0\u00a0".encode(), data, count=r.randrange(1, 3)), kind


def _m_lines(r: random.Random, data: bytes) -> tuple[bytes, str]:
    lines = data.split(b"\n")
    kind = r.choice(["delete", "dup", "swap", "concat_self", "concat_other", "reverse", "shuffle_block"])
    i = r.randrange(len(lines))
    if kind == "delete":
        del lines[i]
    elif kind == "dup":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = r.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "concat_self":
        return data + b"\n" + data, kind
    elif kind == "concat_other":
        other = (ROOT / r.choice(SEED_FILES)).read_bytes()
        return data + b"\n" + other, kind
    elif kind == "reverse":
        lines.reverse()
    else:
        j = min(len(lines), i + r.randrange(2, 8))
        chunk = lines[i:j]
        r.shuffle(chunk)
        lines[i:j] = chunk
    return b"\n".join(lines), f"line {kind}@{i + 1}"


_MUTATORS: dict[str, Callable[[random.Random, bytes], tuple[bytes, str]]] = {
    "bytes": _m_bytes,
    "tokens": _m_tokens,
    "numbers": _m_numbers,
    "names": _m_names,
    "utf8": _m_utf8,
    "truncate": _m_truncate,
    "layout": _m_layout,
    "lines": _m_lines,
}


def _importers() -> dict[str, list[str]]:
    """Each seed file and the seed files that import it, directly or not (to check a mutant in use)."""
    direct: dict[str, set[str]] = {}
    for rel in SEED_FILES:
        text = (ROOT / rel).read_text()
        for path in re.findall(r'^import "([^"]+)"', text, re.MULTILINE):
            for cand in ((Path(rel).parent / path).as_posix(), f"specs/{path}"):
                if cand in SEED_FILES:
                    direct.setdefault(cand, set()).add(rel)
                    break
    out: dict[str, list[str]] = {}
    for rel in SEED_FILES:
        seen: set[str] = set()
        todo = [rel]
        while todo:
            for imp in direct.get(todo.pop(), ()):
                if imp not in seen:
                    seen.add(imp)
                    todo.append(imp)
        out[rel] = sorted(seen)
    return out


IMPORTERS = _importers()


def mutated_case(index: int, seed: int = DEFAULT_SEED) -> Case:
    r = case_rng(seed, "mutated", index)
    rel = SEED_FILES[index % len(SEED_FILES)]
    group = GROUPS[(index // len(SEED_FILES)) % len(GROUPS)]
    data, what = mutate(r, (ROOT / rel).read_bytes(), group)
    if group != "layout" and r.random() < 0.15:  # positions must also hold under another layout
        data, extra = _m_layout(r, data)
        what += f", {extra}"
    targets = [rel]
    if IMPORTERS[rel] and r.random() < 0.35:
        targets.append(r.choice(IMPORTERS[rel]))  # the mutant as an import of another spec
    case = Case("mutated", index, f"{rel} [{group}] {what}", {rel: data}, targets)
    if set(what.split(", ")) <= PRESERVING:
        case.must_stay_clean = f"a clean spec after {what}"
    case.cli = r.random() < 0.08
    case.cli_json = case.cli and r.random() < 0.5
    return case


# -- the oracle -------------------------------------------------------------------------------

# Codes about a whole file or about the command, not about a place in it: they may carry no
# position (line 0, column 0). Every other diagnostic must point into its file.
FILE_LEVEL_CODES = {"E004", "E104", "E216"}
BAD_WORDS = ("internal error", "Traceback", "RecursionError", "recursion depth", "KeyError", "(please report")


def file_lines(text: str) -> list[str]:
    """The lines of a file as resdsl numbers them: its UTF-8 text read with universal newlines
    (``\\r\\n`` and ``\\r`` end a line) and split at ``\\n``, without the empty piece after a final
    newline. An empty file has one empty line, so 1:1 lies inside it. Leading byte-order marks
    are not part of the text (editors do not show them as a column)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


@dataclass
class Verdict:
    """What the oracle found for one case."""

    diagnostics: int = 0
    errors: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (class signature, detail)
    codes: set[str] = field(default_factory=set)  # the diagnostic codes seen
    seconds: float = 0.0  # wall-clock
    cpu: float = 0.0  # the worker's CPU time (steadier than wall-clock on a busy machine)

    @property
    def outcome(self) -> str:
        return "failed" if self.problems else ("diagnostics" if self.errors else "ok")


def _describe(exc: BaseException) -> str:
    """An exception's class signature: its type, the wrapped error and rule of a lark VisitError,
    and the innermost resdsl function it passed through."""
    name = type(exc).__name__
    orig = getattr(exc, "orig_exc", None)
    if orig is not None:
        rule = re.search(r'process rule "(\w+)"', str(exc))
        name += f"({type(orig).__name__}{' in rule ' + rule.group(1) if rule else ''})"
    return name + _where(exc)


def _where(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}resdsl{os.sep}" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" in {Path(f.filename).name}:{f.name}"


def judge(case: Case, root: Path) -> Verdict:
    """Run ``resdsl.check`` on each target of ``case`` (placed under ``root``) and judge it.

    A case passes when every check returns a CheckResult (never raises) and every diagnostic
    - has a documented code (``resdsl.diagnostics.CODES``) and the severity its letter says;
    - mentions no internal error, traceback or recursion limit, in its message, notes or help;
    - lies inside the file it names: 1 <= line <= lines in the file (see :func:`file_lines`;
      the line after a final newline is *not* inside: an error at the end of the file must
      point at the last line, just past its last character at most) and
      1 <= column <= len(line) + 1 (the +1 is the end of the line, where a missing ')' is
      reported); its end does not come before its start. Only codes in FILE_LEVEL_CODES may
      instead carry no position at all (0:0);
    - renders: ``format_diagnostic`` does not raise, its excerpt is the line the diagnostic
      points at, and the caret sits under the column it points at (tabs expanded as the
      excerpt expands them).
    When ``case.must_stay_clean`` is set (a clean spec after a layout-only change: CRLF, CR, a
    BOM, tabs, form feeds, trailing spaces) the check must also find no error.
    When ``case.cli`` is set, ``resdsl check`` through ``resdsl.tools.cli.main`` exits 0 or 1, agreeing
    with the API's result, and prints no internal error or traceback (``--json``: valid JSON).
    Unreadable files are E004, a file-level code: documented, so accepted; invalid UTF-8 is E004
    at the first bad byte, which must lie in the file as the excerpt shows it.
    The time limit (and the memory limit) are the pool's, not this function's.
    """
    import resdsl
    from resdsl.diagnostics import CODES, SourceCache, format_diagnostic

    v = Verdict()
    overrides = dict(case.overrides) or None
    pseudo = {f"--set {k}": [val] for k, val in case.overrides.items()}
    any_errors = raised = False
    for target in case.targets:
        path = root / target
        try:
            result = resdsl.check(path, overrides, case.input_shape)
        except BaseException as exc:  # the oracle reports everything, KeyboardInterrupt aside
            if isinstance(exc, KeyboardInterrupt):
                raise
            v.problems.append((f"check raised {_describe(exc)}", f"{target}: {str(exc)[:300]}"))
            raised = True
            continue
        if not isinstance(result, resdsl.CheckResult):
            v.problems.append(("check returned something else", repr(result)[:200]))
            continue
        v.diagnostics += len(result.diagnostics)
        v.codes.update(d.code for d in result.diagnostics)
        v.errors += len(result.errors)
        any_errors |= not result.ok
        if case.must_stay_clean and not result.ok:
            d = result.errors[0]
            v.problems.append(
                (
                    f"a spec that must check cleanly gives {d.code}",
                    f"{target} ({case.must_stay_clean}): {d.message[:120]!r} at {d.span.line}:{d.span.column}",
                )
            )
        cache = SourceCache(result.sources)
        lines_cache: dict[str, list[str] | None] = {}
        for d in result.diagnostics:
            for sig, detail in _diagnostic_problems(d, CODES, lines_cache, pseudo):
                v.problems.append((sig, f"{target}: {detail}"))
            try:
                rendered = format_diagnostic(d, cache)
            except Exception as exc:
                v.problems.append((f"rendering raised {type(exc).__name__}{_where(exc)}", f"{d.code} {exc}"[:300]))
                continue
            if any(w in rendered for w in ("internal error", "Traceback")):
                v.problems.append((f"{d.code} rendering mentions an internal error", rendered[:300]))
            lines = lines_cache.get(d.span.file)
            if lines and 1 <= d.span.line <= len(lines) and d.span.file not in pseudo:
                excerpt = _excerpt_problems(d, lines, cache, rendered)
                v.problems.extend((sig, f"{target}: {detail}") for sig, detail in excerpt)
    if case.cli:
        v.problems.extend(_cli_problems(case, root, any_errors, raised))
    return v


def _excerpt_problems(d: Any, lines: list[str], cache: Any, rendered: str) -> list[tuple[str, str]]:
    """The excerpt under a diagnostic shows its line, and the caret sits under its column."""
    line = lines[d.span.line - 1]
    shown = cache.line(d.span.file, d.span.line)
    where = f"{d.code} at {d.span.line}:{d.span.column}"
    if shown != line:
        sig = "excerpt shows another line than the one the diagnostic points at"
        return [(sig, f"{where}; the line is {line[:60]!r}, the excerpt {str(shown)[:60]!r}")]
    rows = rendered.split("\n")
    for i, row in enumerate(rows[:-1]):
        if re.match(rf"\s*{d.span.line} \| ", row):
            caret_row = rows[i + 1]
            bar = caret_row.find("| ")
            caret = caret_row.find("^")
            want = len(line[: d.span.column - 1].expandtabs(4))
            if bar >= 0 and caret >= 0 and caret - bar - 2 != want:
                sig = "caret is not under the column the diagnostic points at"
                return [(sig, f"{where}; caret at display column {caret - bar - 1}, wanted {want + 1}: {line[:60]!r}")]
            break
    return []


def _lines_for(file: str, cache: dict[str, list[str] | None], pseudo: dict[str, list[str]]) -> list[str] | None:
    if file not in cache:
        if file in pseudo:
            cache[file] = pseudo[file]
        else:
            try:
                # bytes that are not UTF-8 as the excerpt shows them: E004 points at the first one
                cache[file] = file_lines(Path(file).read_bytes().decode("utf-8", errors="replace"))
            except (OSError, ValueError):
                cache[file] = None
    return cache[file]


def _diagnostic_problems(
    d: Any, codes: dict[str, str], lines_cache: dict[str, list[str] | None], pseudo: dict[str, list[str]]
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    head = f"{d.code} {d.message[:160]!r} at {d.span.line}:{d.span.column}"
    if d.code not in codes:
        out.append((f"undocumented code {d.code}", head))
    if d.severity != ("warning" if d.code.startswith("W") else "error"):
        out.append((f"{d.code} has severity {d.severity}", head))
    texts = [d.message, *d.notes, d.help or ""]
    for word in BAD_WORDS:
        if any(word in t for t in texts):
            out.append((f"{d.code} mentions {word!r}", head))
            break
    s = d.span
    if s.line == 0 and s.column == 0:
        if d.code not in FILE_LEVEL_CODES:
            out.append((f"{d.code} has no position", f"{head} in {s.file!r}"))
        return out
    lines = _lines_for(s.file, lines_cache, pseudo)
    if lines is None:
        out.append((f"{d.code} points into a file that cannot be read", f"{head} in {s.file!r}"))
        return out
    if not 1 <= s.line <= len(lines):
        where = "line 0" if s.line < 1 else "line past the end of the file"
        out.append((f"{d.code} {where}", f"{head}; the file has {len(lines)} lines"))
        return out
    line = lines[s.line - 1]
    if not 1 <= s.column <= len(line) + 1:
        where = "column 0" if s.column < 1 else "column past the end of the line"
        out.append((f"{d.code} {where}", f"{head}; line {s.line} has {len(line)} characters"))
    if (s.end_line, s.end_column) < (s.line, s.column) or s.end_line > len(lines):
        out.append((f"{d.code} span ends before it starts or past the file", f"{head} to {s.end_line}:{s.end_column}"))
    return out


def _cli_problems(case: Case, root: Path, any_errors: bool, raised: bool) -> list[tuple[str, str]]:
    from resdsl.tools import cli

    args = ["check", *(str(root / t) for t in case.targets)]
    for k, val in case.overrides.items():
        args += ["--set", f"{k}={val}"]
    if case.input_shape:
        args += ["--input", "x".join(map(str, case.input_shape))]
    if case.cli_json:
        args.append("--json")
    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main(args)
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return [(f"cli raised {type(exc).__name__}{_where(exc)}", str(exc)[:300])]
    text = out.getvalue() + err.getvalue()
    problems = []
    if code not in (0, 1):
        first = next((ln for ln in text.splitlines() if "error" in ln), text[:200])
        problems.append((f"cli exit code {code}", first[:300]))
    elif code != (1 if any_errors else 0) and not raised:  # (when check() raised, that is the report)
        problems.append((f"cli exit code {code} disagrees with check()", text[:300]))
    for word in ("internal error", "Traceback"):
        if word in text and code in (0, 1):
            problems.append((f"cli output mentions {word!r}", text[text.find(word) - 100 : text.find(word) + 200]))
    if case.cli_json and code in (0, 1) and not raised:
        try:
            json.loads(out.getvalue())
        except ValueError as exc:
            problems.append(("cli --json output is not JSON", f"{exc}: {out.getvalue()[:200]!r}"))
    return problems


# -- workers ------------------------------------------------------------------------------------


def build_tree(root: Path) -> dict[str, bytes]:
    """Copy the seed files' directories under ``root``; returns the pristine contents by path."""
    for name, src in TREE_DIRS.items():
        shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _limit_memory(extra_mib: int) -> None:
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = next(int(ln.split()[1]) for ln in f if ln.startswith("VmSize:")) * 1024
        limit = vm + extra_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, StopIteration, ValueError):
        pass  # not Linux: the time limit still holds


def worker_main(conn: Connection, root: str, memory_mib: int) -> None:
    """A worker: builds its case tree, then judges each case it is sent until sent None."""

    tree = Path(root)
    pristine = build_tree(tree)
    _limit_memory(memory_mib)
    conn.send("ready")
    while True:
        case = conn.recv()
        if case is None:
            return
        start, cpu = time.perf_counter(), time.process_time()
        try:
            for rel, data in case.files.items():
                (tree / rel).parent.mkdir(parents=True, exist_ok=True)
                (tree / rel).write_bytes(data)
            verdict = judge(case, tree)
        except BaseException as exc:  # a broken oracle must not look like a hang
            verdict = Verdict(problems=[(f"oracle raised {type(exc).__name__}", str(exc)[:300])])
        finally:
            for rel in case.files:
                if rel in pristine:
                    (tree / rel).write_bytes(pristine[rel])
                else:
                    (tree / rel).unlink(missing_ok=True)
        verdict.seconds = time.perf_counter() - start
        verdict.cpu = time.process_time() - cpu
        conn.send(verdict)


class Pool:
    """Worker processes that judge cases, each case under a hard wall-clock limit.

    A case that runs past ``timeout`` seconds is a failure ("timeout"); its worker is killed and
    replaced. A worker that dies (a crash, an exhausted memory limit) fails its case too.
    """

    def __init__(self, workers: int = 2, timeout: float = 5.0, memory_mib: int = 3072) -> None:
        self.workers, self.timeout, self.memory_mib = max(1, workers), timeout, memory_mib
        self._ctx = multiprocessing.get_context("spawn")
        self._dir = Path(tempfile.mkdtemp(prefix="resdsl-fuzz-"))
        self._slots: list[tuple[Any, Connection] | None] = [None] * self.workers
        self._started = 0

    def _start(self, slot: int) -> tuple[Any, Connection]:
        parent, child = self._ctx.Pipe()
        self._started += 1
        tree = self._dir / f"w{self._started}"
        proc = self._ctx.Process(target=worker_main, args=(child, str(tree), self.memory_mib), daemon=True)
        proc.start()
        child.close()
        if not parent.poll(120) or parent.recv() != "ready":
            proc.kill()
            raise RuntimeError("a fuzz worker did not start")
        self._slots[slot] = (proc, parent)
        return proc, parent

    def _kill(self, slot: int) -> None:
        entry = self._slots[slot]
        if entry is not None:
            proc, conn = entry
            proc.kill()
            proc.join(10)
            conn.close()
            self._slots[slot] = None

    def run(self, items: Iterable[Case], stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[Case, Verdict]]:
        """Judge every case (in any order); stop feeding new ones once ``stop()`` says so."""
        source = iter(items)
        busy: dict[int, tuple[Case, float]] = {}
        exhausted = False
        while True:
            for slot in range(self.workers):
                if slot in busy or exhausted or stop():
                    continue
                case = next(source, None)
                if case is None:
                    exhausted = True
                    break
                _proc, conn = self._slots[slot] or self._start(slot)
                conn.send(case)
                busy[slot] = (case, time.monotonic() + self.timeout)
            if not busy:
                return
            conns = {self._slots[s][1]: s for s in busy}  # type: ignore[index]
            left = max(0.0, min(deadline for _, deadline in busy.values()) - time.monotonic())
            for conn in wait(list(conns), timeout=left):
                slot = conns[conn]  # type: ignore[index]
                case, _ = busy.pop(slot)
                try:
                    verdict = conn.recv()  # type: ignore[union-attr]
                except (EOFError, OSError):
                    proc = self._slots[slot][0]  # type: ignore[index]
                    proc.join(5)
                    self._kill(slot)
                    verdict = Verdict(problems=[(f"worker died (exit code {proc.exitcode})", case.label)])
                yield case, verdict
            now = time.monotonic()
            for slot, (case, deadline) in list(busy.items()):
                if now >= deadline:
                    del busy[slot]
                    self._kill(slot)
                    yield case, Verdict(problems=[("timeout", f"over {self.timeout:g} s")], seconds=self.timeout)

    def close(self) -> None:
        for slot, entry in enumerate(self._slots):
            if entry is not None:
                with contextlib.suppress(OSError, BrokenPipeError):
                    entry[1].send(None)
                entry[0].join(5)
                self._kill(slot)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_case(case: Case, folder: Path) -> Path:
    """Write a case's files (and how to run it) under ``folder``; returns the case's folder."""
    dest = folder / case.name.replace("#", "-")
    for rel, data in case.files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    (dest / "CASE.txt").write_text(
        f"{case.label}\ntargets: {case.targets}\noverrides: {case.overrides}\ninput: {case.input_shape}\n"
        f"cli: {case.cli} json: {case.cli_json}\n"
    )
    return dest


# -- command line -------------------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "help"
    seed = int(os.environ.get("RESDSL_FUZZ_SEED", DEFAULT_SEED))
    if cmd == "show":
        case = make_case(argv[1], int(argv[2]), seed)
        print(f"# {case.name}: {case.label}\n# targets {case.targets} overrides {case.overrides}")
        for rel, data in case.files.items():
            print(f"# ---- {rel}")
            sys.stdout.write(_decode(data)[:20000] + "\n")
        return 0
    if cmd in ("run", "check"):
        if cmd == "run":
            items: Iterable[Case] = cases(argv[1], int(argv[2]), int(argv[3]), seed)
        else:
            items = [Case("regression", i, p, {f"specs/fz_{Path(p).name}": Path(p).read_bytes()},
                          [f"specs/fz_{Path(p).name}"], cli=True) for i, p in enumerate(argv[1:])]  # fmt: skip
        classes: dict[str, list[tuple[Case, str]]] = {}
        counts = {"ok": 0, "diagnostics": 0, "failed": 0}
        seen: dict[str, int] = {}
        slow: list[tuple[float, str]] = []
        cpu = 0.0
        start = time.monotonic()
        with Pool(int(os.environ.get("RESDSL_FUZZ_WORKERS", "2"))) as pool:
            for case, verdict in pool.run(items):
                counts[verdict.outcome] += 1
                slow.append((verdict.seconds, case.name))
                cpu += verdict.cpu
                for c in verdict.codes:
                    seen[c] = seen.get(c, 0) + 1
                for sig, detail in verdict.problems:
                    classes.setdefault(sig, []).append((case, detail))
                if verdict.problems and os.environ.get("RESDSL_FUZZ_LOG"):
                    with open(os.environ["RESDSL_FUZZ_LOG"], "a") as log:
                        log.write(json.dumps({"case": case.name, "label": case.label, "problems": verdict.problems}))
                        log.write("\n")
        print(f"{sum(counts.values())} cases {counts} in {time.monotonic() - start:.1f} s, {cpu:.1f} s worker CPU")
        print("slowest:", sorted(slow, reverse=True)[:5])
        print(f"codes seen ({len(seen)}):", dict(sorted(seen.items())))
        for sig, hits in sorted(classes.items(), key=lambda kv: -len(kv[1])):
            print(f"\n[{len(hits)}] {sig}")
            for case, detail in hits[: int(os.environ.get("RESDSL_FUZZ_SHOW", "3"))]:
                print(f"    {case.name}: {case.label[:150]}\n        {detail[:300]}")
        return 1 if classes else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
