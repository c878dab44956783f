"""Catalog entries: output files (E5xx) and limits (E6xx)."""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry
from resdsl.diagnostics.codes.values import net

SMALL = net("conv1 = conv(8, k=3, p=1)\nrelu")
BLOCKS = 'import "std/blocks.arch"\n\n'
# a block whose stage doubles the channels at every block: one loop cannot say it (E506)
DOUBLING = (
    "block dbl(c) {\n    conv1 = conv(c, k=3, p=1)\n    bn1 = batchnorm()\n    relu\n}\n\n"
    "block grp(c, depth) {\n    s = stage(dbl(in_channels * 2), repeat=depth)\n}\n\n"
)

# a block whose residual kind is a parameter (E507 where it is identity_if_same)
IF_SAME = (
    "block unit(c, kind = {default}) {{\n    conv1 = conv(c, k=3, p=1)\n    bn1 = batchnorm()\n"
    "    residual({kind})\n}}\n\n"
)

# a block whose projection's parts are named (E508 where its kind is chosen per instance)
NAMED = (
    "block unit(c, kind = projection) {{\n    conv1 = conv(c, k=3, p=1)\n    bn1 = batchnorm()\n"
    '    residual({kind}, step_names=["conv", "bn"])\n}}\n\n'
)

ENTRIES = [
    Entry(
        "E501",
        "`resdsl build` refuses to overwrite a file that resdsl did not generate, or one edited since it "
        "was generated (its body no longer matches the hash in its header); `--force` overrides",
        "A generated module carries a header with a hash of its body. build overwrites only files it "
        "wrote and that nobody edited since, so hand-written code is never lost.",
        SMALL,
        SMALL,
        files=(("model.py", "# my own code\n"),),
        argv=("build", "example.arch", "-o", "model.py"),
        fix_argv=("build", "example.arch", "-o", "n.py"),
    ),
    Entry(
        "E502",
        "the output file cannot be written (permissions, missing folder)",
        "build creates missing folders of -o, but not through a file of the same name, and not where it may "
        "not write. fmt reports it for a file it may not replace (read-only).",
        SMALL,
        SMALL,
        files=(("out", "a file, not a folder\n"),),
        argv=("build", "example.arch", "-o", "out/model.py"),
        fix_argv=("build", "example.arch", "-o", "models/model.py"),
    ),
    Entry(
        "E503",
        "a layer is named with a Python keyword (`class`, `lambda`, ...), which generated code cannot use "
        "as an attribute (the checker reports these first, as E505)",
        "The code generator's own guard: generated code cannot name an attribute `class` or "
        "`lambda`. The checker refuses such names first (E505), so only a network built through the "
        "API without checking can reach it.",
        net("lambda = relu()"),
        net("lambda_ = relu()"),
        runs=False,
        why="the checker reports E505 before code generation can meet the name",
    ),
    Entry(
        "E504",
        "ruff, which formats generated code, cannot be run (a broken installation)",
        "build formats the module it writes with ruff, a dependency of resdsl. Reinstall resdsl "
        "(pip install --force-reinstall resdsl) so ruff is importable.",
        SMALL,
        SMALL,
        argv=("build", "example.arch", "-o", "n.py"),
        runs=False,
        why="it needs a broken installation",
    ),
    Entry(
        "E505",
        "a layer name that Python or `torch.nn.Module` already owns (`lambda`, `forward`, `training`, "
        "`eval`, `to`, ...): it becomes a module attribute and a state_dict key, so it is refused, never "
        "renamed; every such name is reported in one run",
        "Layer names become attributes of an nn.Module; a name the module already has (forward, "
        "training, to, ...) or a Python keyword would break it. Rename the layer.",
        net("forward = conv(8)\nlambda  = relu()"),
        net("conv1 = conv(8)\nact   = relu()"),
    ),
    Entry(
        "E506",
        "a block class holds a stage whose blocks `resdsl build` must write one by one (their arguments follow "
        "no single loop), and the block's instances give that stage different sizes",
        "Generated code writes one class per block type. A stage whose blocks differ in ways one loop "
        "cannot say (channels doubling at each block) is written as its calls one by one, which fixes its "
        "size in the class; instances of the class with other sizes cannot share it. build_model builds "
        "such networks; give the instances the same stage size, or write the stage in the network.",
        DOUBLING + net("stem = conv(4, k=3, p=1)\ng1 = grp(8, 2)\ng2 = grp(8, 3)"),
        DOUBLING + net("stem = conv(4, k=3, p=1)\ng1 = grp(8, 2)\ng2 = grp(8, 2)"),
        argv=("build", "example.arch", "-o", "n.py"),
    ),
    Entry(
        "E507",
        "`resdsl build`: a block passes `identity_if_same` to `residual(...)` through a parameter, so its "
        "class would choose the kind at run time",
        "Whether identity_if_same adds is decided block by block from the shapes; generated code writes it "
        "as a `has_skip` test, which needs the kind written in the block. build_model builds such networks; "
        "write residual(identity_if_same) in the block, or give the parameter another kind.",
        IF_SAME.format(default="identity_if_same", kind="kind")
        + net("stem = conv(8, k=3, p=1)\nb1 = unit(8)\nb2 = unit(16, kind=projection)"),
        IF_SAME.format(default="identity_if_same", kind="identity_if_same")
        + net("stem = conv(8, k=3, p=1)\nb1 = unit(8)\nb2 = unit(16)"),
        argv=("build", "example.arch", "-o", "n.py"),
    ),
    Entry(
        "E508",
        "`resdsl build`: a residual names its shortcut's parts (`step_names=`) while its kind differs "
        "between the instances of its block, so the class would choose the kind at run time",
        "The generated module's run-time helper numbers a shortcut's parts; named parts are written where "
        "the class knows the kind. build_model builds such networks; give every instance the same kind.",
        NAMED.format(kind="kind") + net("stem = conv(8, k=3, p=1)\nb1 = unit(16)\nb2 = unit(32, kind=projection_all)"),
        NAMED.format(kind="projection") + net("stem = conv(8, k=3, p=1)\nb1 = unit(16)\nb2 = unit(32)"),
        argv=("build", "example.arch", "-o", "n.py"),
    ),
    Entry(
        "E601",
        "the network would have more layers (graph nodes) after unrolling stages and blocks than the limit; "
        "counted without unrolling. Default 100,000; `--max-layers N`, API `max_layers=N`",
        "Stages and blocks multiply: a few lines can describe billions of layers. They are counted "
        "before anything is unrolled; raise the limit with --max-layers if the network is meant.",
        BLOCKS + net("conv1  = conv(16, k=3, p=1)\nlayer1 = stage(basic(16), repeat=n)", "n = 1000000000"),
        BLOCKS + net("conv1  = conv(16, k=3, p=1)\nlayer1 = stage(basic(16), repeat=n)", "n = 3"),
    ),
    Entry(
        "E602",
        "nesting too deep: an expression (more than 100 levels), blocks inside blocks (50), imports inside "
        "imports (50). Fixed; compute values in steps, flatten chains",
        "Deep nesting is refused before anything recurses over it, so a pathological file cannot exhaust the stack.",
        net("x = conv(" + "-" * 110 + "8)"),
        net("x = conv(8)"),
    ),
    Entry(
        "E603",
        "more parameters than the limit (the checker multiplies out every layer; nothing is allocated). "
        "Default 2,000,000,000; `--max-params N`, API `max_params=N`",
        "Parameters are counted from the shapes before anything is built.",
        "network n() {\n    input 3 x 8 x 8\n    a = conv(100000000)\n    b = conv(100000000)\n}\n",
        "network n() {\n    input 3 x 8 x 8\n    a = conv(1000)\n    b = conv(1000)\n}\n",
    ),
    Entry(
        "E604",
        "more activation memory per sample than the limit (every layer's output in float32, as training "
        "keeps them). Default 64 GiB; `--max-activation-gb N`, API `max_activation_gb=N`",
        "Every layer's output, in float32, is what training keeps for the backward pass.",
        "network n() {\n    input 3 x 1000000 x 1000000\n    a = conv(64, k=3, p=1)\n}\n",
        "network n() {\n    input 3 x 1000 x 1000\n    a = conv(64, k=3, p=1)\n}\n",
    ),
    Entry(
        "E605",
        "a number literal longer than 40 digits, or arithmetic whose result no float holds. Fixed",
        "No layer size or count needs more than 40 digits; such a number is a paste or typing accident.",
        net("a = conv(" + "1" + "0" * 50 + ")"),
        net("a = conv(100)"),
    ),
]
