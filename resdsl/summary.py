"""Per-layer summary of a checked network: name, op, output shape, parameters, MACs."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from resdsl.ir import Network
from resdsl.ops import fmt_shape


def summary_rows(network: Network) -> dict[str, Any]:
    """The table as plain data (what ``resdsl summary --json`` prints)."""
    rows = []
    for layer in network.layers():
        if layer.op == "input":
            continue
        op = layer.op
        if layer.shortcut is not None:
            stride = f", stride {layer.shortcut.stride}" if layer.shortcut.stride > 1 else ""
            op = f"residual ({layer.shortcut.kind}{stride})"
        rows.append(
            {
                "name": layer.path,
                "op": op,
                "output": list(layer.shape or ()),
                "params": layer.params,
                "macs": layer.macs,
            }
        )
    return {
        "network": network.name,
        "input": list(network.input_shape),
        "layers": rows,
        "total_params": network.num_params,
        "total_macs": network.macs,
        "weighted_layers": network.weighted_layers,
    }


def summary_table(network: Network) -> Table:
    table = Table(title=f"{network.name}  (input {fmt_shape(network.input_shape)})", show_footer=True)
    table.add_column("layer", footer="total")
    table.add_column("op")
    table.add_column("output", footer=fmt_shape(network.output_shape))
    table.add_column("params", justify="right", footer=f"{network.num_params:,}")
    table.add_column("MACs", justify="right", footer=f"{network.macs:,}")
    for row in summary_rows(network)["layers"]:
        table.add_row(row["name"], row["op"], fmt_shape(tuple(row["output"])), f"{row['params']:,}", f"{row['macs']:,}")
    return table
