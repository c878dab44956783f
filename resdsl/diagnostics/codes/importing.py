"""Catalog entries: importing a PyTorch model with ``resdsl import`` (E90x).

Each example imports a class of ``model.py`` (shown with the entry); the fix imports another class
of the same file, one the importer can express. ``example.arch`` is not read by these commands.
"""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry

MODEL = """import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn1(self.conv1(x)) + x)


class Good(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(self.conv1(x))), 1))


class Branchy(Good):
    def forward(self, x):
        if x.sum() > 0:
            x = self.conv1(x)
        return x


class TwoInputs(Good):
    def forward(self, x, y):
        return self.conv1(x) + self.conv1(y)


class Tanh(Good):
    def forward(self, x):
        return torch.tanh(self.conv1(x))


class SharedBlock(Block):
    def forward(self, x):
        return self.relu(self.bn1(self.conv1(self.conv1(x))) + x)


class Shared(Good):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(SharedBlock(8), SharedBlock(8))


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.fc(x))


class GatedBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), Gate(c))

    def forward(self, x):
        return self.body(x) + x


class GateInSequential(Good):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(GatedBlock(8), GatedBlock(8))


class ShortcutFirstBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        return self.proj(x) + self.conv1(x)


class ShortcutFirst(Good):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(ShortcutFirstBlock(8), ShortcutFirstBlock(8))


class ReservedBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return self.input(x) + x


class Reserved(Good):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(ReservedBlock(8), ReservedBlock(8))


class TrainOnlyBlock(Block):
    def forward(self, x):
        out = self.bn1(self.conv1(x))
        if self.training:
            out = self.relu(out)
        return out + x


class TrainOnly(Good):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(TrainOnlyBlock(8), TrainOnlyBlock(8))
        self.eval()
"""

FILES = (("model.py", MODEL),)
NOTE = "# resdsl import reads model.py (shown below); nothing is written on an error\n"


def _entry(code: str, summary: str, explanation: str, bad: str, argv: tuple[str, ...] = ()) -> Entry:
    out = ("-o", "out.arch", "--input", "3x8x8")
    return Entry(
        code,
        summary,
        explanation,
        NOTE,
        NOTE,
        files=FILES,
        argv=argv or ("import", f"model.py:{bad}", *out),
        fix_argv=("import", "model.py:Good", *out),
    )


ENTRIES = [
    _entry(
        "E901",
        "`resdsl import`: a module's forward cannot be traced by torch.fx (data-dependent control flow)",
        "The importer traces each module's forward with torch.fx. An `if` on a tensor's value, or a loop "
        "over its size, has no spec form: make the choice a constructor argument, so that one instance "
        "takes one path. The message names the module path and where its class is written.",
        "Branchy",
    ),
    _entry(
        "E902",
        "`resdsl import`: a forward that takes more than one input",
        "A spec's network and blocks read one tensor; a forward of two inputs has no spec form.",
        "TwoInputs",
    ),
    _entry(
        "E903",
        "`resdsl import`: a torch module or function with no op in resdsl's table",
        "Every layer of the spec is an op of the table (`resdsl ops`); a module class or a torch function "
        "without one (here torch.tanh) cannot be written. The message names the module path, the function "
        "or class, and where the module's class is written. An attention module (a class named Attention "
        "with a fused qkv linear, timm's) that has what the `attention` op lacks (a query/key norm, "
        "dropout, an output gate) is refused saying which.",
        "Tanh",
    ),
    _entry(
        "E904",
        "`resdsl import`: modules arranged in a way a spec cannot say (a shortcut of no known kind, "
        "shared weights, a layer without a name)",
        "A run of one block class in an nn.Sequential is a stage, a Sequential of torch layers (and groups "
        "of them) a sequential group, and one that mixes layers, groups, stages and blocks a sequential "
        "group of them, numbered as the Sequential numbers them (torchvision's `features`); a Sequential "
        "inside a block that holds blocks, a Sequential with a forward of its own, a stage whose blocks "
        "of one class hold "
        "different layers in ways no has_X flag says, a stage inside a block whose blocks' arguments "
        "change block by block differently in each instance of the holding block, "
        "a shortcut that is not a 1x1 conv (+ norm), ResNet-D's avgpool + 1x1 conv (+ norm) or option A's "
        "zero padding, a module called twice (shared weights), a merge or pool on a channels-last map "
        "(between permute(0, 2, 3, 1) and permute(0, 3, 1, 2)), and a layer whose attribute is no name "
        "(an nn.Sequential model's `0`) are refused. Here a block calls its conv twice.",
        "Shared",
    ),
    _entry(
        "E905",
        "`resdsl import`: the spec written for the model does not rebuild it (state_dict or outputs differ)",
        "Before writing, the importer builds its spec and compares it with the model: the state_dict's keys, "
        "shapes and order, then the float64 outputs in eval and train mode on one random input. Where the "
        "outputs differ, every module's output is compared (matched by module path) and the first that "
        "differs is named with both shapes or values; nothing is written. It means the importer misread "
        "the model: here a forward that reads `self.training`, traced in the mode the model is in (eval), "
        "so the spec leaves out what train mode does.",
        "TrainOnly",
    ),
    _entry(
        "E910",
        "`resdsl import`: a gate (a module that multiplies its input by what it computes) inside an nn.Sequential",
        "A squeeze-excitation module scales its input by what it computes from it; a spec says that with "
        "`se = gate(squeeze_excite(c))`, a named layer of a block. `sequential(...)` holds layers, groups, "
        "blocks and stages but no gate, so a gate at a position of an nn.Sequential (torchvision's "
        "SqueezeExcitation at `block.2` of EfficientNet's MBConv and of MobileNetV3's InvertedResidual) "
        "has no spec form that keeps its state_dict keys. The message names the module path.",
        "GateInSequential",
    ),
    _entry(
        "E911",
        "`resdsl import`: a residual's shortcut module registered before the layers of its branch",
        'A spec makes a residual\'s shortcut (`residual(projection, name="proj")`) where the residual '
        "stands, after the layers of the branch it is added to, and the state_dict lists modules in the "
        "order they are made. A block that registers its shortcut first (torchvision's RegNet: "
        "`self.proj` before `self.f`) would get the same keys in another order, so it is refused. The "
        "message names the shortcut and the first branch layer registered after it.",
        "ShortcutFirst",
    ),
    _entry(
        "E912",
        "`resdsl import`: a layer of a block named with a word the language reserves (`input`, `if`, ...)",
        "A spec names each layer as the model's attribute, so that the state_dict keys are the same; a "
        "word that is a keyword inside a body (`input meta true false if else and or not for in`) "
        "cannot name a layer (E005), so keys such as `layer1.0.input.0.weight` have no spec. (`block`, "
        "`network` and `import` are keywords only where a definition starts, so a layer may be named "
        "`block`, as torchvision's ConvNeXt, EfficientNet and MobileNetV3 blocks name theirs.) The "
        "message names the module path.",
        "Reserved",
    ),
    _entry(
        "E906",
        "`resdsl import`: MODULE:CALLABLE cannot be loaded or called, or does not return an nn.Module",
        "MODULE is an importable module or a .py file, CALLABLE a class or factory in it, called with the "
        "--arg values (Python literals). A missing module or name, a bad literal, or a constructor that "
        "raises is reported with its message.",
        "Missing",
    ),
]
