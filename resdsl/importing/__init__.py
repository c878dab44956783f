"""``resdsl import``: lift a PyTorch model back into a spec of blocks and stages.

The model is traced with torch.fx one module at a time (:mod:`.trace`), each module class used as
a block becomes one ``block`` whose parameters are what differs between its instances, a run of one
block class in an ``nn.Sequential`` becomes a ``stage(...)`` (:mod:`.emit`), and the spec is built
and compared with the model before it is returned (:mod:`.verify`). This package sits above
``resdsl.api``: verifying needs ``build_model``. Torch is imported only when a model is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def import_model(
    model: torch.nn.Module, name: str | None = None, input_shape: tuple[int, int, int] | None = None
) -> str:
    """The source of a spec that rebuilds ``model`` with identical state_dict keys and outputs.

    ``input_shape`` (C, H, W) is the size the spec states and the comparison runs at (default: the
    model's own, :func:`resdsl.importing.verify.input_size`). A model the language cannot express,
    or a spec that would not rebuild it exactly, is a ResdslError naming the module path; nothing
    is returned then.
    """
    from torch import nn

    from resdsl.diagnostics import ResdslError, error
    from resdsl.importing.emit import write_spec
    from resdsl.importing.names import snake
    from resdsl.importing.verify import input_size, verify

    if not isinstance(model, nn.Module):
        raise ResdslError(
            error("E906", f"a {type(model).__name__} is not a torch.nn.Module", help="CALLABLE must return the model")
        )
    shape = input_shape or input_size(model)
    source = write_spec(model, name or snake(type(model).__name__), shape)
    verify(model, source, shape)
    return source


__all__ = ["import_model"]
