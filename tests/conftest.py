"""Shared fixtures: the reference data copied from torchvision and timm, cached results, small helpers.

Tolerance policy for numerical comparisons (relative error, max|a - b| / max|b|, see ``rel_error``):

- Against external reference data (the torchvision and timm fixtures, computed on another machine and
  torch build): float64 only, the model cast with ``.double()`` after the deterministic fill, held to
  ``REFERENCE_TOL`` = 1e-9. Float32 logits of deep nets differ between processors (and thread counts) by
  up to ~1e-4 in train mode (why the float32 fixture was dropped); float64 differences are ~1e-14, so 1e-9
  leaves five orders of magnitude and still catches any wrong weight, wiring or op (those show as 1e-3
  or worse).
- Two of our own implementations of the same network on the same machine (built vs generated,
  traced/exported/scripted vs eager): float64 with ``SAME_MACHINE_TOL`` = 1e-10. They run the same
  torch kernels in the same order, so they usually agree bit for bit; the margin only covers a
  different but equivalent summation order.
- Comparisons that must run in float32 because float32 is the thing under test (torch.compile's
  generated kernels, channels_last kernels, onnxruntime): ``FLOAT32_TOL`` = 1e-4, with a comment at each
  use. Those back ends legitimately fuse and reorder float32 arithmetic, which costs ~1e-6..1e-5
  relative through an 18-layer net; 1e-4 is a margin over that, not a property of the processor.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
SPECS = ROOT / "specs"

REFERENCE_TOL = 1e-9  # float64, against data computed elsewhere
SAME_MACHINE_TOL = 1e-10  # float64, two of our implementations in the same process or on the same machine
FLOAT32_TOL = 1e-4  # float32 only where float32 itself is under test (compile, channels_last, onnxruntime)

TORCHVISION_MODELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
CIFAR = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18, "resnet1202": 200}
# paper.md: exact CIFAR-10 parameter counts (with BN affine), option A shortcuts
CIFAR_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}


# The shipped networks whose tests take seconds each (101 to 1202 layers, or twice the width): their
# parametrised cases are marked ``slow`` by ``slow_if_heavy``, so plain ``pytest`` leaves them to
# ``pytest -m slow`` (CI runs both). The quick run still covers every block, stem, shortcut kind and
# family through the smaller nets (18/34/50 layers, ResNeXt-50, ResNet-20..110, pre-activation 164).
HEAVY = frozenset(
    {
        "resnet101",
        "resnet152",
        "resnet101_v1",
        "resnet152_v1",
        "resnet101d",
        "resnet152d",
        "resnext101_32x8d",
        "resnext101_64x4d",
        "wide_resnet50_2",
        "wide_resnet101_2",
        "resnet1202",
        "preact_resnet1001",
        "resnetrs101",
        "resnetrs152",
        "densenet161",
        "densenet169",
        "densenet201",
    }
    # the other sizes of the modern families: one spec and its arguments, whose smallest (or
    # timm-fixture) member runs in the quick set, every size at timm's count in tests/test_family.py
    | {f"convnext_{s}" for s in ("femto", "pico", "nano", "small", "base", "large")}
    | {f"mobilenetv2_{s}" for s in ("035", "050", "075", "120d", "140")}
    | {f"efficientnet_b{i}" for i in range(1, 5)}
    | {f"regnetx_{s}" for s in ("004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320")}
    | {f"regnety_{s}" for s in ("002", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320")}
    | {f"res2net50_{s}" for s in ("48w_2s", "14w_8s", "26w_6s", "26w_8s")}
    | {"res2next50"}
    | {f"resnest{s}" for s in ("26d", "50d", "101e")}
    # ViT-Ti, DeiT-Ti (the timm fixture) and DeiT III-S (layer scale, no_embed_class) run quick
    | {"vit_small_patch16_224", "vit_base_patch16_224", "vit_base_patch32_224"}
    | {"deit_small_patch16_224", "deit_base_patch16_224", "deit3_base_patch16_224"}
)


# RESDSL_SLOW_ALL=1: every test that takes half of the heavy networks (``slow_if_heavy(half=...)``)
# takes all of them
SLOW_ALL = bool(os.environ.get("RESDSL_SLOW_ALL"))


def slow_if_heavy(values: Iterable[Any], *, half: int | None = None) -> list[Any]:
    """``values`` for ``pytest.mark.parametrize``, each naming a HEAVY network (the value itself, or a
    tuple's first item) wrapped in ``pytest.param(..., marks=pytest.mark.slow)``.

    ``half`` (0 or 1) keeps only every other heavy network, in HEAVY's sorted order, starting at
    ``half``: the four per-network tests whose work grows with the network but whose code paths a
    sibling size already takes (the ONNX full checker, real against inferred shapes, the one
    renderer, the inference build) split the heavy networks between them, two tests each, so the
    slow suite stays inside CI's time. Each heavy network is still built and counted against the
    checker, generated and compared with build_model, and put through two of those four."""
    ranks = {name: i for i, name in enumerate(sorted(HEAVY))}
    out: list[Any] = []
    for value in values:
        args = value if isinstance(value, tuple) else (value,)
        if args[0] not in HEAVY:
            out.append(value)
        elif half is None or SLOW_ALL or ranks[args[0]] % 2 == half:
            out.append(pytest.param(*args, marks=pytest.mark.slow))
    return out


def shipped_spec_files() -> list[Path]:
    return sorted(SPECS.glob("*.arch"))


@functools.cache
def shipped_networks() -> tuple[tuple[str, Path, tuple[int, ...]], ...]:
    """``(name, file, input shape)`` of every network the shipped specs define, in file order.

    Read from the files' syntax (parsed, imports followed, an alias traced to the network it
    instantiates), never elaborated: tests parametrise over these at collection, which must stay
    cheap. The parses are cached by the loader, so the tests' own checks reuse them.
    """
    from resdsl.diagnostics import Collector
    from resdsl.syntax.loader import load

    out = []
    for path in shipped_spec_files():
        collector = Collector()
        program = load(path, collector)
        assert not collector.items, [str(d) for d in collector.items]
        out += [(d.name, path, _input_shape(program, d)) for d in program.own_networks()]
    return tuple(out)


def _input_shape(program: Any, definition: Any) -> tuple[int, ...]:
    """The ``input`` statement's shape of a network definition, through any chain of aliases:
    each size a whole number or a parameter that one, given by an alias or defaulted, names
    (``input 3 x img_size x img_size``), all the shipped specs write."""
    from resdsl.syntax import ast

    given: dict[str, ast.Expr] = {}
    while isinstance(definition, ast.NetworkAlias):
        for arg in definition.target.args:
            assert arg.name is not None, definition.name  # the shipped aliases name their arguments
            given.setdefault(arg.name, arg.value)
        definition = program.definitions(definition.span.file)[definition.target.func]
    given = {**{p.name: p.default for p in definition.params if p.default is not None}, **given}
    (dims,) = [s.dims for s in definition.body if isinstance(s, ast.InputStmt)]
    sizes = [given.get(d.id) if isinstance(d, ast.Name) else d for d in dims]
    assert all(isinstance(s, ast.IntLit) for s in sizes), (definition.name, dims)
    return tuple(s.value for s in sizes)  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return json.loads((FIXTURES / "torchvision" / "manifest.json").read_text())["models"]


@functools.cache
def reference_f64() -> dict[str, Any]:
    """torchvision's logits in float64: ``{"input": [2,3,96,96], "outputs": {name: {output_eval, output_train}}}``."""
    import torch

    return torch.load(FIXTURES / "torchvision" / "reference_outputs_f64.pt")


@pytest.fixture(scope="session")
def reference_outputs_f64() -> dict[str, Any]:
    return reference_f64()


# The four helpers below are also pasted, by inspect.getsource, into the script that test_codegen runs
# where resdsl cannot be imported: keep them self-contained (torch, math and typing.Any only).


def state_listing(model: Any) -> list[list[Any]]:
    """``[key, shape, dtype]`` for every state_dict entry, in order: the fixture manifests' format."""
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def deterministic_fill(entries: list[list[Any]]) -> dict[str, Any]:
    """The fixture README's fill: one generator seeded 0, entries in manifest order."""
    import torch

    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape, _dtype in entries:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) * math.sqrt(1 / math.prod(shape[1:]))
        elif key.endswith("weight"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.1
    return out


def outputs_f64(model: Any, x: Any) -> dict[str, Any]:
    """The model's float64 outputs in eval and then train mode, with the same dropout masks on every run."""
    import torch

    model.double()
    out = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            model.train(mode == "train")
            torch.manual_seed(1)
            out[mode] = model(x.double())
    return out


def small_input(shape: list[int], exact: bool = False) -> Any:
    """Two float64 images of a net's input shape, maps at most 64 wide so that the checks stay quick;
    ``exact``: the input size itself (a position embedding is made for one size)."""
    import torch

    size = shape[1] if exact or shape[1] <= 32 else 64
    return torch.randn(2, shape[0], size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def rel_error(a: Any, b: Any) -> float:
    return float((a - b).abs().max() / b.abs().max())


@functools.cache
def compiled(spec: str) -> Any:
    """``resdsl.compile(spec)``, once per session; the IR is only read by the tests that share it."""
    import resdsl

    return resdsl.compile(spec)


def equality_input(spec: str) -> Any:
    """The input of the float64 equality checks: the fixture's for torchvision's nets, else ``small_input``."""
    if spec in TORCHVISION_MODELS:
        return reference_f64()["input"]
    return small_input(list(compiled(spec).input_shape), fixed_size(spec))


def fixed_size(spec: str) -> bool:
    """Whether a network runs at its declared input size only: a position embedding (ViT's) has
    one vector per token of that size."""
    return any(layer.op == "pos_embed" for layer in compiled(spec).layers())


@functools.cache
def built_run(spec: str) -> dict[str, Any]:
    """What the equality checks need of ``resdsl.build_model(spec)``, worked out once per session.

    ``listing`` and ``num_params`` of the model as built, then ``eval`` and ``train``: its float64
    outputs on ``equality_input(spec)`` after the deterministic fill. test_backend_torch holds these
    against torchvision's and test_codegen against the generated module's, so the full-depth nets are
    built, filled and run once for both. Only these small tensors stay cached, not the models.
    """
    import resdsl

    model = resdsl.build_model(compiled(spec))
    listing = state_listing(model)
    num_params = sum(p.numel() for p in model.parameters())
    model.load_state_dict(deterministic_fill(listing), strict=True)
    return {"listing": listing, "num_params": num_params, **outputs_f64(model, equality_input(spec))}


# -- The generated modules, run where resdsl cannot be imported ---------------------------------------


def _networks() -> dict[str, str]:
    from resdsl.api import shipped_names

    # every shipped spec, plus the examples (whose file stem is their network's name)
    return {name: name for name in shipped_names()} | {p.stem: str(p) for p in (ROOT / "examples").glob("*.arch")}


NETWORKS = _networks()  # name -> the spec argument that builds it
ISOLATED_TESTS = ("test_generated_equals_built", "test_generated_matches_torchvision_reference")


def code_for(spec: str) -> str:
    from resdsl.backends.codegen import generate

    return generate(compiled(spec), spec_arg=spec)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated module of every network in NETWORKS, written once per session."""
    folder = tmp_path_factory.mktemp("generated")
    out = {}
    for name, spec in sorted(NETWORKS.items()):
        out[name] = folder / f"{name}.py"
        out[name].write_text(code_for(spec))
    return out


# The script runs each generated module where resdsl cannot be imported, with the fill and input that
# built_run gives the built model (the helpers are pasted in from above), and writes each network's
# state listing and float64 outputs, or the error, to its own file.
ISOLATED = (
    textwrap.dedent(
        """
        from __future__ import annotations

        import importlib.util, math, os, sys, traceback
        from typing import Any

        sys.modules["resdsl"] = None  # resdsl must not be importable here
        import torch
        """
    )
    + "".join("\n\n" + inspect.getsource(f) for f in (state_listing, deterministic_fill, outputs_f64, small_input))
    + textwrap.dedent(
        """

        out, reference = sys.argv[1], torch.load(sys.argv[2])
        for path, factory, name, shape in [line.split("|") for line in sys.argv[3:]]:
            result: dict[str, Any] = {}
            try:
                spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                model = getattr(mod, factory)()
                result["listing"] = state_listing(model)
                model.load_state_dict(deterministic_fill(result["listing"]), strict=True)
                exact, shape = shape.endswith("!"), shape.rstrip("!")
                sizes = [] if shape == "reference" else [int(n) for n in shape.split("x")]
                x = reference["input"] if shape == "reference" else small_input(sizes, exact)
                result |= outputs_f64(model, x)
            except Exception:
                result["error"] = traceback.format_exc()
            torch.save(result, os.path.join(out, f"{name}.tmp"))
            os.replace(os.path.join(out, f"{name}.tmp"), os.path.join(out, f"{name}.pt"))  # whole files only
        """
    )
)


class IsolatedRun:
    """ISOLATED over some networks in one background process; ``result`` waits for one network's file.

    It runs with one thread, beside the tests' own one (see ``one_torch_thread``).
    """

    def __init__(self, paths: dict[str, Path], folder: Path) -> None:
        self.folder = folder
        script = folder / "isolated.py"
        script.write_text(ISOLATED)

        def job(name: str, path: Path) -> str:
            net = compiled(NETWORKS[name])
            shape = "reference" if NETWORKS[name] in TORCHVISION_MODELS else "x".join(map(str, net.input_shape))
            shape += "!" if fixed_size(NETWORKS[name]) else ""  # the input size itself
            return f"{path}|{net.name}|{name}|{shape}"

        args = [str(script), str(folder), str(FIXTURES / "torchvision" / "reference_outputs_f64.pt")]
        args += [job(name, path) for name, path in paths.items()]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.stderr = folder / "stderr.txt"
        with self.stderr.open("w") as err:  # a file, not a pipe that nobody reads while the tests run
            self.process = subprocess.Popen(
                [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=err, cwd=folder, env=env
            )

    def result(self, name: str, timeout: float = 600) -> dict[str, Any]:
        import torch

        path = self.folder / f"{name}.pt"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None and not path.exists():
                err = self.stderr.read_text()[-3000:]
                pytest.fail(f"the isolated process ended (code {self.process.returncode}) without {name}:\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"no result for {name} after {timeout} s")
            time.sleep(0.02)
        result = torch.load(path)
        assert "error" not in result, result["error"]
        return result

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Any:
    """Torch runs single-threaded in the tests unless OMP_NUM_THREADS asks for more.

    Their tensors are small, so a second thread gains little; but torch's OpenMP threads wait for each
    other at every operation, and on a machine with other work (or the background ISOLATED process) a
    thread that is not scheduled stalls its partner: with two threads this suite ran three to nine times
    slower on a busy two-core machine. The second core serves the background process instead. On an
    idle machine a single test file without that process (test_backend_torch alone) loses a little.
    """
    import torch

    before = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move ISOLATED_TESTS to the end, so that the background process has the whole session to finish."""
    last = [item for item in items if getattr(item, "originalname", None) in ISOLATED_TESTS]
    moved = {id(item) for item in last}
    items[:] = [item for item in items if id(item) not in moved] + last


@pytest.fixture(scope="session", autouse=True)
def isolated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Started with the session's first test, so that it runs beside all the others; only when one of
    ISOLATED_TESTS was selected, and only for the networks selected."""
    names = {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", None) in ISOLATED_TESTS and hasattr(item, "callspec")
    }
    if not names:
        yield None
        return
    generated = request.getfixturevalue("generated")
    run = IsolatedRun({n: p for n, p in generated.items() if n in names}, tmp_path_factory.mktemp("isolated"))
    yield run
    run.close()
