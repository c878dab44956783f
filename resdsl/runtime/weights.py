"""The run-time pieces for weights and preprocessing that both back ends share.

``build_model`` (through :mod:`resdsl.weights`) uses these, and the code generator copies the
part below the marker into every generated module, so a generated file loads checkpoints and
prepares images exactly as ``build_model`` does while importing only torch (and safetensors,
lazily, when the file is a ``.safetensors``). Nothing here may import resdsl.

Checkpoints are read without running code: ``.safetensors`` files hold only tensors, anything
else goes through ``torch.load(..., weights_only=True)``, which refuses a pickle that would
construct arbitrary objects (``pickle.UnpicklingError``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --- copied into generated modules from here ---
# The keys under which training scripts nest a state_dict.
STATE_DICT_KEYS = ("state_dict", "model", "module")


def find_state_dict(checkpoint: object) -> dict[str, Tensor]:
    """The tensors of a checkpoint: a bare state_dict, or one nested under ``state_dict``,
    ``model`` or ``module`` (at any depth, e.g. ``{"model": {"state_dict": ...}}``)."""
    if isinstance(checkpoint, Mapping):
        if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return {str(k): v for k, v in checkpoint.items()}
        for key in STATE_DICT_KEYS:
            if key in checkpoint:
                return find_state_dict(checkpoint[key])
        keys = ", ".join(repr(k) for k in list(checkpoint)[:8]) or "none"
        raise ValueError(f"no state_dict found: the top-level keys are {keys}; expected tensors or {STATE_DICT_KEYS}")
    raise ValueError(f"no state_dict found: the checkpoint holds a {type(checkpoint).__name__}, not a dict of tensors")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The state_dict in a ``.safetensors`` file or a torch checkpoint, read without running code."""
    if str(path).endswith(".safetensors"):
        try:
            from safetensors.torch import load_file  # only needed for this format
        except ImportError:
            raise ModuleNotFoundError(
                f"reading {os.fspath(path)} needs the safetensors package, which is not installed: "
                "pip install safetensors (or save the state_dict with torch.save and pass that file)",
                name="safetensors",
            ) from None
        return load_file(os.fspath(path), device="cpu")
    return find_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def strip_wrapper(state: Mapping[str, Tensor], model_keys: Sequence[str]) -> dict[str, Tensor]:
    """Remove the ``module.`` that DataParallel/DDP put before every key, when every key has it
    and the model itself has no module called ``module``."""
    if state and all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in model_keys):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def compare_state(
    expected: Mapping[str, Tensor], found: Mapping[str, Tensor]
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """(missing, unexpected, shape mismatches as (key, model's shape, checkpoint's shape)).

    A missing ``num_batches_tracked`` is not reported: older and timm checkpoints leave it
    out and batchnorm fills it in."""
    missing = [k for k in expected if k not in found and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        (k, tuple(expected[k].shape), tuple(found[k].shape))
        for k in expected
        if k in found and expected[k].shape != found[k].shape
    ]
    return missing, unexpected, mismatched


def mismatch_lines(
    missing: Sequence[str], unexpected: Sequence[str], mismatched: Sequence[tuple[str, tuple, tuple]]
) -> list[str]:
    """One line per problem, each naming the state_dict key (the module path)."""
    lines = [f"missing from the checkpoint: {k}" for k in missing]
    lines += [f"not in the model: {k}" for k in unexpected]
    lines += [f"shape of {k}: model {list(m)}, checkpoint {list(c)}" for k, m, c in mismatched]
    return lines


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> int:
    """Load a checkpoint (``.safetensors`` or a torch file) into ``model``; every key and shape
    must match (a ``module.`` prefix from DDP is removed). Returns how many tensors it took;
    raises ValueError listing every missing key, unexpected key and shape mismatch."""
    expected = model.state_dict()
    state = strip_wrapper(read_checkpoint(path), list(expected))
    problems = mismatch_lines(*compare_state(expected, state))
    if problems:
        raise ValueError(f"{os.fspath(path)} does not fit the model:\n  " + "\n  ".join(problems))
    model.load_state_dict(state)
    return len(state)


def preprocess_images(
    images: Tensor,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    input_size: Sequence[int],
) -> Tensor:
    """Images (N x C x H x W or C x H x W; uint8 in 0..255 or floats in 0..1) as the network
    was trained to see them: resized so that they cover the input size, center-cropped to it,
    then normalised with ``mean`` and ``std``."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or len(input_size) != 3:
        raise ValueError(f"preprocess takes N x C x H x W images, got shape {tuple(images.shape)}")
    if images.shape[1] != input_size[0]:
        raise ValueError(f"the network takes {input_size[0]} channels, the images have {images.shape[1]}")
    if not images.is_floating_point():
        images = images.float() / 255.0
    elif images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        low, high = float(images.min()), float(images.max())
        raise ValueError(
            f"preprocess takes float images in 0..1 (or uint8 in 0..255), got values in {low:g}..{high:g}: "
            "divide 0..255 floats by 255; images normalised already need no preprocess"
        )
    height, width = int(input_size[1]), int(input_size[2])
    h, w = images.shape[-2:]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        size = (max(height, round(h * scale)), max(width, round(w * scale)))
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        images = images[:, :, top : top + height, left : left + width]
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        images = (images - m) / s
    return images
