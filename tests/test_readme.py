"""The README and docs stay true: the tour checks as written, CI runs the set-up commands, and
every command output they show is what the command prints today."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import resdsl
from resdsl.resources import library_dir
from tests.conftest import ROOT

PACKAGE_ROOT = Path(resdsl.__file__).resolve().parent.parent  # the resdsl these tests import

README = (ROOT / "README.md").read_text()


def test_tour_spec_checks_as_written(tmp_path: Path) -> None:
    (block,) = re.findall(r"```\n(# my_net\.arch\n.*?)```", README, flags=re.S)
    spec = tmp_path / "my_net.arch"
    spec.write_text(block)
    result = resdsl.check(spec)
    assert result.diagnostics == []
    assert {n.name: n.weighted_layers for n in result.networks} == {"my_net": 20, "my_net_deep": 32}


def test_the_serving_example_runs_an_exported_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's onnxruntime session, on a file exported with the default (dynamic) batch."""
    pytest.importorskip("onnxruntime")
    (code,) = re.findall(r"```python\n(import numpy as np\nimport onnxruntime as ort\n.*?)```", README, flags=re.S)
    resdsl.export_onnx("resnet50", tmp_path / "resnet50.onnx")
    namespace: dict[str, object] = {}
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), namespace)
    assert getattr(namespace["logits"], "shape", None) == (8, 1000)


def test_ci_runs_the_readme_commands() -> None:
    setup = re.search(r"## Set-up.*?```\n(.*?)```", README, flags=re.S)
    assert setup is not None
    install, tests = setup.group(1).strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in [*install.split(" && "), tests]:
        assert command in ci, command


# -- Shown command output: every ``$ resdsl ...`` transcript in the README and docs/ is what the
# command prints today. A fenced block whose first line is ``# NAME.arch`` (or ``# NAME.py``) is that file, written
# where the transcripts of its document run; an output line ``...`` stands for any lines, ``...``
# inside a line for any text, and ``.../`` for any leading folders.

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def transcripts(doc: Path) -> tuple[dict[str, str], list[list[tuple[str, list[str]]]]]:
    """The files a document shows (name -> text) and its transcripts: per block, (command, output lines)."""
    files: dict[str, str] = {}
    blocks = []
    for body in FENCE.findall(doc.read_text(encoding="utf-8")):
        first = body.split("\n", 1)[0]
        if re.fullmatch(r"# [\w.-]+\.(arch|py)", first):  # a spec, or a model `resdsl import` reads
            files[first[2:]] = body
        elif first.startswith("$ resdsl "):
            steps: list[tuple[str, list[str]]] = []
            for line in body.rstrip("\n").split("\n"):
                if line.startswith("$ "):
                    steps.append((line[2:], []))
                else:
                    steps[-1][1].append(line)
            blocks.append(steps)
    return files, blocks


def shown_pattern(lines: list[str]) -> re.Pattern[str]:
    parts = []
    for line in lines:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        text = re.escape(line.rstrip()).replace(re.escape(".../"), "(?:[^\n]*?/)?")
        parts.append(text.replace(re.escape("..."), "[^\n]*?") + "\n")
    return re.compile("".join(parts))


def run_shown(command: str, cwd: Path) -> str:
    """One shown command run in ``cwd`` with this checkout's resdsl and Python, stdout and stderr
    together as a terminal shows them; the checkout's path is left out, as a user's would differ."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")])}
    env["PYTHONUNBUFFERED"] = "1"
    shell = f'resdsl() {{ "{sys.executable}" -m resdsl "$@"; }}; python() {{ "{sys.executable}" "$@"; }}; {command}'
    done = subprocess.run(
        ["bash", "-c", shell],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    out = done.stdout
    for prefix in (f"{library_dir().parent}/", f"{ROOT}/", f"{cwd}/"):  # the shipped library, wherever it is
        out = out.replace(prefix, "")
    return "".join(line.rstrip() + "\n" for line in out.rstrip("\n").split("\n")) if out.strip() else ""


def prepare(command: str, cwd: Path) -> None:
    """What a shown command reads that no document shows: a checkpoint to build with."""
    if "weights/resnet50.safetensors" in command and not (cwd / "weights" / "resnet50.safetensors").exists():
        (cwd / "weights").mkdir(exist_ok=True)
        resdsl.save_weights(resdsl.build_model("resnet50"), cwd / "weights" / "resnet50.safetensors")


CASES = [(doc, i) for doc in DOCS for i in range(len(transcripts(doc)[1]))]


def test_the_docs_show_transcripts() -> None:
    shown = {doc.name: len(transcripts(doc)[1]) for doc in DOCS}
    assert shown["README.md"] >= 2 and shown["cli.md"] >= 6, shown


@pytest.mark.parametrize(("doc", "index"), CASES, ids=[f"{d.name}-{i}" for d, i in CASES])
def test_shown_output_is_what_the_command_prints(doc: Path, index: int, tmp_path: Path) -> None:
    files, blocks = transcripts(doc)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    for command, lines in blocks[index]:
        prepare(command, tmp_path)
        got = run_shown(command, tmp_path)
        assert shown_pattern(lines).fullmatch(got), (
            f"{doc.name}: $ {command}\n--- shown\n" + "\n".join(lines) + f"\n--- printed\n{got}"
        )
