"""The gallery of shipped specs (docs/specs.md): one row per network, with the published figure
each is checked against.

``python -m resdsl.tools.gallery > docs/specs.md`` writes it; ``tests/test_family.py`` fails when the
file is stale or when a computed figure no longer equals its published one.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.api import check
from resdsl.resources import library_dir, shipped_specs


@dataclass(frozen=True)
class Figure:
    """A published number for a shipped network: parameters and/or GMACs, and where from."""

    source: str
    params: int | None = None
    gmacs: float | None = None


_TV = "torchvision"
_TIMM = "timm 1.0.31"
_PAPER = "He et al. 2016"
_PREACT = "He et al. 2016b (Identity Mappings)"

# torchvision's num_params and _ops; timm's num_params; the papers' tables (tests/fixtures/).
FIGURES: dict[str, Figure] = {
    "resnet18": Figure(_TV, 11_689_512, 1.814),
    "resnet34": Figure(_TV, 21_797_672, 3.664),
    "resnet34_b": Figure(_TV + " (resnet34)", 21_797_672, 3.664),
    "resnet50": Figure(_TV, 25_557_032, 4.089),
    "resnet101": Figure(_TV, 44_549_160, 7.801),
    "resnet152": Figure(_TV, 60_192_808, 11.514),
    "resnext50_32x4d": Figure(_TV, 25_028_904, 4.230),
    "resnext101_32x8d": Figure(_TV, 88_791_336, 16.414),
    "resnext101_64x4d": Figure(_TV, 83_455_272, 15.460),
    "wide_resnet50_2": Figure(_TV, 68_883_240, 11.398),
    "wide_resnet101_2": Figure(_TV, 126_886_696, 22.753),
    "resnet50_v1": Figure(_PAPER + ", Table 1 (v1)", gmacs=3.858),
    "resnet101_v1": Figure(_PAPER + ", Table 1 (v1)", gmacs=7.570),
    "resnet152_v1": Figure(_PAPER + ", Table 1 (v1)", gmacs=11.282),
    "resnet20": Figure(_PAPER + ", Sec. 4.2", 269_722),
    "resnet32": Figure(_PAPER + ", Sec. 4.2", 464_154),
    "resnet44": Figure(_PAPER + ", Sec. 4.2", 658_586),
    "resnet56": Figure(_PAPER + ", Sec. 4.2", 853_018),
    "resnet110": Figure(_PAPER + ", Sec. 4.2", 1_727_962),
    "resnet1202": Figure(_PAPER + ", Sec. 4.2", 19_421_274),
    "preact_resnet164": Figure(_PREACT, 1_703_258),
    "preact_resnet1001": Figure(_PREACT, 10_327_706),
    "resnet50d": Figure(_TIMM, 25_576_264),
    "resnet26t": Figure(_TIMM, 16_011_872),
    "seresnet50": Figure(_TIMM, 28_088_024),
    "resnet50_gn": Figure(_TIMM, 25_557_032),
    "resnetrs50": Figure(_TIMM, 35_691_912),
    "convnext_atto": Figure(_TIMM, 3_695_520),
    "convnext_tiny": Figure(_TIMM, 28_589_128),
    "densenet121": Figure(_TIMM, 7_978_856),
    "mobilenetv2_100": Figure(_TIMM, 3_504_872),
    "efficientnet_b0": Figure(_TIMM, 5_288_548),
    "mobilenetv3_large_100": Figure(_TIMM, 5_483_032),
    "regnetx_002": Figure(_TIMM, 2_684_792),
    "regnety_004": Figure(_TIMM, 4_344_144),
    "res2net50_26w_4s": Figure(_TIMM, 25_699_120),
    "resnest14d": Figure(_TIMM, 10_611_688),
    "vit_tiny_patch16_224": Figure(_TIMM, 5_717_416),
    "deit_tiny_patch16_224": Figure(_TIMM, 5_717_416),
    "vit_small_patch16_224": Figure(_TIMM, 22_050_664),
    "vit_base_patch16_224": Figure(_TIMM, 86_567_656),
    "vit_base_patch32_224": Figure(_TIMM, 88_224_232),
    "deit_small_patch16_224": Figure(_TIMM, 22_050_664),
    "deit_base_patch16_224": Figure(_TIMM, 86_567_656),
    "deit3_small_patch16_224": Figure(_TIMM, 22_059_496),
    "deit3_base_patch16_224": Figure(_TIMM, 86_585_320),
}


def rows() -> list[dict[str, object]]:
    """Every network each shipped file defines, checked."""
    out: list[dict[str, object]] = []
    for path in shipped_specs():
        result = check(path)
        for net in result.networks:
            out.append(
                {
                    "name": net.name,
                    "file": path.relative_to(library_dir()).as_posix(),
                    "depth": net.weighted_layers,
                    "params": net.num_params,
                    "gmacs": round(net.macs / 1e9, 3),
                    "input": " x ".join(map(str, net.input_shape)),
                    "figure": FIGURES.get(net.name),
                }
            )
    return out


def render() -> str:
    lines = [
        "# Shipped specs",
        "",
        "Every network under `specs/`, checked by resdsl: depth (weighted layers on the main path),",
        "parameters and GMACs (conv and linear multiply-accumulates, as torchvision's `_ops`, and the two",
        "matrix products of a transformer's attention) at the spec's input. Where a published figure",
        "exists, the last column names it; the test suite checks that resdsl's numbers equal it. Written by",
        "`python -m resdsl.tools.gallery > docs/specs.md`; a test fails when this file is stale.",
        "",
        "| network | file | depth | parameters | GMACs | input | checked against |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows():
        figure = row["figure"]
        against = ""
        if isinstance(figure, Figure):
            parts = [
                f"{figure.params:,} params" if figure.params else "",
                f"{figure.gmacs:.3f} GMACs" if figure.gmacs else "",
            ]
            against = f"{figure.source}: {', '.join(p for p in parts if p)}"
        lines.append(
            f"| `{row['name']}` | `{row['file']}` | {row['depth']} | {row['params']:,} | {row['gmacs']:.3f} "
            f"| {row['input']} | {against} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
