"""Weight initialisation schemes: each defined once, as the statements that initialise one
module ``m`` of a kind, which build_model runs (:mod:`resdsl.runtime.init`) and generated code
writes in its constructor's ``for m in self.modules():`` loop, so both draw the same numbers
from the same seed.

A network names its scheme with ``meta { init = "timm_convnext" }``; without one it gets
torchvision's (Kaiming normal, fan_out, on convs; unit-gamma norms), which the generated code
writes as it always has. The others are timm's, read off its ``_init_weights`` functions:

- ``timm_convnext`` (convnext.py): convs and linears truncated normal, std 0.02, zero biases.
- ``timm_regnet`` (regnet.py): convs normal with std sqrt(2 / fan_out), fan_out = kh * kw *
  out // groups, zero biases; linears normal, std 0.01, zero biases.
- ``timm_efficientnet`` (_efficientnet_builder._init_weight_goog, also MobileNetV2/V3): convs
  as RegNet's; batch norms ones and zeros; linears uniform in +-1 / sqrt(out_features), zero
  biases.
- ``timm_densenet`` (densenet.py): convs Kaiming normal (fan_in); batch norms ones and zeros;
  linears zero biases.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SCHEME", "KINDS", "SCHEMES", "Scheme", "scheme_of"]

# the module classes of each kind, as generated code and build_model both name them (torch.nn);
# subclasses count (PointwiseLinear is a Linear). A SyncBatchNorm is left as constructed, which is
# already the ones and zeros timm's schemes set.
KINDS = {"conv": ("Conv2d",), "linear": ("Linear",), "batchnorm": ("BatchNorm2d",)}

_FAN_OUT_NORMAL = (
    "fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups",
    "nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))",
)
_ZERO_BIAS = ("if m.bias is not None:", "    nn.init.zeros_(m.bias)")
_UNIT_NORM = ("if m.weight is not None:", "    nn.init.ones_(m.weight)", "    nn.init.zeros_(m.bias)")


@dataclass(frozen=True)
class Scheme:
    """The statements (Python, on a module ``m``; nested lines indented by four) each kind of
    module gets, in the order written; kinds not named keep their construction's values."""

    name: str
    rules: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def uses_math(self) -> bool:
        return any("math." in line for _, lines in self.rules for line in lines)


DEFAULT_SCHEME = "torchvision"  # resdsl.backends.torch.init_weights and the template's own loop

SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            "timm_convnext",
            (
                ("conv", ("nn.init.trunc_normal_(m.weight, std=0.02)", *_ZERO_BIAS)),
                ("linear", ("nn.init.trunc_normal_(m.weight, std=0.02)", *_ZERO_BIAS)),
            ),
        ),
        Scheme(
            "timm_regnet",
            (
                ("conv", (*_FAN_OUT_NORMAL, *_ZERO_BIAS)),
                ("linear", ("nn.init.normal_(m.weight, 0.0, 0.01)", *_ZERO_BIAS)),
            ),
        ),
        Scheme(
            "timm_efficientnet",
            (
                ("conv", (*_FAN_OUT_NORMAL, *_ZERO_BIAS)),
                ("batchnorm", _UNIT_NORM),
                (
                    "linear",
                    (
                        "bound = 1.0 / math.sqrt(m.out_features)",
                        "nn.init.uniform_(m.weight, -bound, bound)",
                        *_ZERO_BIAS,
                    ),
                ),
            ),
        ),
        Scheme(
            "timm_densenet",
            (
                ("conv", ("nn.init.kaiming_normal_(m.weight)",)),
                ("batchnorm", _UNIT_NORM),
                ("linear", _ZERO_BIAS),
            ),
        ),
    )
}


def scheme_of(meta: dict[str, object]) -> Scheme | None:
    """The scheme a network's ``meta { init = ... }`` names; None for torchvision's default.
    The name was checked when the network was elaborated (E213)."""
    name = meta.get("init", DEFAULT_SCHEME)
    return None if name == DEFAULT_SCHEME else SCHEMES[str(name)]
