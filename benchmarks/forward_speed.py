"""Is the in-memory model as fast as hand-written code? ResNet-50, side by side in one run.

The hand-written reference is the module `resdsl build` generates: plain torchvision-style
code (one class per block, a flat forward), imported from a file. Both models get the same
weights and the same input; timings are interleaved and the median is reported.

    ratio = hand-written time / built time      (target >= 0.97: no interpretive overhead)

Also: building ResNet-152 with resdsl.build_model (spec to module, initialised) against
constructing the hand-written module (target <= 1.1x): from the spec as a first call in a
process does it (files parsed; the loader's parse cache is cleared each time), from the spec
again (files parsed already), and from a compiled IR.

    python benchmarks/forward_speed.py [--batch 8] [--size 224] [--repeat 10] [--threads 2] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import convention, generated_module, print_rows, ratios, row, samples, write_json

import resdsl
from resdsl.syntax.loader import parse_file

TITLE = "the built model against the generated (hand-written style) module, ResNet-50 and ResNet-152"


def main() -> None:
    parser = convention(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.repeat = 2, 112, 3
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    hand = generated_module("resnet50").resnet50()
    built = resdsl.build_model("resnet50")
    built.load_state_dict(hand.state_dict(), strict=True)
    x = torch.randn(args.batch, 3, args.size, args.size)
    print(f"torch {torch.__version__}, {args.threads} threads, input {tuple(x.shape)}, median of {args.repeat}")
    print(f"{'case':<34} {'hand-written':>13} {'resdsl built':>13} {'ratio':>7}")

    def forward(model: torch.nn.Module, inp: torch.Tensor) -> None:
        with torch.no_grad():
            model(inp)

    def forward_backward(model: torch.nn.Module, inp: torch.Tensor) -> None:
        model.zero_grad(set_to_none=True)
        model(inp).sum().backward()

    rows = []
    for layout in ("contiguous", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        hand, built = hand.to(memory_format=fmt), built.to(memory_format=fmt)
        inp = x.to(memory_format=fmt)
        for mode, step, models in (
            ("eval forward", forward, (hand.eval(), built.eval())),
            ("train forward+backward", forward_backward, (hand.train(), built.train())),
        ):
            runs = samples(
                {
                    "hand": lambda m=models[0], s=step, i=inp: s(m, i),
                    "built": lambda m=models[1], s=step, i=inp: s(m, i),
                },
                args.repeat,
            )
            times = {name: statistics.median(values) for name, values in runs.items()}
            ratio = times["hand"] / times["built"]
            rows.append(
                row(
                    f"ResNet-50 {mode}, {layout}, batch {args.batch} at {args.size}",
                    "hand-written time / built time",
                    ratios(runs["hand"], runs["built"]),
                    ">= 0.97",
                    lambda r: r >= 0.97,
                )
            )
            print(
                f"{mode + ', ' + layout:<34} {times['hand'] * 1e3:10.1f} ms "
                f"{times['built'] * 1e3:10.1f} ms {ratio:7.3f}"
            )

    module = generated_module("resnet152")
    net = resdsl.compile("resnet152")
    runs = samples(
        {
            "hand": module.resnet152,
            "build_model(spec)": lambda: (parse_file.cache_clear(), resdsl.build_model("resnet152")),
            "build_model(spec), files parsed already": lambda: resdsl.build_model("resnet152"),
            "build_model(compiled IR)": lambda: resdsl.build_model(net),
        },
        2 if args.quick else max(3, args.repeat // 2),
    )
    times = {name: statistics.median(values) for name, values in runs.items()}
    print()
    print(f"construct ResNet-152 by hand            {times['hand'] * 1e3:8.1f} ms")
    for key in ("build_model(spec)", "build_model(spec), files parsed already", "build_model(compiled IR)"):
        print(f"resdsl.{key:<32} {times[key] * 1e3:8.1f} ms   {times[key] / times['hand']:.3f}x  (target <= 1.1x)")
        rows.append(
            row(
                f"ResNet-152 construction, {key}",
                "resdsl time / constructing the hand-written module",
                ratios(runs[key], runs["hand"]),
                "<= 1.1",
                lambda r: r <= 1.1,
            )
        )
    print()
    print_rows(rows)
    write_json(args.json, "forward_speed", TITLE, rows)


if __name__ == "__main__":
    main()
