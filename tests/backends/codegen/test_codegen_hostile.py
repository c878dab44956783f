"""Code generation cannot be injected: specs with hostile names and strings still give a module
that parses, imports only torch, holds no statement the template did not write, and builds
the same network as build_model."""

from __future__ import annotations

import ast
import importlib.util
import itertools
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.backends.codegen import generate, generated_state
from resdsl.syntax.ast import BUILTIN_FUNCTIONS

_counter = itertools.count()

# names the generated code uses, builtins it calls, names it defines, and the language's own
HOSTILE_NAMES = [
    "print", "len", "range", "super", "isinstance", "self", "x", "out", "identity", "torch", "nn", "F",
    "Tensor", "Any", "make_shortcut", "ZeroPadShortcut", "SHORTCUT_KINDS", "MEAN", "STD", "META",
    "INPUT_SIZE", "m", "layers", "kind", "changes", "in_channels", "add_shortcut", "network_input",
    "ValueError", "list", "int", "float", "bool", "str", "tuple", "object", "_", "__x", "print_", "x_",
    "Hostile", "HostileNet", "hostile", "Blk", "blk", "super_", "relu1_out", "x_out", "match", "case",
]  # fmt: skip
# layers may have any name but keywords, nn.Module attributes (E505) and private names (E503)
# (and, until build_model's ScopeModule stops using them, its own attributes kind/steps/slots)
LAYER_NAMES = [n for n in HOSTILE_NAMES if not hasattr(torch.nn.Module, n) and not n.startswith("__") and n != "kind"]
STRING_ALPHABET = st.sampled_from(['"', "'", "\\", "\n", "\r", "\t", "#", "{", "}", "é", "€", "\u2028", "\x00",
                                   "\x1b", "😀", "\ud83d", "a", " ", "x", '"""', "'''", "\\n", "%s"])  # fmt: skip
strings = st.lists(STRING_ALPHABET, max_size=8).map("".join)


def arch_str(text: str) -> str:
    """A .arch string literal for any text, written with escapes only (ASCII source)."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif " " <= ch <= "~":
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


@dataclass
class Spec:
    text: str
    strings: list[str]
    network: str


def spec_text(names: list[str], layers: list[str], texts: list[str], project: bool, kind: str) -> Spec:
    block, net, p1, p2, k, s, let, q, q2, qs = names
    a, bn, r, c, l0, xb, ys, fc = layers
    tap = f", project_from={r}" if project else ""
    title, note, default_text, block_text = texts
    text = f"""
block {block}({p1}, {p2} = 1, {k} = projection, {s} = {arch_str(block_text)}) {{
    {let} = {p1} * 2 / 2
    {bn} = batchnorm()
    {r} = relu()
    {a} = conv({let}, k=3, s={p2}, p=1)
    {c} = conv({p1}, k=3, p=1)
    residual({k}{tap})
    relu
}}

network {net}({q} = 8, {q2} = {kind}, {qs} = {arch_str(default_text)}) {{
    input 3 x 8 x 8
    meta {{ title = {arch_str(title)}  note = {arch_str(note)}  mean = [0.5, 0.25, 0.125] }}
    {l0} = conv({q}, k=3, p=1)
    {xb} = {block}({q} * 2, 2, {k}={q2})
    {ys} = stage({block}({q} * 2, {k}={q2}), repeat=2)
    pool = global_avgpool()
    {fc} = linear(3)
}}
"""
    return Spec(text, [title, note, default_text, block_text], net)


@st.composite
def hostile_specs(draw: st.DrawFn) -> tuple[Spec, Spec]:
    """A hostile spec and the same spec with bland names and strings."""
    # the first names the block: not one of the language's functions (len, range, int, float),
    # whose calls are the function's (E103); the network may take one
    names = draw(
        st.lists(st.sampled_from(HOSTILE_NAMES), min_size=10, max_size=10, unique=True).filter(
            lambda ns: ns[0] not in BUILTIN_FUNCTIONS
        )
    )
    layers = draw(
        st.lists(st.sampled_from([n for n in LAYER_NAMES if n not in names]), min_size=8, max_size=8, unique=True)
    )
    texts = draw(st.lists(strings, min_size=4, max_size=4))
    project = draw(st.booleans())
    kind = draw(st.sampled_from(["projection", "zero_pad", "projection_all", "avgpool_projection"]))
    hostile = spec_text(names, layers, texts, project, kind)
    bland = spec_text([f"n{i}" for i in range(10)], [f"l{i}" for i in range(8)], ["t"] * 4, project, kind)
    return hostile, bland


def skeleton(code: str) -> str:
    """The statement structure of a module: every identifier and constant blanked out."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        for attr in ("id", "arg", "attr", "name", "asname"):
            if isinstance(getattr(node, attr, None), str):
                setattr(node, attr, "_")
        if isinstance(node, ast.Constant):
            node.value = None
    return ast.dump(tree)


ALLOWED_IMPORTS = {
    ("import", "torch", None),
    ("import", "torch.nn.functional", "F"),
    ("from", "torch", "Tensor"),
    ("from", "torch", "nn"),
    ("from", "typing", "Any"),
    ("from", "collections.abc", "Callable"),  # the shortcut helper's norm argument
    ("import", "os", None),  # checkpoint paths
    ("from", "collections.abc", "Mapping"),
    ("from", "collections.abc", "Sequence"),
    ("from", "safetensors.torch", "load_file"),  # inside read_checkpoint, for .safetensors files only
}


HELPERS = ("load_weights", "preprocess")  # functions every generated module has besides its factory


def imports(code: str) -> set[tuple[str, str, str | None]]:
    out: set[tuple[str, str, str | None]] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            out |= {("import", a.name, a.asname) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out |= {("from", node.module or "", a.name) for a in node.names}
    return out


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hostile_{next(_counter)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate_file(spec: Spec, folder: Path, file_name: str) -> tuple[str, Any]:
    path = folder / file_name
    path.write_text(spec.text, encoding="utf-8")
    result = resdsl.check(path)
    assert result.ok, (result.diagnostics, spec.text)
    net = result.networks[0]
    return generate(net, spec_arg=str(path), overrides={"x": 'a"b\nc'}), net


def assert_same_network(code: str, net: Any, folder: Path) -> ModuleType:
    out = folder / f"hostile_{next(_counter)}.py"
    out.write_text(code, encoding="utf-8")
    module = load(out)
    factories = [
        v
        for k, v in vars(module).items()
        if callable(v) and not isinstance(v, type) and k in module.__all__ and k not in HELPERS
    ]
    (factory,) = factories
    generated = factory().double()
    built = resdsl.build_model(net).double()
    assert [(k, v.shape) for k, v in generated.state_dict().items()] == [
        (k, v.shape) for k, v in built.state_dict().items()
    ]
    torch.manual_seed(0)
    state = {
        k: (torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.3)
        if v.is_floating_point()
        else v
        for k, v in built.state_dict().items()
    }
    built.load_state_dict(state)
    generated.load_state_dict(state)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    for train in (False, True):
        built.train(train)
        generated.train(train)
        assert torch.allclose(generated(x), built(x), rtol=1e-10, atol=1e-12)
    return module


# a spec file name that is itself hostile: quotes, a newline, a comment sign
HOSTILE_FILE = "we\"ird\n# name\\'s.arch"


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_specs())
def test_hostile_names_and_strings_cannot_inject_code(
    tmp_path_factory: pytest.TempPathFactory, pair: tuple[Spec, Spec]
) -> None:
    hostile, bland = pair
    folder = tmp_path_factory.mktemp("hostile")
    code, net = generate_file(hostile, folder, HOSTILE_FILE)
    bland_code, _ = generate_file(bland, folder, "bland.arch")
    assert generated_state(code) == "generated"
    assert imports(code) <= ALLOWED_IMPORTS
    assert skeleton(code) == skeleton(bland_code), "a spec string or name changed the module's statements"
    module = assert_same_network(code, net, folder)
    assert module.META == {"title": hostile.strings[0], "note": hostile.strings[1]}  # strings round-trip exactly
    title = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in hostile.strings[0])
    assert module.__doc__.startswith(title + ": generated by resdsl")
    header = code.partition("\n# ---\n")[0].splitlines()
    assert all(line.startswith("# ") for line in header)  # no line break got out of a comment


def test_shipped_names_are_not_renamed() -> None:
    code = generate(resdsl.compile("resnet50"), spec_arg="resnet50")
    assert "def resnet50(" in code and "class Bottleneck(nn.Module):" in code and "planes: int" in code


def test_builtin_names_are_renamed_consistently(tmp_path: Path) -> None:
    spec = Spec(
        text="""
block super(range, isinstance = 1, print = projection, range_ = 2) {
    len = range * range_ / 2
    self = conv(len, k=3, s=isinstance, p=1)
    x = batchnorm()
    residual(print)
}
network make_shortcut(super_ = 4, Super = projection) {
    input 3 x 8 x 8
    out = conv(super_, k=1)
    identity = super(super_, 2, print=Super)
    torch = stage(super(super_, print=Super), repeat=3)
    fc = linear(2)
}
""",
        strings=[],
        network="make_shortcut",
    )
    code, net = generate_file(spec, tmp_path, "names.arch")
    assert "def make_shortcut_(" in code and "class SuperBlock(nn.Module):" in code
    assert "range__: int" in code and "range_: int = 2" in code and "print_: str" in code
    assert_same_network(code, net, tmp_path)


def top_level_names(code: str) -> list[str]:
    """The classes and functions a module defines at its top level, in order, repeats kept."""
    return [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]


def test_names_of_the_copied_helpers_are_renamed(tmp_path: Path) -> None:
    """Blocks and a network named like the helpers that checkpointing and inference modules
    copy in (KeepBuffers, Segment, PackedConv2d, checkpoint_seq) do not replace them, nor do
    parameters named like the checkpointing switches clash with those constructor arguments."""
    spec = Spec(
        text="""
block segment(planes, stride = 1) {
    conv1 = conv(planes, k=3, s=stride, p=1)
    bn1 = batchnorm()
    relu
    residual(projection)
}
block keep_buffers(planes, stride = 1) {
    conv1 = conv(planes, k=3, s=stride, p=1)
    bn1 = batchnorm()
    residual(projection)
}
block packed_conv2d(planes, stride = 1) {
    conv1 = conv(planes, k=1, s=stride)
    bn1 = batchnorm()
    residual(projection)
}
network checkpoint_seq(grad_checkpointing = 4, checkpoint_reentrant = 8) {
    input 3 x 8 x 8
    conv1 = conv(grad_checkpointing, k=3, p=1)
    layer1 = stage(segment(4), repeat=2)
    layer2 = stage(keep_buffers(checkpoint_reentrant), repeat=2, stride=2)
    layer3 = stage(packed_conv2d(8), repeat=1)
    fc = linear(2)
}
""",
        strings=[],
        network="checkpoint_seq",
    )
    path = tmp_path / "helpers.arch"
    path.write_text(spec.text, encoding="utf-8")
    net = resdsl.check(path).networks[0]
    for code in (generate(net, checkpoint=True), generate(net, inference=True)):
        names = top_level_names(code)
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    module = assert_same_network(generate(net, checkpoint=True), net, tmp_path)
    model = module.checkpoint_seq_().train()
    model(torch.randn(2, 3, 8, 8)).sum().backward()  # through Segment and KeepBuffers, not the blocks
    assert all(p.grad is not None for p in model.parameters())


def test_mangled_private_names(tmp_path: Path) -> None:
    spec = Spec(
        text="""
block b(__c, __s = 1) {
    __w = __c * 1
    conv1 = conv(__w, k=3, s=__s, p=1)
    residual(projection)
}
network n(__n = 4) {
    input 3 x 8 x 8
    b1 = b(__n, __s=2)
}
""",
        strings=[],
        network="n",
    )
    code, net = generate_file(spec, tmp_path, "private.arch")
    assert "v__c" in code and "v__n" in code
    assert_same_network(code, net, tmp_path)
