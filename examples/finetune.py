"""Fine-tuning mode 2 end to end: load weights, freeze the early stages, train the last ones.

The ResNet notes' second mode: keep the generic early features (conv1 ... layer2) as they were
trained, keep their batchnorm statistics fixed too, and train layer3, layer4 and a new classifier
on the new task. Everything here is synthetic and runs offline in well under a minute on two CPU
cores:

- a ResNet-18 checkpoint written with ``save_weights`` stands in for downloaded ImageNet weights;
- the new task: 4 classes of 40 x 40 uint8 images, noise with a bright patch in one quadrant;
- ``model.preprocess`` resizes/crops them to the spec's input size and normalises them with the
  spec's mean and std, as the weights expect.

Run it with ``python examples/finetune.py``; ``tests/weights/test_example_finetune.py`` runs it too.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

import resdsl
from resdsl.weights import WeightsWarning, save_weights

SPEC = "resnet18"
INPUT = "3x32x32"  # a small input keeps the example fast; the weights do not depend on it
CLASSES = 4


def synthetic_task(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` uint8 images (3 x 40 x 40) and labels: the class is the quadrant of a bright patch."""
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    images = torch.randint(0, 96, (n, 3, 40, 40), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        top, left = 4 + 20 * (label // 2), 4 + 20 * (label % 2)
        images[i, :, top : top + 12, left : left + 12] = 255
    return images, labels


def pretrained(generator: torch.Generator) -> nn.Module:
    model = resdsl.build_model(SPEC, input_shape=INPUT)
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.momentum = None  # a plain average over the batches below
    with torch.no_grad():
        for _ in range(4):
            model(model.preprocess(synthetic_task(32, generator)[0]))
    return model


def accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(model.preprocess(images)).argmax(1) == labels).float().mean())


def main(steps: int = 16, batch: int = 16) -> dict[str, float]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        # 1. The "pretrained" checkpoint (a stand-in: no download): initial weights, and batchnorm
        #    statistics measured on images like the new task's, as a real checkpoint's would be.
        #    Its 1000-way fc will not fit the new task.
        checkpoint = Path(folder) / "resnet18_pretrained.safetensors"
        save_weights(pretrained(generator), checkpoint)

        # 2. Mode 2: load it, replace the classifier, freeze conv1 ... layer2 with their BN statistics.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", WeightsWarning)
            model = resdsl.build_model(
                SPEC,
                input_shape=INPUT,
                num_classes=CLASSES,
                weights=checkpoint,
                freeze_until="layer3",
                freeze_bn=True,
            )
        print(model.resdsl_load_report)
        for w in caught:
            print(f"  {str(w.message).splitlines()[0]}")
        frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("conv1", "bn1", "layer1."))}

        trainable = [p for p in model.parameters() if p.requires_grad]
        total = sum(p.numel() for p in model.parameters())
        print(f"training {sum(p.numel() for p in trainable):,} of {total:,} parameters")

        train_x, train_y = synthetic_task(256, generator)
        test_x, test_y = synthetic_task(128, generator)
        before = accuracy(model, test_x, test_y)

        # 3. Train the last stages and the new classifier.
        optimizer = torch.optim.SGD(trainable, lr=0.01, momentum=0.9, weight_decay=1e-4)
        for step in range(steps):
            model.train()  # the frozen batchnorm layers stay in eval mode
            index = torch.randint(0, len(train_x), (batch,), generator=generator)
            loss = nn.functional.cross_entropy(model(model.preprocess(train_x[index])), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 4 == 0 or step == steps - 1:
                print(f"step {step:3d}  loss {loss.item():.3f}")

        after = accuracy(model, test_x, test_y)
        unchanged = all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
        print(f"test accuracy {before:.2f} -> {after:.2f}; frozen layers and statistics unchanged: {unchanged}")

        # 4. Keep the result: safetensors with the network, spec hash and preprocessing as metadata.
        save_weights(model, Path(folder) / "resnet18_finetuned.safetensors")
    seconds = time.perf_counter() - start
    print(f"done in {seconds:.1f} s")
    return {"before": before, "after": after, "unchanged": float(unchanged), "seconds": seconds}


if __name__ == "__main__":
    main()
