"""Catalog entries: shapes (E3xx) and lints (W4xx)."""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry
from resdsl.diagnostics.codes.values import net

BLOCKS = 'import "std/blocks.arch"\n\n'

ENTRIES = [
    Entry(
        "E301",
        "the two branches of a residual addition have different shapes; the notes give both shapes "
        "and where each comes from, the help names the shortcut kind that fixes it",
        "residual(...) adds the block's input (through the shortcut) to the main branch's output. "
        "An identity shortcut only works when the main branch keeps the shape; when it changes the "
        "width or the stride, a projection (1x1 conv + norm) or zero_pad shortcut makes them agree.",
        "block widen(c) {\n    conv1 = conv(c, k=3, p=1)\n    bn1   = batchnorm()\n    residual(identity)\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\nb1   = widen(32)"),
        "block widen(c) {\n    conv1 = conv(c, k=3, p=1)\n    bn1   = batchnorm()\n    residual(projection)\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\nb1   = widen(32)"),
    ),
    Entry(
        "E302",
        "a grouped conv whose input or output channels are not divisible by `groups`",
        "A conv with groups=g splits its input and output channels into g equal groups.",
        net("stem = conv(64, k=3, p=1)\nconv2 = conv(64, k=3, p=1, groups=3)"),
        net("stem = conv(64, k=3, p=1)\nconv2 = conv(64, k=3, p=1, groups=4)"),
    ),
    Entry(
        "E303",
        "a conv or pooling window larger than its (padded) input, or a spatial size reaching 0",
        "The map has become smaller than the window sliding over it; remove a downsampling step, "
        "pad, or use a smaller window.",
        net("pool1 = maxpool(k=4, s=4)\npool2 = maxpool(k=9)"),
        net("pool1 = maxpool(k=4, s=4)\npool2 = maxpool(k=8)"),
    ),
    Entry(
        "E304",
        "`linear(..., in_features=N)` where the flattened input has another size",
        "in_features is inferred; when given, it must equal the flattened input's size.",
        net("pool = global_avgpool()\nfc   = linear(10, in_features=64)"),
        net("pool = global_avgpool()\nfc   = linear(10)"),
    ),
    Entry(
        "E305",
        "`conv(..., in_channels=N)` where the input has another channel count",
        "in_channels is inferred; when given, it must equal the input's channel count.",
        net("conv1 = conv(16, in_channels=1)"),
        net("conv1 = conv(16, in_channels=3)"),
    ),
    Entry(
        "E306",
        "a shortcut that cannot reach the main branch's shape: no whole stride fits, or `zero_pad` "
        "would have to drop channels",
        "A projection or zero_pad shortcut infers its stride from the two map sizes; when the main "
        "branch shrinks the map by a factor that is not a whole number (an unpadded 3x3 conv: "
        "32 -> 30), no shortcut can follow it.",
        "block valid(c) {\n    conv1 = conv(c, k=3)\n    residual(projection)\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\nb1   = valid(16)"),
        "block valid(c) {\n    conv1 = conv(c, k=3, p=1)\n    residual(projection)\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\nb1   = valid(16)"),
    ),
    Entry(
        "E307",
        "a spatial op (conv, pooling, batchnorm) after the map was flattened",
        "linear and flatten turn the C x H x W map into a vector; spatial ops cannot follow.",
        net("fc    = linear(10)\nconv1 = conv(16)"),
        net("conv1 = conv(16)\nfc    = linear(10)"),
    ),
    Entry(
        "E308",
        "a `gate(...)` branch whose output cannot scale the input: its channels differ, or its map "
        "is neither 1 x 1 nor the input's",
        "gate(branch) multiplies its input by the branch's output (squeeze-and-excitation), so the "
        "branch must end with the input's channels on a 1 x 1 map or on the input's own map.",
        "block se(c) {\n    pool = global_avgpool()\n    fc   = conv(c // 2, k=1)\n    sigmoid\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\ngated = gate(se(16))"),
        "block se(c) {\n    pool = global_avgpool()\n    fc   = conv(c, k=1)\n    sigmoid\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\ngated = gate(se(16))"),
    ),
    Entry(
        "E309",
        "a `concat()` whose two operands, the block input and the main branch, have maps of different sizes",
        "concat() joins the block's input and the main branch along the channels, so everything but "
        "the channel count must agree: a block that concatenates keeps its map (stride 1), and "
        "downsampling happens between such blocks (DenseNet's transitions).",
        "block dense(growth) {\n    conv1 = conv(growth, k=3, s=2, p=1)\n    concat()\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\nd1   = dense(8)"),
        "block dense(growth) {\n    conv1 = conv(growth, k=3, p=1)\n    concat()\n}\n\n"
        + net("stem = conv(16, k=3, p=1)\nd1   = dense(8)"),
    ),
    Entry(
        "E310",
        "a `res2_hierarchy(width, scale)` whose input does not have width * scale channels; the "
        "message gives both numbers",
        "res2_hierarchy splits its input into `scale` chunks of `width` channels (Res2Net's "
        "hierarchy), so the layer before it must make exactly width * scale channels: in a "
        "Bottle2neck, the first 1x1 conv outputs width * scale.",
        net("stem = conv(64, k=1)\nhier = res2_hierarchy(26, 4)"),
        net("stem = conv(104, k=1)\nhier = res2_hierarchy(26, 4)"),
    ),
    Entry(
        "E311",
        "an `attention(num_heads)` whose input's embed_dim is not divisible by num_heads; the message "
        "gives both numbers",
        "Multi-head attention splits each token's embed_dim channels into num_heads heads of equal "
        "width (timm's head_dim = embed_dim / num_heads), so the number of heads must divide the "
        "width: ViT-Ti's 192 channels take 3 heads (64 each), not 5.",
        net("embed = patch_embed(192, 16)\nattn  = attention(5)"),
        net("embed = patch_embed(192, 16)\nattn  = attention(3)"),
    ),
    Entry(
        "E312",
        "a `patch_embed(dim, patch)` whose input height or width is not a multiple of the patch size; "
        "the message gives both numbers",
        "patch_embed cuts the map into patch x patch squares, one token each (a conv with kernel = "
        "stride = patch). A side that is not a multiple of the patch would leave a strip of pixels "
        "that no token sees; torch would drop it silently. Feed an input whose sides the patch "
        "divides, or choose another patch size.",
        net("embed = patch_embed(64, 5)"),
        net("embed = patch_embed(64, 4)"),
    ),
    Entry(
        "E313",
        "a `pos_embed(length)` whose length differs from the number of tokens it is added to; the "
        "message gives both numbers",
        "A learned position embedding has one vector per token position, made for one input size: "
        "(H / patch) * (W / patch) patches, plus the class token where it comes first. At another "
        "input size (--input) the token count changes and the embedding no longer fits; timm "
        "resamples it when loading weights, resdsl asks for the length that fits.",
        net("embed = patch_embed(64, 4)\ncls_token = class_token()\npos_embed = pos_embed(64)"),
        net("embed = patch_embed(64, 4)\ncls_token = class_token()\npos_embed = pos_embed(65)"),
    ),
    Entry(
        "E398",
        "a radix op (`radix_sum`, `radix_softmax`, `radix_combine`) whose radix (times the groups, for "
        "`radix_softmax`) does not divide its input channels; the message gives both numbers",
        "Split attention reads a map of R * C channels as R splits of C channels each (and "
        "radix_softmax each of its groups as R splits), so the channels must be a multiple of the "
        "radix. The conv before the radix ops makes them: give it radix * c output channels.",
        net("stem = conv(30, k=3, p=1)\nsplits = radix_sum(4)"),
        net("stem = conv(32, k=3, p=1)\nsplits = radix_sum(4)"),
    ),
    Entry(
        "W401",
        "a conv with `bias=true` feeds a batchnorm, whose mean subtraction cancels the bias",
        "A batchnorm subtracts the per-channel mean, so a bias added just before it is cancelled: "
        "parameters that do nothing. Drop bias=true (conv has no bias by default).",
        net("conv1 = conv(16, k=3, p=1, bias=true)\nbn1   = batchnorm()"),
        net("conv1 = conv(16, k=3, p=1)\nbn1   = batchnorm()"),
    ),
    Entry(
        "W402",
        "a stage halves the feature map without doubling its width (the paper keeps the cost per layer constant)",
        "The ResNet paper doubles the number of filters whenever the map is halved, so that each "
        "layer costs about the same; a stage that strides without widening loses capacity. Stages of "
        "inverted residuals (a block wider inside than at its output, as MobileNetV2's expand, "
        "depthwise, project) widen slowly by design and are not flagged. `--ignore W402` silences it.",
        BLOCKS
        + net(
            "conv1  = conv(16, k=3, p=1)\nlayer1 = stage(basic(16), repeat=1)\n"
            "layer2 = stage(basic(16), repeat=1, stride=2)"
        ),
        BLOCKS
        + net(
            "conv1  = conv(16, k=3, p=1)\nlayer1 = stage(basic(16), repeat=1)\n"
            "layer2 = stage(basic(32), repeat=1, stride=2)"
        ),
    ),
    Entry(
        "W403",
        "a batchnorm over a 1 x 1 map normalises each channel over the batch alone (fails in training at batch size 1)",
        "After global pooling a batchnorm sees one value per channel and sample; its statistics "
        "come from the batch alone, and training with a batch of one fails.",
        net("pool = global_avgpool()\nbn   = batchnorm()\nfc   = linear(10)"),
        net("bn   = batchnorm()\npool = global_avgpool()\nfc   = linear(10)"),
    ),
    Entry(
        "W404",
        "a `stride` given to the block inside `stage(...)` strides every block of the stage; the "
        "stage's own `stride=` strides only the first",
        "stage(block(..., stride=2), repeat=n) passes stride=2 to all n blocks, halving the map n "
        "times; stage(block(...), repeat=n, stride=2) halves it once, in the first block.",
        BLOCKS + net("conv1  = conv(16, k=3, p=1)\nlayer1 = stage(basic(32, stride=2), repeat=2)"),
        BLOCKS + net("conv1  = conv(16, k=3, p=1)\nlayer1 = stage(basic(32), repeat=2, stride=2)"),
    ),
]
