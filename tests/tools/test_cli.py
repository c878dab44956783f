"""The command line: exit codes, output, overrides, and no torch import for `check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from resdsl.semantics.limits import human_bytes
from resdsl.tools.cli import cli
from tests.conftest import ROOT, shipped_spec_files


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=120
    )


def test_check_all_shipped_specs_is_clean() -> None:
    result = CliRunner().invoke(cli, ["check", *map(str, shipped_spec_files())])
    assert result.exit_code == 0, result.output
    assert "resnet50: 50 weighted layers, 25,557,032 parameters, 4.089 GMACs, output 1000" in result.output
    assert "resnet110: 110 weighted layers, 1,727,962 parameters" in result.output


def test_shipped_names_work_from_any_directory(tmp_path: Path) -> None:
    done = run("check", "resnet110", "resnet18", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "resnet110: 110 weighted layers, 1,727,962 parameters" in done.stdout
    assert "Traceback" not in done.stderr


def test_check_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom resdsl.tools.cli import main\n"
        "try:\n    main(['check', 'resnet50'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'check imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_main_leaves_what_the_imports_made_out_of_garbage_collection() -> None:
    # a command's collections then walk only what it made (a few percent of a check)
    code = (
        "import gc\nfrom resdsl.tools.cli import main\nassert gc.get_freeze_count() == 0\n"
        "try:\n    main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert gc.get_freeze_count() > 0, 'nothing frozen'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_set_and_input() -> None:
    result = CliRunner().invoke(cli, ["check", "resnet110", "--set", "num_classes=100", "--input", "3x64x64"])
    assert result.exit_code == 0 and "output 100" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["check", "resnet50", "--set", "num_classes"],
        ["check", "resnet50", "--input", "3by3"],
        ["check", "resnet50", "--bogus"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def test_errors_exit_1_without_traceback(tmp_path: Path) -> None:
    done = run("check", str(tmp_path / "missing.arch"))
    assert done.returncode == 1 and "error[E004]" in done.stderr and "Traceback" not in done.stderr
    done = run("check", "no_such_network")
    assert done.returncode == 1 and "error[E104]" in done.stderr
    bad = tmp_path / "bad.arch"
    bad.write_bytes(b"network n() {\xff\xfe }")
    done = run("check", str(bad))
    assert done.returncode == 1 and "E004" in done.stderr and "Traceback" not in done.stderr
    done = run("check", "resnet50", "--set", "num_clases=3")
    assert done.returncode == 1 and "E216" in done.stderr


CONTRACT_KEYS = ["file", "line", "column", "end_line", "end_column", "severity", "code", "message", "notes", "fixes"]
NETWORK_KEYS = [
    "name",
    "file",
    "weighted_layers",
    "parameters",
    "macs",
    "input",
    "output",
    "activation_bytes",
    "features",
]


def test_json_carries_the_figures_and_the_diagnostics() -> None:
    """`check --json` is one object (docs/cli.md): the networks' figures beside the diagnostics,
    each diagnostic with the contract keys of DESIGN.md plus its fixes."""
    result = CliRunner().invoke(cli, ["check", "--json", "resnet18"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert list(report) == ["version", "networks", "diagnostics", "errors", "warnings"] and report["version"] == 1
    (net,) = report["networks"]
    assert list(net) == NETWORK_KEYS and report["diagnostics"] == [] and report["errors"] == report["warnings"] == 0
    assert (net["name"], net["weighted_layers"], net["parameters"], net["macs"]) == (
        "resnet18",
        18,
        11_689_512,
        1_814_073_344,
    )
    assert net["input"] == [3, 224, 224] and net["output"] == [1000] and net["features"] == []
    assert net["file"].endswith("resnet18.arch") and isinstance(net["activation_bytes"], int)
    broken = ROOT / "tests" / "broken" / "many_errors.arch"
    result = CliRunner().invoke(cli, ["check", "--json", str(broken)])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["networks"] == [] and (report["errors"], report["warnings"]) == (2, 0)
    assert [d["code"] for d in report["diagnostics"]] == ["E203", "E201"]
    first = report["diagnostics"][0]
    assert list(first) == CONTRACT_KEYS and (first["line"], first["column"], first["severity"]) == (3, 22, "error")
    assert (
        first["file"].endswith("tests/broken/many_errors.arch")
        and first["notes"] == ["help: did you mean 'kernel'?"]
        and first["fixes"] != []
    )
    fix = first["fixes"][0]
    assert list(fix) == ["title", "safe", "edits"] and fix["safe"] is False
    assert list(fix["edits"][0]) == ["file", "line", "column", "end_line", "end_column", "text"]
    assert fix["edits"][0]["text"] == "kernel" and fix["edits"][0]["line"] == 3


def test_json_and_text_carry_the_same_figures(tmp_path: Path) -> None:
    spec = tmp_path / "two.arch"
    spec.write_text(
        'import "std/blocks.arch"\nnetwork a() {\n    input 3 x 16 x 16\n    conv1 = conv(8, k=3, p=1, bias=true)\n'
        "    bn1 = batchnorm()\n    layer1 = stage(basic(8), repeat=2)\n    fc = linear(3)\n}\n"
        "network b = a()\n"
    )
    args = ["check", str(spec), "resnet20", "--features", "layer1"]
    text = CliRunner().invoke(cli, args)
    report = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert text.exit_code == 0 and [n["name"] for n in report["networks"]] == ["a", "b", "resnet20"]
    lines = [line for line in text.stdout.splitlines() if not line.startswith("  ")]
    for line, net in zip(lines, report["networks"], strict=True):
        shown = f"{net['output'][0]}" if len(net["output"]) == 1 else " x ".join(map(str, net["output"]))
        assert line.startswith(
            f"{net['name']}: {net['weighted_layers']} weighted layers, {net['parameters']:,} parameters, "
        )
        assert f"{net['macs'] / 1e9:.3f} GMACs, output {shown}, " in line and f"({net['file']})" in line
        assert f"{human_bytes(net['activation_bytes'])} activations" in line
    features = [line.strip() for line in text.stdout.splitlines() if line.startswith("  feature ")]
    described = [
        f"feature {f['name']}: {' x '.join(map(str, f['shape']))}, stride {f['stride']}"
        for n in report["networks"]
        for f in n["features"]
    ]
    assert features == described and len(described) == 3
    (w401,) = report["diagnostics"]  # the conv's bias before a batchnorm, once for the line
    assert w401["code"] == "W401" and report["warnings"] == 1 and "warning[W401]" in text.output
    assert w401["fixes"][0]["safe"] is True and w401["fixes"][0]["edits"][0]["text"] == ""


def test_json_of_a_file_without_networks_and_of_a_missing_file(tmp_path: Path) -> None:
    lib = tmp_path / "lib.arch"
    lib.write_text("block ok(c) {\n    conv1 = conv(c, k=3, p=1)\n}\n")
    report = json.loads(CliRunner().invoke(cli, ["check", "--json", str(lib)]).stdout)
    assert report == {"version": 1, "networks": [], "diagnostics": [], "errors": 0, "warnings": 0}
    missing = CliRunner().invoke(cli, ["check", "--json", str(tmp_path / "nope.arch")])
    (d,) = json.loads(missing.stdout)["diagnostics"]
    assert missing.exit_code == 1 and d["code"] == "E004" and d["file"] == str(tmp_path / "nope.arch")


def test_summary_table_and_json() -> None:
    result = CliRunner().invoke(cli, ["summary", "resnet18", "--json"])
    data = json.loads(result.stdout)
    assert data["total_params"] == 11_689_512 and data["weighted_layers"] == 18
    row = next(r for r in data["layers"] if r["name"] == "layer2.0.downsample")
    assert row["op"] == "residual (projection, stride 2)" and row["params"] == 64 * 128 + 256
    result = CliRunner().invoke(cli, ["summary", "resnet20"])
    assert result.exit_code == 0 and "269,722" in result.output and "layer3.2.conv2" in result.output


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("resdsl, version")
    assert "check" in run("--help").stdout


# -- everyday mistakes: each a clear message or simply working --------------------------------


def test_unknown_network_in_a_file_is_an_error() -> None:
    result = CliRunner().invoke(cli, ["check", "resnet50", "--network", "foo"])
    assert result.exit_code == 1 and "E104" in result.output and "defines no network 'foo'" in result.output


def test_a_misspelt_shipped_name_gets_a_suggestion() -> None:
    result = CliRunner().invoke(cli, ["check", "resnet5"])
    assert result.exit_code == 1 and "did you mean 'resnet56' or 'resnet50'" in result.output
    assert "resnext101_64x4d" not in result.output  # not every shipped name


def test_build_creates_the_output_folder(tmp_path: Path) -> None:
    target = tmp_path / "models" / "deep" / "my_net.py"
    result = CliRunner().invoke(cli, ["build", "resnet20", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.is_file() and target.read_text().startswith("# Generated by resdsl")
    blocked = tmp_path / "file"
    blocked.write_text("x")
    result = CliRunner().invoke(cli, ["build", "resnet20", "-o", str(blocked / "net.py")])
    assert result.exit_code == 1 and "E502" in result.output and "Traceback" not in result.output


def test_repeated_warnings_are_grouped_counted_and_silenceable() -> None:
    result = CliRunner().invoke(cli, ["check", "resnet50", "--input", "3x16x16"])
    assert result.exit_code == 0
    assert result.output.count("warning[W403]") == 3  # one per library line, not 26
    assert "9 times: layer3.0.bn2, layer3.1.bn2" in result.output
    assert "0 errors, 3 warnings" in result.output
    quiet = CliRunner().invoke(cli, ["check", "resnet50", "--input", "3x16x16", "--ignore", "W403"])
    assert quiet.exit_code == 0 and "W403" not in quiet.output and "warning" not in quiet.output


def test_check_reports_the_size_estimate_and_limits_can_be_raised(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "resnet50"])
    assert "74.7 MiB activations per sample" in result.output
    spec = tmp_path / "wide.arch"
    spec.write_text("network wide() {\n  input 3 x 4 x 4\n  a = conv(30000, k=1)\n  b = conv(70000, k=1)\n}\n")
    refused = CliRunner().invoke(cli, ["build", str(spec), "-o", str(tmp_path / "wide.py")])
    assert refused.exit_code == 1 and "E603" in refused.output and "--max-params" in refused.output
    assert not (tmp_path / "wide.py").exists()
    raised = CliRunner().invoke(cli, ["check", str(spec), "--max-params", "3000000000"])
    assert raised.exit_code == 0, raised.output


def test_a_library_file_gets_every_check_that_needs_no_network(tmp_path: Path) -> None:
    lib = tmp_path / "lib.arch"
    lib.write_text(
        'import "std/blocks.arch"\n'
        "block mine(c, stride = 1) {\n  conv1 = convv(c)\n  bn1 = batchnorm(epss=1)\n  x = widht * 2\n"
        "  forward = basic(c, strides=2)\n  residual(projection, project_from=nothing)\n}\n"
    )
    result = CliRunner().invoke(cli, ["check", "--json", str(lib)])
    assert result.exit_code == 1
    found = [(d["code"], d["line"]) for d in json.loads(result.stdout)["diagnostics"]]
    assert found == [("E202", 3), ("E203", 4), ("E201", 5), ("E505", 6), ("E203", 6), ("E201", 7)]
    clean = tmp_path / "clean.arch"
    clean.write_text("block ok(c) {\n  conv1 = conv(c, k=3, p=1)\n  bn1 = batchnorm()\n  relu\n}\n")
    done = CliRunner().invoke(cli, ["check", str(clean)])
    assert done.exit_code == 0 and "no networks to check" in done.output


def test_a_hundred_distinct_errors_are_all_reported_in_order(tmp_path: Path) -> None:
    lines = [f"  c{i} = conv({i + 1}, kernal=3)" if i % 2 else f"  v{i} = unknown{i} + 1" for i in range(100)]
    spec = tmp_path / "hundred.arch"
    spec.write_text("network n() {\n  input 3 x 8 x 8\n" + "\n".join(reversed(lines)) + "\n}\n")
    result = CliRunner().invoke(cli, ["check", "--json", str(spec)])
    found = [(d["line"], d["column"]) for d in json.loads(result.stdout)["diagnostics"]]
    assert len(found) == 100 and found == sorted(found)


def test_one_bad_set_value_gives_one_error_per_library_line_naming_the_override() -> None:
    """Regression: `--set norm=groupnorm(7)` printed 17 near-identical errors (about 120 lines), all
    pointing into the shipped library and none at the override."""
    result = CliRunner().invoke(cli, ["check", "resnet18", "--set", "norm=groupnorm(7)"])
    assert result.exit_code == 1
    headers = [line for line in result.output.splitlines() if "error[E302]" in line]
    # the stem's bn1, the basic block's bn1 and bn2, and the projection shortcut's norm (its steps
    # are checked since shortcuts are realised from one description)
    assert len(headers) == 4 and "the projection shortcut's groupnorm: 128 channels" in headers[2]
    assert result.output.count("8 times: layer1.0.bn1, layer1.1.bn1, layer2.0.bn1, layer2.1.bn1, ...") == 1
    assert result.output.count("groups=7 comes from --set norm=groupnorm(7)") == 3
    assert len(result.output.splitlines()) < 35
    as_json = CliRunner().invoke(cli, ["check", "resnet18", "--set", "norm=groupnorm(7)", "--json"])
    assert len(json.loads(as_json.stdout)["diagnostics"]) == 20  # every instance, for tools
    untraced = CliRunner().invoke(cli, ["check", "resnet20", "--set", "shortcut=identity"])
    assert (
        "checked with --set shortcut=identity" in untraced.output and "2 times: layer2.0, layer3.0" in untraced.output
    )


def test_build_of_a_file_without_a_network_says_so(tmp_path: Path) -> None:
    """Regression: an empty file to `build` said "defines networks none; say which one"."""
    empty = tmp_path / "empty.arch"
    empty.write_text("")
    result = CliRunner().invoke(cli, ["build", str(empty), "-o", str(tmp_path / "out.py")])
    assert result.exit_code == 1 and f"{empty}: error[E104]: {empty} defines no network" in result.output
    assert "none" not in result.output and not (tmp_path / "out.py").exists()
    two = tmp_path / "two.arch"
    two.write_text("network a() {\n  input 3 x 8 x 8\n}\nnetwork b() {\n  input 3 x 8 x 8\n}\n")
    both = CliRunner().invoke(cli, ["build", str(two), "-o", str(tmp_path / "out.py")])
    assert "defines networks a, b; say which one" in both.output and "--network NAME" in both.output


def test_a_file_that_is_not_utf8_is_reported_where_it_breaks(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.arch"
    spec.write_bytes("network n() {\n  input 3 x 8 x 8\n  # café\n}\n".encode("latin-1"))
    for command in (["check"], ["fmt", "--check"]):
        result = CliRunner().invoke(cli, [*command, str(spec)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert (
            f"{spec}:3:8: error[E004]: cannot read {spec}: byte 0xe9 at line 3, column 8 is not UTF-8" in result.output
        )
        assert "   3 |   # caf\ufffd" in result.output and "in Latin-1 it would be 'é'" in result.output


# -- the families' mistakes (issue #18), as a user meets them on the command line ------------------


@pytest.mark.parametrize(("rate", "got"), [("1.0", "got 1.0"), ("-0.1", "got -0.0058823530562222")])
def test_a_drop_path_rate_outside_0_1_is_refused_at_the_blocks_line(rate: str, got: str) -> None:
    """ConvNeXt's last block takes the whole rate, its first after 0 one 17th of it (in float32, as
    timm's linspace): 1.0 and -0.1 are both outside [0, 1) (at 1 the branch would never train),
    and the refusal says where and why."""
    result = CliRunner().invoke(cli, ["check", "convnext_tiny", "--set", f"drop_path_rate={rate}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    first = result.output.splitlines()[0]
    assert first.endswith(f"std/convnext.arch:29:15: error[E223]: drop_path argument 'p' must be in [0, 1), {got}")
    assert f"checked with --set drop_path_rate={rate}" in result.output
    assert "help: a drop-path rate is the probability of dropping the branch in training, in [0, 1)" in result.output


def test_a_drop_path_rate_below_1_is_accepted() -> None:
    result = CliRunner().invoke(cli, ["check", "convnext_tiny", "--set", "drop_path_rate=0.99"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("width", "group_w"), [(28, 8), (24, 7)])
def test_a_group_width_that_does_not_divide_a_regnet_width_names_both(width: int, group_w: int, tmp_path: Path) -> None:
    """regnet_bottleneck divides its width by the group width exactly: a width the group width does
    not divide is refused at the library's line, naming both numbers and the instance. (With the old
    c // group_w, 28 // 8 = 3 groups was refused as "not divisible by groups=3", naming neither, and
    24 channels at group width 7 silently became 3 groups of 8: another network.)"""
    spec = tmp_path / "my_regnet.arch"
    text = (ROOT / "tests" / "broken" / "regnet_group_width.arch").read_text()
    spec.write_text(
        text.replace("regnet_bottleneck(28, in_channels, 8)", f"regnet_bottleneck({width}, in_channels, {group_w})")
    )
    result = CliRunner().invoke(cli, ["check", str(spec)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[0].endswith(
        f"std/regnet.arch:37:57: error[E208]: {width} / {group_w} is not a whole number (c / group_w)"
    )
    assert f"in s1.b1, a regnet_bottleneck made at {spec}:7:18" in result.output
    assert "help: '/' on whole numbers must divide exactly: choose numbers that divide" in result.output


def test_regnets_own_widths_follow_any_group_width() -> None:
    """regnet(...) makes every stage's width a multiple of its group width (timm's
    adjust_widths_groups_comp), so --set group_w=7 is a valid RegNet: every grouped 3x3 has groups
    of exactly 7 channels."""
    result = CliRunner().invoke(cli, ["check", "regnetx_002", "--set", "group_w=7", "--json"])
    assert result.exit_code == 0, result.output
    import resdsl

    net = resdsl.compile("regnetx_002", params={"group_w": 7})
    grouped = [layer for layer in net.layers() if layer.op == "conv" and layer.attrs["groups"] > 1]
    assert grouped and all(layer.shape is not None and layer.shape[0] == 7 * layer.attrs["groups"] for layer in grouped)


def test_a_concatenation_whose_maps_differ_names_both_maps() -> None:
    result = CliRunner().invoke(cli, ["check", str(ROOT / "tests" / "broken" / "concat_maps_differ.arch")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].endswith(
        "concat_maps_differ.arch:6:5: error[E309]: concat: the maps differ: block input 32 x 32, main branch 16 x 16"
    )
    assert lines[1:3] == ["  block input  16 x 32 x 32", "  main branch  8 x 16 x 16"]
    assert "help: channels may differ, the rest must agree" in result.output


def test_too_many_heads_for_the_width_is_reported_at_the_specs_line() -> None:
    done = run("check", "vit_tiny_patch16_224", "--set", "num_heads=5")
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    first = (done.stdout + done.stderr).splitlines()[0]
    line = next(
        i for i, text in enumerate((ROOT / "specs/std/vit.arch").read_text().splitlines(), 1) if "attention(" in text
    )
    assert first.startswith(f"specs/std/vit.arch:{line}:") and "error[E311]" in first
    assert "embed_dim 192 is not divisible by num_heads=5 (192 / 5 = 38.4)" in first
