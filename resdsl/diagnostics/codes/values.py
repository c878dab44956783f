"""Catalog entries: names, calls and values (E2xx)."""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry


def net(body: str, params: str = "") -> str:
    """A one-network spec with a 3 x 32 x 32 input around ``body`` (statements, one a line)."""
    lines = "".join(f"    {line}\n" for line in body.strip("\n").split("\n"))
    return f"network n({params}) {{\n    input 3 x 32 x 32\n{lines}}}\n"


# a block holding a stage whose blocks read net_count (E218)
_NESTED = (
    "block inner(c, drop = 0.0) {\n    conv1 = conv(c, k=3, p=1)\n    drop_path(drop)\n    residual(identity)\n}\n\n"
    "block group(c, depth) {\n    blocks = stage(inner(c, drop=0.1 * net_index / net_count), repeat=depth)\n}\n\n"
)


def _dropped(rate: str) -> str:
    """A residual block whose branch is dropped at the network's ``rate`` (E223)."""
    block = (
        "block b(c, drop = 0.0) {\n    conv1 = conv(c, k=3, p=1)\n    drop_path(drop)\n    residual(identity)\n}\n\n"
    )
    return block + net("conv1 = conv(8, k=3, p=1)\nlayer1 = stage(b(8, drop=rate), repeat=2)", f"rate = {rate}")


# a network with a layer-valued parameter named like build_model's own norm option (E219)
_NORMED = net(
    "conv1 = conv(8, k=3, p=1)\nbn1 = norm()\nrelu\npool = global_avgpool()\nfc = linear(10)", "norm = batchnorm"
)

ENTRIES = [
    Entry(
        "E201",
        "an unknown name (a parameter, value, shortcut kind, or the layer `project_from` or "
        "`radix_combine(splits=)` names); a close match is suggested",
        "A name that is neither a parameter of the block or network, a value assigned earlier, a "
        "shortcut kind, nor (for project_from, or a merge's splits=) a layer of the block made before "
        "it. Where a shortcut kind is expected "
        "(residual(...), shortcut=) the help lists the kinds; a block of the shipped library that the "
        "file does not import gets the import line to add, as for E202.",
        "block b(planes) {\n    conv1 = conv(plane)\n}\n\n" + net("x = b(16)"),
        "block b(planes) {\n    conv1 = conv(planes)\n}\n\n" + net("x = b(16)"),
    ),
    Entry(
        "E202",
        "a call to something that is neither an op, a block, `stage` nor `residual`",
        "The called name is not a built-in op (conv, batchnorm, relu, ...), a block defined or "
        "imported in the file, nor stage/residual/sequential/gate. A close match is suggested; a block "
        "of the shipped library (basic, bottleneck, ...) that the file forgot to import gets the file "
        "that defines it and the import line to add, which `check --fix` inserts when it is certain "
        "(one shipped file defines the name, the file's own imports all resolve, and nothing the import "
        "brings clashes with the file's own definitions).",
        net("conv1 = convv(64)"),
        net("conv1 = conv(64)"),
    ),
    Entry(
        "E203",
        "an argument no parameter accepts (also a stage setting `stride`/`shortcut` on a block without it)",
        "A keyword argument that the op or block does not have. docs/language.md lists every op's "
        "parameters; a close match is suggested.",
        net("conv1 = conv(64, kernal=3)"),
        net("conv1 = conv(64, k=3)"),
    ),
    Entry(
        "E204",
        "a required argument is missing",
        "A parameter without a default was given no value: conv needs its output channels, a block "
        "its parameters without '= default'.",
        net("conv1 = conv(k=3)"),
        net("conv1 = conv(16, k=3)"),
    ),
    Entry(
        "E205",
        "an argument of the wrong type",
        "A value of the wrong kind: a decimal where a whole number is needed, a layer where a block "
        "is needed (stage repeats a block), a list where a number is needed, a stage inside "
        "sequential(...) or gate(...) (which hold ops, blocks and sequential groups).",
        net("conv1 = conv(64, k=2.5)"),
        net("conv1 = conv(64, k=3)"),
    ),
    Entry(
        "E206",
        "two layers (or a layer and a value) with the same name in one block or network",
        "Layer names become module attributes and state_dict keys, so they must be unique within "
        "their block or network. A residual's shortcut module is named too (`downsample`, or "
        '`name="..."`), so a second projecting residual in a block needs a name of its own; '
        "`residual(identity)`, which makes no module, needs none.",
        net("conv1 = conv(16)\nconv1 = conv(32)"),
        net("conv1 = conv(16)\nconv2 = conv(32)"),
    ),
    Entry(
        "E207",
        "a block uses itself, directly or through others; or network aliases refer to each other",
        "A block would unroll forever. Repetition is written with stage(block(...), repeat=n).",
        "block a(c) {\n    x = a(c)\n}\n\n" + net("y = a(16)"),
        "block a(c) {\n    x = conv(c)\n}\n\n" + net("y = stage(a(16), repeat=2)"),
    ),
    Entry(
        "E208",
        "`/` on whole numbers that do not divide exactly (use `//` to round down)",
        "Channel arithmetic must be exact: `/` on whole numbers is refused when it leaves a "
        "remainder; write `//` when rounding down is meant. A library block divides with `/` "
        "where a remainder is a mistake: RegNet's `regnet_bottleneck(c, cin, group_w)` has "
        "`c / group_w` groups, so a group width that does not divide the width is refused (the "
        "message names both numbers) instead of silently becoming another group width; make the "
        "width a multiple of the group width (`regnet(...)` does so for every stage, as timm's "
        "adjust_widths_groups_comp).",
        net("conv1 = conv(planes / 3)", "planes = 64"),
        net("conv1 = conv(planes // 3)", "planes = 64"),
    ),
    Entry(
        "E209",
        "division by zero",
        "A `/`, `//` or `%` whose right side evaluates to zero, often a parameter at its default.",
        net("conv1 = conv(64 // (groups - 1))", "groups = 1"),
        net("conv1 = conv(64 // groups)", "groups = 1"),
    ),
    Entry(
        "E210",
        "more positional arguments than the op or block has parameters",
        "An op or block called with more values in order than it has parameters.",
        net("act = relu(1)"),
        net("act = relu()"),
    ),
    Entry(
        "E211",
        "a statement on its own that is not a layer",
        "A statement that is not `name = ...` must be a layer (an op or block call, or a bare op "
        "name like relu); a value on its own, such as a parameter's name, does nothing.",
        net("conv1 = conv(16)\nrelu\nwidth", "width = 32"),
        net("conv1 = conv(16)\nrelu\nconv2 = conv(width)", "width = 32"),
    ),
    Entry(
        "E212",
        "arithmetic on values that do not support it",
        "An operator applied to values it does not work on: multiplying a string, indexing a number, "
        "adding a list to a number.",
        net('conv1 = conv(64 * "2")'),
        net("conv1 = conv(64 * 2)"),
    ),
    Entry(
        "E213",
        "a value out of range: a kernel below 1, a negative padding, an index past the end, a bad input shape",
        "The value has the right type but no layer can be made from it.",
        net("conv1 = conv(64, k=0)"),
        net("conv1 = conv(64, k=1)"),
    ),
    Entry(
        "E214",
        "the same argument given twice (also through an alias such as `s` and `stride`)",
        "An argument given twice, by position and keyword or by a parameter and its alias "
        "(conv's k/kernel_size, s/stride, p/padding).",
        net("conv1 = conv(64, s=2, stride=2)"),
        net("conv1 = conv(64, s=2)"),
    ),
    Entry(
        "E215",
        "a network without an `input` shape (pass `--input` or add `input 3 x 224 x 224`)",
        "Shapes are computed from the input, so every network needs one: an `input C x H x W` "
        "statement, or --input on the command line.",
        "network n() {\n    conv1 = conv(16)\n}\n",
        "network n() {\n    input 3 x 32 x 32\n    conv1 = conv(16)\n}\n",
    ),
    Entry(
        "E216",
        "`--set KEY=...` names no parameter of the networks being checked",
        "An override on the command line (or the API's overrides) for a parameter that the "
        "network does not have; a close match is suggested.",
        net("fc = linear(num_classes)", "num_classes = 10"),
        net("fc = linear(num_classes)", "num_classes = 10"),
        argv=("check", "example.arch", "--set", "num_class=100"),
        fix_argv=("check", "example.arch", "--set", "num_classes=100"),
    ),
    Entry(
        "E217",
        "a statement in the wrong place: `input`/`meta` in a block, `residual(...)` used as a value, a second `input`",
        "input and meta belong to networks, once each; residual(...) is a statement of a block, not a value to assign.",
        "block b(c) {\n    input 3 x 32 x 32\n    conv1 = conv(c)\n}\n\n" + net("x = b(16)"),
        "block b(c) {\n    conv1 = conv(c)\n}\n\n" + net("x = b(16)"),
    ),
    Entry(
        "E218",
        "`net_count` read in a stage nested in a stage's blocks, whose size depends on the outer blocks' `in_channels`",
        "net_count is counted before any layer is placed, depth by depth of stage nesting. in_channels "
        "is known only while placing, so when the outer stage's block arguments size the inner stages "
        "from it, the inner total cannot be known in advance.",
        _NESTED + net("stem = conv(16, k=3, p=1)\ngroups = stage(group(16, depth=in_channels // 8), repeat=2)"),
        _NESTED + net("stem = conv(16, k=3, p=1)\ngroups = stage(group(16, depth=2), repeat=2)"),
    ),
    Entry(
        "E219",
        "a spec parameter passed to the Python API where one of its own options of that name is meant "
        '(`build_model(spec, norm="groupnorm(32)")`), or given twice',
        "`build_model`, `compile`, `generate` and `export_onnx` take the spec's parameters in "
        "`params={...}`, and as keywords where a name is none of their options. A keyword that is an "
        "option (norm, mode, head, features, ...) always means the option; given a value the option does "
        "not take while the spec has a parameter of that name, it is refused before anything is built. "
        'Pass the parameter in params: `build_model("example.arch", params={"norm": "groupnorm(4)"})`.',
        _NORMED,
        _NORMED,
        runs=False,
        why='given by the Python API only: build_model("example.arch", norm="groupnorm(4)") gives it and '
        'params={"norm": "groupnorm(4)"} is the fix; tests/api/test_api.py runs both on this example',
    ),
    Entry(
        "E220",
        "a value outside a function's domain: `log` of a number <= 0 (or to a base <= 0 or 1), `sqrt` "
        "of a negative number, a negative number to a fractional power",
        "The builtin functions compute real numbers. A logarithm needs a positive argument and a "
        "positive base other than 1, a square root an argument >= 0, and `a ** p` with a negative `a` "
        "a whole-number `p`. The message names the function and the value it was given.",
        net("depth = round(log(w))\nconv1 = conv(16 * depth, k=3, p=1)", "w = 0"),
        net("depth = round(log(w))\nconv1 = conv(16 * depth, k=3, p=1)", "w = 8"),
    ),
    Entry(
        "E221",
        "a list comprehension over something that is not a list",
        "`[expr for x in xs]` loops over the items of a list. For n numbers loop over `range(n)`; a "
        "number, a string or a layer has no items.",
        net("widths = [16 * i for i in 3]\nconv1 = conv(widths[0], k=3, p=1)"),
        net("widths = [16 * i for i in range(1, 4)]\nconv1 = conv(widths[0], k=3, p=1)"),
    ),
    Entry(
        "E222",
        "a comprehension's loop variable named like something already seen",
        "The loop variable of `[... for x in xs]` is seen only inside the comprehension, and there "
        "it must mean one thing. Named like a parameter, a value bound before, an outer loop's "
        "variable, an op, a block, a shortcut kind or a stage's instance value, it would hide that "
        "name inside the comprehension and not outside; give it a name of its own.",
        net("widths = [c * 2 for c in [8, 16]]\nconv1 = conv(widths[0] + c, k=3, p=1)", "c = 8"),
        net("widths = [w * 2 for w in [8, 16]]\nconv1 = conv(widths[0] + c, k=3, p=1)", "c = 8"),
    ),
    Entry(
        "E223",
        "a drop-path rate outside [0, 1): `drop_path(p)` with p below 0 or at least 1 (also through "
        "a network's `drop_path_rate`)",
        "`drop_path(p)` drops the residual branch of each sample with probability p in training "
        "(timm's stochastic depth). p is a probability of dropping, so it is at least 0 and below 1: "
        "at 1 every sample would drop the branch, so it would never train, while eval mode, which "
        "keeps it, would run it untrained. A network's `drop_path_rate` (ConvNeXt, RegNet, "
        "ResNet-RS, EfficientNet, MobileNet) gives each block a share of it; ConvNeXt's, RegNet's "
        "and ResNet-RS's last block takes the whole rate, so `--set drop_path_rate=1.0` is refused "
        "there. The message gives the block's rate, the note the `--set` that led to it.",
        _dropped("1.0"),
        _dropped("0.1"),
    ),
]
