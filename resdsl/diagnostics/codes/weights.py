"""Catalog entries: weights and fine-tuning (E70x, W72x)."""

from __future__ import annotations

import pickle

from resdsl.diagnostics.codes.entry import Entry
from resdsl.diagnostics.codes.export import SMALL, WEIGHTS, safetensors
from resdsl.diagnostics.codes.values import net


class _RunsCode:
    """Unpickling this calls ``print``: the smallest stand-in for a checkpoint that runs code."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this checkpoint ran code",))


def torch_checkpoint(obj: object) -> bytes:
    """``obj`` in torch's legacy (pre-zip) checkpoint format, which torch.load still reads:
    a magic number, the protocol, system info, the object and its storage keys, pickled in turn."""
    parts: tuple[object, ...] = (
        0x1950A86A20F9469CFC6C,
        1001,
        {"protocol_version": 1001, "little_endian": True},
        obj,
        [],
    )
    return b"".join(pickle.dumps(part, protocol=2) for part in parts)


BUILD = ("build", "example.arch", "-o", "out.py")
RIGHT = (*BUILD, "--weights", "right.safetensors")
API_ONLY = "given by build_model's fine-tuning options, which no command takes; tests/weights/test_finetune.py gives it"
MEAN = net("conv1 = conv(8, k=3, p=1)\nrelu").replace("32\n", "32\n    meta { mean = [0.5, 0.5, 0.5] }\n", 1)

ENTRIES = [
    Entry(
        "E701",
        "a weights file cannot be read: missing, neither a `.safetensors` file nor a torch checkpoint, or corrupt",
        "`--weights` (and `build_model(weights=...)`) read a .safetensors file with the safetensors "
        "package, anything else as a torch checkpoint with `torch.load(..., weights_only=True)`.",
        SMALL,
        SMALL,
        files=WEIGHTS,
        argv=(*BUILD, "--weights", "missing.safetensors"),
        fix_argv=RIGHT,
    ),
    Entry(
        "E702",
        "a checkpoint is a pickle that `torch.load(..., weights_only=True)` refuses: it would construct "
        "objects other than tensors, which is how a malicious checkpoint runs code; nothing in it is run",
        "A torch checkpoint is a pickle, and unpickling can call any function the file names. resdsl "
        "loads checkpoints with weights_only=True, which allows tensors and plain containers only. If "
        "you trust the file, load it with plain torch.load yourself and save its state_dict (or use "
        "resdsl.save_weights to write .safetensors).",
        SMALL,
        SMALL,
        files=(*WEIGHTS, ("runs_code.pt", pickle.dumps({"conv1.weight": _RunsCode()}))),
        argv=(*BUILD, "--weights", "runs_code.pt"),
        fix_argv=RIGHT,
    ),
    Entry(
        "E703",
        "no state_dict in the checkpoint: neither a dict of tensors nor one nested under `state_dict`, "
        "`model` or `module`; or no key under `strip_prefix`",
        "A checkpoint holds a state_dict, at the top or nested under one of the usual keys (training "
        "scripts save {'epoch': ..., 'state_dict': ...}); other entries are ignored.",
        SMALL,
        SMALL,
        files=(*WEIGHTS, ("epoch.pt", torch_checkpoint({"epoch": 3}))),
        argv=(*BUILD, "--weights", "epoch.pt"),
        fix_argv=RIGHT,
    ),
    Entry(
        "E704",
        "the weights do not fit the network: one report listing every missing key, unexpected key and shape "
        "mismatch (both shapes) with its module path; the help suggests `strip_prefix` when the keys carry "
        "one, `num_classes` when only the classifier differs",
        "Nothing loads partially: either every tensor finds its place or the load is refused with the whole "
        "list. In the example, wrong.safetensors holds conv1.bias, which the conv does not have, and lacks "
        "conv1.weight.",
        SMALL,
        SMALL,
        files=WEIGHTS,
        argv=(*BUILD, "--weights", "wrong.safetensors"),
        fix_argv=RIGHT,
    ),
    Entry(
        "E705",
        "`freeze` names a module path the model does not have, or `freeze_until` a top-level module it does "
        "not have; a close match is suggested",
        "`build_model(spec, freeze=['conv1', 'layer1'])` freezes those modules; `freeze_until='layer3'` "
        "freezes every top-level module before layer3. Paths are the model's module names.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
    Entry(
        "E706",
        "a fine-tuning option without what it applies to: `freeze_bn` with nothing frozen, `strip_prefix` "
        "without `weights`",
        "freeze_bn keeps the batchnorm layers of frozen modules in eval mode, so it needs freeze or "
        "freeze_until; strip_prefix edits the keys of a weights file, so it needs weights.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
    Entry(
        "E707",
        "a weights file cannot be written: `save_weights` writes `.safetensors` only; permissions, a missing folder",
        "save_weights(model, path) writes a .safetensors file (with the network's name, the spec's hash, "
        "input size, mean and std as metadata) through a temporary file, so a failure leaves nothing behind.",
        SMALL,
        SMALL,
        runs=False,
        why="given by resdsl.save_weights, which no command calls",
    ),
    Entry(
        "E708",
        "`head=N` / `--head N` cannot be added: N is not a positive whole number, the network already "
        "has a layer `head`, or feature outputs were asked for too",
        "head=N puts a linear layer `head` with N outputs on top of the network's output (fine-tuning "
        "mode 3: train only that layer); it is compiled into the network, so generated code, inference "
        "builds and ONNX export have it too. A network that already ends in a layer named head can "
        "take another number of classes through its own parameter instead.",
        net("conv1 = conv(8, k=3, p=1)\navgpool = global_avgpool()\nhead = linear(10)"),
        net("conv1 = conv(8, k=3, p=1)\navgpool = global_avgpool()\nfc = linear(10)"),
        argv=("check", "example.arch", "--head", "5"),
    ),
    Entry(
        "W720",
        "the checkpoint's metadata records a `mean` or `std` other than the spec's: the message names both",
        "The ResNet notes' warning: use the preprocessing the weights were trained with, or training may not "
        "converge. Files written by save_weights record the spec's mean and std; set the spec's meta to match.",
        MEAN,
        SMALL,
        files=(("w.safetensors", safetensors({"conv1.weight": [8, 3, 3, 3]}, {"mean": "[0.485, 0.456, 0.406]"})),),
        argv=(*BUILD, "--weights", "w.safetensors"),
    ),
    Entry(
        "W721",
        "a classifier tensor (the final `fc`, or an added `head`) kept at its initial value: its shape differs "
        "from the checkpoint's (both named) or the checkpoint lacks it",
        "Loading a 1000-class checkpoint into a 10-class variant (num_classes=10) keeps everything but the "
        "classifier, which starts from its initialisation; each kept tensor is named.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
]
