"""A per-layer summary of a network, as Keras' `model.summary()` prints: each layer's output
shape, parameters and FLOPs for one image (2 per multiply-add, torch's FLOP counter)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def model_summary(model: nn.Module, *, in_chans: int, image_size: int,
                  depth: int | None = None) -> dict:
    """{"layers": one row per layer ({name, type, output_shape, params, trainable, flops}) in
    the order the forward pass runs them, "params", "trainable", "flops" (the whole network's,
    functional operations outside any layer included)} for one in_chans × image_size ×
    image_size image. The layers are the leaf modules, or with `depth` the modules `depth`
    levels down (and shallower leaves). Raises ValueError when the network cannot take such an
    image."""
    layers = chosen_layers(model, depth)
    rows: dict[str, dict] = {}
    flops_before: dict[str, int] = {}
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    image = torch.zeros(1, in_chans, image_size, image_size, device=device)
    was_training = model.training
    model.eval()  # batch-1 BatchNorm fails in train mode, and eval is what inference costs
    counter = FlopCounterMode(display=False)

    def before(name: str):
        def hook(module: nn.Module, inputs) -> None:
            flops_before[name] = counter.get_total_flops()
        return hook

    def after(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            row = rows.get(name) or layer_row(name, module)
            row["flops"] += counter.get_total_flops() - flops_before[name]
            row["output_shape"] = shape_of(output)
            rows.setdefault(name, row)  # first call fixes the order; a reused layer adds up
        return hook

    handles = [handle for name, module in layers for handle in (
        module.register_forward_pre_hook(before(name)),
        module.register_forward_hook(after(name)))]
    try:
        with torch.no_grad(), counter:
            model(image)
    except (RuntimeError, ValueError, IndexError) as error:
        raise ValueError(f"The network cannot take a {in_chans}-channel {image_size} px image: "
                         f"{error}") from error
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {"layers": list(rows.values()),
            "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "flops": counter.get_total_flops()}


def chosen_layers(model: nn.Module, depth: int | None) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of the summary's layers: leaves, or those `depth` levels down."""
    chosen = []
    for name, module in model.named_modules():
        if not name:
            continue
        level = name.count(".") + 1
        is_leaf = next(module.children(), None) is None
        if (depth is None and is_leaf) or (depth is not None and (
                level == depth or (level < depth and is_leaf))):
            chosen.append((name, module))
    return chosen or [("", model)]


def layer_row(name: str, module: nn.Module) -> dict:
    params = list(module.parameters())
    return {"name": name or module.__class__.__name__, "type": module.__class__.__name__,
            "output_shape": None, "params": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad), "flops": 0}


def shape_of(output) -> list[int] | None:
    """The output's shape without the batch dimension (the first tensor's, for a tuple)."""
    if isinstance(output, torch.Tensor):
        return list(output.shape[1:])
    if isinstance(output, list | tuple) and output:
        return shape_of(output[0])
    return None


def summary_text(summary: dict) -> str:
    """The table as Keras prints it: layer (type), output shape, params, FLOPs, then totals."""
    rows, totals = summary["layers"], summary
    head = ("Layer (type)", "Output shape", "Params", "FLOPs")
    lines = [(f"{row['name']} ({row['type']})",
              "×".join(map(str, row["output_shape"])) if row["output_shape"] else "—",
              f"{row['params']:,}", f"{row['flops']:,}") for row in rows]
    widths = [max(len(cells[i]) for cells in [head, *lines]) for i in range(4)]
    rule = "─" * (sum(widths) + 6)

    def line(cells: tuple) -> str:
        return "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]),
                          cells[2].rjust(widths[2]), cells[3].rjust(widths[3])])

    return "\n".join([line(head), rule, *map(line, lines), rule,
                      f"Total params: {totals['params']:,}",
                      f"Trainable params: {totals['trainable']:,}",
                      f"Non-trainable params: {totals['params'] - totals['trainable']:,}",
                      f"FLOPs per image: {totals['flops']:,}"])
