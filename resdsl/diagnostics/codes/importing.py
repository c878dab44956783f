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


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.layer1 = nn.Sequential(Block(8), nn.ReLU())

    def forward(self, x):
        return self.layer1(self.conv1(x))


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
        "`resdsl import`: modules arranged in a way a spec cannot say (a mixed nn.Sequential, a shortcut "
        "of no known kind, shared weights, a layer without a name)",
        "A run of one block class in an nn.Sequential is a stage and a Sequential of torch layers a "
        "sequential group; one that mixes blocks and layers, a stage whose blocks of one class hold "
        "different layers in ways no has_X flag says, a stage inside a block whose blocks' arguments "
        "change block by block differently in each instance of the holding block, "
        "a shortcut that is not a 1x1 conv (+ norm), ResNet-D's avgpool + 1x1 conv (+ norm) or option A's "
        "zero padding, a module called twice (shared weights), a merge or pool on a channels-last map "
        "(between permute(0, 2, 3, 1) and permute(0, 3, 1, 2)), and a layer whose attribute is no name "
        "(an nn.Sequential model's `0`) are refused.",
        "Mixed",
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
        "E906",
        "`resdsl import`: MODULE:CALLABLE cannot be loaded or called, or does not return an nn.Module",
        "MODULE is an importable module or a .py file, CALLABLE a class or factory in it, called with the "
        "--arg values (Python literals). A missing module or name, a bad literal, or a constructor that "
        "raises is reported with its message.",
        "Missing",
    ),
]
