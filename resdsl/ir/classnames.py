"""The Python class names of blocks and networks, one rule for both back ends.

``build_model``'s modules and the classes of a generated file are named alike, so that
``print(model)``, torch's messages and a reader of the generated code see the same names, and
these follow torchvision and timm where the block or the network layout is theirs: ``basic`` is
torchvision's ``BasicBlock``, ``bottleneck`` its ``Bottleneck``, the pre-activation blocks
timm's ``PreActBasic`` and ``PreActBottleneck``, and a network of the shipped ResNet layouts
(torchvision's, timm's ResNet-D, SE nets, Res2Net, ResNeSt and ResNet-RS) is ``ResNet``; the
modern families take timm's classes (``ConvNeXt``/``ConvNeXtStage``/``ConvNeXtBlock``,
``RegNet``/``Bottleneck``, ``EfficientNet``/``InvertedResidual``/``SqueezeExcite``, which
timm's MobileNetV2 is too, ``MobileNetV3``, ``DenseNet``/``DenseLayer``/``DenseTransition``).
Any other block or network is its name in CamelCase (``my_block`` -> ``MyBlock``; ``resnet``,
``resnext``, ``preact`` and the families' words at the start of a word as those libraries spell
them: ``cifar_resnet`` -> ``CifarResNet``). A network
class is named after the network's definition, its family: ``resnet50``, which is
``resnet_bottleneck(depths=[3, 4, 6, 3])``, is a ``ResNet``. Making the names unique, and
keeping them off the generated file's own names, is each back end's business.
"""

from __future__ import annotations

from resdsl.ir import Network

__all__ = ["BLOCK_CLASSES", "NETWORK_CLASSES", "block_class_name", "camel", "network_class_name"]

# block definition -> its class in torchvision (models/resnet.py) or timm (resnetv2.py, resnest.py)
BLOCK_CLASSES = {
    "basic": "BasicBlock",
    "bottleneck": "Bottleneck",
    "preact_basic": "PreActBasic",
    "preact_bottleneck": "PreActBottleneck",
    "resnest_bottleneck": "ResNestBottleneck",
    # timm's convnext.py
    "convnext_block": "ConvNeXtBlock",
    "convnext_stage": "ConvNeXtStage",
    "convnext_mlp": "Mlp",
    "norm_head": "NormMlpClassifierHead",
    # timm's regnet.py
    "regnet_bottleneck": "Bottleneck",
    "regnet_se": "SEModule",
    "conv_norm_act": "ConvNormAct",
    "classifier_head": "ClassifierHead",
    # timm's _efficientnet_blocks.py (EfficientNet, MobileNetV2 and V3)
    "inverted_residual": "InvertedResidual",
    "inverted_residual_se": "InvertedResidual",
    "ir_v3": "InvertedResidual",
    "depthwise_separable": "DepthwiseSeparableConv",
    "depthwise_separable_se": "DepthwiseSeparableConv",
    "ds_v3": "DepthwiseSeparableConv",
    "squeeze_excite_se": "SqueezeExcite",
    "squeeze_excite_hard": "SqueezeExcite",
    "conv_bn_act": "ConvBnAct",
    # timm's densenet.py
    "dense_layer": "DenseLayer",
    "transition": "DenseTransition",
    # timm's res2net.py
    "bottle2neck": "Bottle2neck",
}
# network definition -> the class torchvision or timm builds that layout with
NETWORK_CLASSES = {
    "resnet_basic": "ResNet",
    "resnet_bottleneck": "ResNet",
    "resnet_d_basic": "ResNet",
    "resnet_d_bottleneck": "ResNet",
    "se_resnet": "ResNet",
    "resnest": "ResNet",  # timm builds ResNeSt with its ResNet class
    "res2net": "ResNet",  # and Res2Net
    "resnet_rs": "ResNet",  # and ResNet-RS
    "convnext": "ConvNeXt",
    "regnet": "RegNet",
    "densenet": "DenseNet",
    "efficientnet": "EfficientNet",
    "mobilenet_v2": "EfficientNet",  # timm builds MobileNetV2 with its EfficientNet class
    "mobilenet_v3_large": "MobileNetV3",
    "mobilenet_v3_small": "MobileNetV3",
}
# how those libraries spell a word that starts with these
_WORDS = {
    "resnet": "ResNet",
    "resnext": "ResNeXt",
    "preact": "PreAct",
    "convnext": "ConvNeXt",
    "regnet": "RegNet",
    "densenet": "DenseNet",
    "efficientnet": "EfficientNet",
    "mobilenet": "MobileNet",
    "res2net": "Res2Net",
    "resnest": "ResNeSt",
}


def camel(name: str) -> str:
    """``preact_basic`` -> ``PreActBasic``, ``resnext50_32x4d`` -> ``ResNeXt50_32x4d`` (an
    underscore kept before a digit); ``Network`` for a name with no letters or digits."""
    out = ""
    for part in name.split("_"):
        if not part:
            continue
        if out and part[0].isdigit():
            out += "_"
        word = next((spelt + part[len(w) :] for w, spelt in _WORDS.items() if part.startswith(w)), None)
        out += word if word is not None else part[0].upper() + part[1:]
    return out or "Network"


def block_class_name(block: str) -> str:
    """The class of the block definition called ``block``."""
    return BLOCK_CLASSES.get(block, camel(block))


def network_class_name(network: Network) -> str:
    """The class of a network: its definition's (``network resnet50 = resnet_bottleneck(...)``
    is a ``resnet_bottleneck``), else its own name."""
    family = network.definition.name if network.definition is not None else network.name
    return NETWORK_CLASSES.get(family, camel(family))
