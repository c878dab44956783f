"""The package as installed: its grammar and library are found from any directory, and a wheel
built from this checkout, installed in a fresh venv away from the source tree, runs the README's
commands (``check``, ``build``, ``list``) with the specs and grammar it carries inside."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import resdsl
from resdsl.resources import grammar_path, library_dir, shipped_specs
from tests.conftest import ROOT, SPECS


def test_data_files_are_found() -> None:
    assert grammar_path().is_file()
    assert (library_dir() / "std" / "blocks.arch").is_file()
    assert {p.stem for p in shipped_specs()} >= {"resnet50", "resnet110", "cifar_resnet", "wide_resnet101_2"}


def test_installed_package_runs_elsewhere(tmp_path: Path) -> None:
    code = (
        "import resdsl, resdsl.resources as r\nprint(r.grammar_path())\nprint(resdsl.compile('resnet20').num_params)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    grammar, params = done.stdout.split()
    assert Path(grammar).is_file() and params == "269722"


def test_version_is_exported() -> None:
    assert resdsl.__version__.count(".") == 2


# -- The wheel, in a venv of its own ---------------------------------------------------------------


@dataclass(frozen=True)
class Venv:
    """A venv with the wheel installed: its interpreter, its ``resdsl`` script, and how to run them."""

    root: Path
    wheel: Path
    work: Path  # an empty folder outside the source tree, the commands' working directory
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def resdsl(self) -> Path:
        return self.root / "bin" / "resdsl"

    def run(self, *args: str | Path, cwd: Path | None = None) -> str:
        return _run(args, cwd or self.work, self.env)


def _run(args: tuple[str | Path, ...] | list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; its stdout, or a test failure with its output."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _clean_env(venv: Path) -> dict[str, str]:
    """This process's environment without what would point Python at the checkout or at another env."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONSAFEPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "PYTHONNOUSERSITE": "1"}


def _build_wheel(out: Path) -> Path:
    """``pip wheel`` of this checkout, without build isolation (hatchling from the test extra) or the network."""
    try:  # a test dependency (the test extra): its absence fails the test rather than skipping it
        import hatchling  # noqa: F401
    except ImportError:
        pytest.fail('building the wheel needs hatchling: pip install -c constraints.txt -e ".[test]"')
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out)]
    done = subprocess.run([*cmd, str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("resdsl-*.whl")
    return wheel


def _make_venv(root: Path, base: Path | str) -> Path:
    """A venv made by ``base`` that sees this interpreter's packages through a .pth in its own
    site-packages (wherever they are installed: a venv, a conda env, the system), as if installed
    there; its pip is the one among them. Returns the venv's python."""
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    site = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (own_site,) = root.glob("lib/python*/site-packages")
    (own_site / "dependencies.pth").write_text("".join(f"{p}\n" for p in site))
    return root / "bin" / "python"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv that sees the dependencies (installed already) and holds the wheel, installed
    with ``--no-deps`` from no index."""
    top = tmp_path_factory.mktemp("wheel")
    assert not top.resolve().is_relative_to(ROOT), "the venv must live outside the source tree"
    wheel = _build_wheel(top / "dist")
    _make_venv(top / "venv", sys.executable)
    (top / "work").mkdir()
    env = Venv(top / "venv", wheel, top / "work", _clean_env(top / "venv"))
    # --ignore-installed: the interpreter's own resdsl (an editable or a plain install, which the .pth
    # makes visible) must neither satisfy the requirement nor be uninstalled from the outer env
    install = ["install", "--no-deps", "--no-index", "--no-cache-dir", "--ignore-installed"]
    env.run(env.python, "-m", "pip", *install, wheel)
    return env


@pytest.mark.slow
def test_the_wheel_carries_the_grammar_and_every_shipped_spec(venv: Venv) -> None:
    names = set(zipfile.ZipFile(venv.wheel).namelist())
    assert "resdsl/_data/grammars/arch.lark" in names
    shipped = {f"resdsl/_data/specs/{p.relative_to(SPECS).as_posix()}" for p in SPECS.rglob("*.arch")}
    assert shipped and shipped <= names and "resdsl/_data/specs/std/blocks.arch" in shipped
    assert not any(n.startswith(("tests/", "resdsl/tests/")) for n in names)


@pytest.mark.slow
def test_the_venvs_resdsl_is_the_wheels(venv: Venv) -> None:
    """Not the checkout's, nor the system's editable install: the package, its grammar and its
    library all resolve inside the venv."""
    code = "import resdsl, resdsl.resources as r\nprint(resdsl.__file__, r.grammar_path(), r.library_dir(), sep='\\n')"
    paths = [Path(line) for line in venv.run(venv.python, "-c", code).splitlines()]
    assert len(paths) == 3
    for path in paths:
        assert path.resolve().is_relative_to(venv.root.resolve()), path
        assert not path.resolve().is_relative_to(ROOT), path
    assert venv.resdsl.is_file()


@pytest.mark.slow
def test_the_wheel_runs_check_build_and_list(venv: Venv) -> None:
    out = venv.run(venv.resdsl, "check", "resnet50")
    assert out.startswith("resnet50: 50 weighted layers, 25,557,032 parameters, 4.089 GMACs, output 1000")
    assert str(venv.root) in out or "site-packages" in out  # the spec it read: the wheel's

    venv.run(venv.resdsl, "build", "resnet18")
    generated = venv.work / "resnet18.py"
    assert generated.is_file()
    count = "import resnet18\nprint(sum(p.numel() for p in resnet18.resnet18().parameters()))"
    assert venv.run(venv.python, "-c", count).strip() == "11689512"  # torchvision's ResNet-18

    listed = venv.run(venv.resdsl, "list")
    first_words = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {p.stem for p in SPECS.glob("*.arch")} <= first_words


def _bare_python() -> Path | None:
    """Another interpreter of this Python version that cannot import the dependencies (networkx):
    one to stand as the base of a venv that holds them, as a venv set up by the README does."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    own = {Path(p).resolve() for p in (sys.executable, getattr(sys, "_base_executable", sys.executable))}
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]
    for folder in dict.fromkeys(folders):
        candidate = Path(folder or ".") / f"python{version}"
        if not candidate.is_file() or candidate.resolve() in own:
            continue
        probe = "import sys\ntry:\n    import networkx\nexcept ImportError:\n    sys.exit(3)\n"
        done = subprocess.run([str(candidate), "-I", "-c", probe], capture_output=True, timeout=60)
        if done.returncode == 3:
            return candidate
    return None


@pytest.mark.slow
def test_tests_that_start_python_pass_in_a_venv_whose_base_lacks_the_packages(tmp_path: Path) -> None:
    """The tests that run ``sys.executable`` with another PATH or cwd, run by a venv's python whose
    base interpreter lacks the dependencies (the README's set-up in a venv). A python linked into a
    bare folder starts as that base and loses them (``ModuleNotFoundError``); the venv sees them
    only through its own site-packages."""
    base = _bare_python()
    if base is None:
        pytest.skip(f"no second python{sys.version_info.major}.{sys.version_info.minor} without the dependencies")
    root = tmp_path / "venv"
    python = _make_venv(root, base)
    tests = [
        "tests/tools/test_graph.py::test_missing_dot_is_a_clear_error_and_writes_nothing",
        "tests/test_packaging.py::test_installed_package_runs_elsewhere",
    ]
    env = _clean_env(root) | {"PYTHONPATH": str(ROOT)}
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", tmp_path / "t"]
    out = _run([*cmd, *tests], ROOT, env)
    assert "2 passed" in out, out
