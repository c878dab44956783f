"""Catalog entries: feature outputs and gradient checkpointing (E74x)."""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry
from resdsl.diagnostics.codes.values import net

STAGED = 'import "std/blocks.arch"\n' + net(
    "conv1 = conv(16, k=3, p=1)\nlayer1 = stage(basic(16), repeat=2)\n"
    "layer2 = stage(basic(32), repeat=2, stride=2)\navgpool = global_avgpool()\nfc = linear(10)"
)
PLAIN = net("conv1 = conv(8, k=3, p=1)\nrelu")
CHECK = ("check", "example.arch")
BUILD = ("build", "example.arch", "-o", "out.py")

ENTRIES = [
    Entry(
        "E740",
        "a feature names no top-level layer of the network (a nested path such as `layer2.0` included); "
        "a close match is suggested",
        "Feature outputs are the outputs of named top-level layers (stages, the stem's layers), as "
        "timm's features_only and torchvision's feature extractor return them.",
        STAGED,
        STAGED,
        argv=(*CHECK, "--features", "layer3"),
        fix_argv=(*CHECK, "--features", "layer1,layer2"),
    ),
    Entry(
        "E741",
        "a feature whose output is not a C x H x W map or N x C tokens (after flattening, pooling or the classifier)",
        "Detection and segmentation necks take feature maps; the classifier's vector is the network's ordinary output.",
        STAGED,
        STAGED,
        argv=(*CHECK, "--features", "fc"),
        fix_argv=(*CHECK, "--features", "layer2"),
    ),
    Entry(
        "E742",
        "the same layer named twice in `features` or in `checkpoint`",
        "Each feature is one entry of the returned dict; each checkpointed stage is checkpointed once.",
        STAGED,
        STAGED,
        argv=(*CHECK, "--features", "layer1,layer1"),
        fix_argv=(*CHECK, "--features", "layer1"),
    ),
    Entry(
        "E743",
        "an empty feature list",
        "features=[] would build a network that returns nothing; leave features out for the classifier.",
        STAGED,
        STAGED,
        argv=(*CHECK, "--features", ","),
        fix_argv=CHECK,
    ),
    Entry(
        "E744",
        "a checkpoint names a single layer rather than a stage or block",
        "Gradient checkpointing recomputes a stage's blocks in backward; a lone layer (an in-place "
        "activation above all) gains nothing and cannot be recomputed safely.",
        STAGED,
        STAGED,
        argv=(*BUILD, "--checkpoint", "conv1"),
        fix_argv=(*BUILD, "--checkpoint", "layer1"),
    ),
    Entry(
        "E745",
        "a checkpoint names no top-level layer of the network",
        "checkpoint=[...] names stages (top-level layers) to recompute in backward.",
        STAGED,
        STAGED,
        argv=(*BUILD, "--checkpoint", "layer9"),
        fix_argv=(*BUILD, "--checkpoint", "layer2"),
    ),
    Entry(
        "E746",
        "`checkpoint=True` (`--checkpoint all`) on a network with no stages, or `checkpoint=[]` (naming none)",
        "Checkpointing recomputes a stage's blocks in backward; a network of plain layers has none to name, "
        "and an empty list names nothing (leave `checkpoint` out to build without it). Where the stages lie "
        "inside a top-level group (MobileNet's `blocks`, DenseNet's `features`) the message names it: "
        "`checkpoint=['blocks']` recomputes the group as one segment.",
        PLAIN,
        STAGED,
        argv=(*BUILD, "--checkpoint", "all"),
    ),
    Entry(
        "E747",
        "a checkpointed layer that comes after the last feature, so it is not built",
        "A feature model stops at its last feature; a stage after it does not exist to checkpoint.",
        STAGED,
        STAGED,
        argv=(*BUILD, "--features", "layer1", "--checkpoint", "layer2"),
        fix_argv=(*BUILD, "--features", "layer2", "--checkpoint", "layer2"),
    ),
]
