"""The benchmark suite: run every benchmark in benchmarks/ and write docs/benchmarks.md.

A benchmark is ``benchmarks/<name>.py`` (names starting with ``_`` are helpers; ``run`` and
``__main__`` are this suite). Each runs in a fresh process with ``--json PATH`` (and
``--quick`` when asked) and writes rows of ratios measured side by side in one run; the suite
renders them, with the machine's core count, load and library versions at the top, into one
Markdown file (written atomically). A benchmark that fails is reported as failed, with the
end of its output, and the suite exits 1 after writing the rest.

    python -m benchmarks [--quick] [--only NAME ...] [--output docs/benchmarks.md] [--list]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOT_BENCHMARKS = {"run", "__main__", "__init__"}


def discover(folder: Path = HERE) -> list[str]:
    """Every benchmark script's name, sorted."""
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem not in NOT_BENCHMARKS)


def run_one(name: str, quick: bool, timeout: float, folder: Path = HERE) -> dict[str, Any]:
    """Run one benchmark as a subprocess; its JSON, or a failure record."""
    with tempfile.TemporaryDirectory(prefix="resdsl-bench-") as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, str(folder / f"{name}.py"), "--json", str(out), *(["--quick"] if quick else [])]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"benchmark": name, "error": f"timed out after {timeout:.0f} s"}
        if done.returncode != 0 or not out.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-8:]
            return {"benchmark": name, "error": f"exit status {done.returncode}", "output": tail}
        result: dict[str, Any] = json.loads(out.read_text())
        result["output"] = done.stdout.splitlines()
        return result


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# the instruction sets torch's and onnxruntime's CPU kernels choose between
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu(cpuinfo: str | None = None) -> tuple[str, str]:
    """The CPU's model name and which of ISA_FLAGS it has, from /proc/cpuinfo (Linux); elsewhere
    the platform's processor string and "unknown"."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine(), "unknown (no /proc/cpuinfo)"
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    have = [f for f in ISA_FLAGS if f in flags]
    return model, ", ".join(have) or "none of " + ", ".join(ISA_FLAGS)


def machine() -> dict[str, str]:
    """What the figures depend on: CPU model and instruction sets, cores, load, library versions
    (read without importing torch)."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    model, isa = cpu()
    return {
        "CPU": model,
        "instruction sets (of " + ", ".join(ISA_FLAGS) + ")": isa,
        "CPU cores": str(os.cpu_count()),
        "load average (1, 5, 15 min) at the start": load,
        "architecture": platform.machine(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"),
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(results: list[dict[str, Any]], facts: dict[str, str], quick: bool, when: str) -> str:
    """docs/benchmarks.md's text."""
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m benchmarks{' --quick' if quick else ''}` on {when}. Every figure is a ratio of two",
        "things measured side by side in the same run (the median of several interleaved repeats, with",
        "the smallest and largest repeat as the spread); no absolute time is a target.",
        "",
        *(["`--quick`: fewer repeats and smaller inputs than the full run; a smoke test.", ""] if quick else []),
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {_cell(v)} |" for k, v in facts.items()),
    ]
    for result in results:
        name = result["benchmark"]
        lines += ["", f"## {name}", ""]
        if "error" in result:
            lines += [f"**Failed** ({_cell(result['error'])}); the end of its output:", "", "```"]
            lines += [*result.get("output", []), "```"]
            continue
        lines += [f"{result['title']} (`benchmarks/{name}.py`)", ""]
        lines += ["| case | measure | ratio (median) | spread | target | met |", "|---|---|---:|---|---|---|"]
        for r in result["rows"]:
            met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
            case = _cell(r["case"]) + (f" ({_cell(r['detail'])})" if r.get("detail") else "")
            lines.append(
                f"| {case} | {_cell(r['measure'])} | {r['ratio']:.3f} | {r['low']:.3f} - {r['high']:.3f} "
                f"| {_cell(r['target'] or '-')} | {met} |"
            )
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (a smoke test)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"), help="the Markdown file to write")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one benchmark may take")
    parser.add_argument("--list", action="store_true", help="print the benchmarks found and stop")
    args = parser.parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; found: {', '.join(names)}")
    chosen = [n for n in names if not args.only or n in args.only]
    facts = machine()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for name in chosen:
        print(f"running {name}{' --quick' if args.quick else ''} ...", file=sys.stderr, flush=True)
        result = run_one(name, args.quick, args.timeout)
        status = result.get("error") or f"{len(result['rows'])} rows"
        print(f"  {name}: {status}", file=sys.stderr, flush=True)
        results.append(result)
    write_atomic(Path(args.output), render(results, facts, args.quick, when))
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
