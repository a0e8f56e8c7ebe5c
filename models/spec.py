"""Build a CNN from a JSON layer spec, tracking the feature shape so every size is known up front.

    {"layers": [{"type": "conv", "filters": 32}, {"type": "pool"}, {"type": "dense", "units": 64}]}

Layers are numbered from 0, as in the JSON list. A 2-D feature map is flattened automatically
before a dense layer, and a final dense layer to the number of classes is appended unless the
last layer already is {"type": "dense", "units": "classes"}.
"""

import difflib
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from models.errors import ModelError
from models.spec_layers import (
    ANY_FEATURE_MAP,
    PLANNERS,
    REQUIRED,
    SCHEMA,
    LayerProblem,
    Shape,
)

_TOP_LEVEL_KEYS = {"layers", "name", "description"}


@dataclass
class _Step:
    index: int | None  # position in the spec; None for a layer added automatically
    type: str
    out_shape: Shape
    params: int
    make: Callable[[], nn.Module]


def load_spec(path: str | Path) -> dict:
    """Read a JSON layer spec from a file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"Layer spec file {str(path)!r} does not exist; check the path.") from None
    except json.JSONDecodeError as err:
        raise ModelError(f"Layer spec {str(path)!r} is not valid JSON: {err}.") from None


def validate_spec(spec: dict, in_chans: int, image_size: int) -> list[str]:
    """Every problem in the spec as a sentence; an empty list means it builds."""
    return _plan(spec, in_chans, image_size, num_classes=1)[1]


def build_from_spec(spec: dict, *, in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """The spec as an nn.Sequential; raises ModelError naming each bad layer."""
    steps = _checked_plan(spec, in_chans, image_size, num_classes)
    return nn.Sequential(OrderedDict((_module_name(step), step.make()) for step in steps))


def _module_name(step: _Step) -> str:
    if step.index is not None:
        return f"{step.index}_{step.type}"
    return "head" if step.type == "dense" else f"auto_{step.type}"


def spec_summary(
    spec: dict, in_chans: int, image_size: int, *, num_classes: int = 10
) -> list[dict]:
    """Per layer: index (None if added automatically), type, output shape, parameter count."""
    steps = _checked_plan(spec, in_chans, image_size, num_classes)
    return [
        {
            "index": s.index,
            "type": s.type,
            "output_shape": list(s.out_shape),
            "params": s.params,
            "auto": s.index is None,
        }
        for s in steps
    ]


def _checked_plan(spec: dict, in_chans: int, image_size: int, num_classes: int) -> list[_Step]:
    steps, problems = _plan(spec, in_chans, image_size, num_classes)
    if problems:
        raise ModelError("Invalid layer spec: " + "; ".join(problems))
    return steps


def _plan(spec: object, in_chans: int, image_size: int, num_classes: int) -> tuple[list, list]:
    """Walk the layers tracking the feature shape; returns (steps, problems)."""
    try:
        layers = _layers_of(spec)
    except LayerProblem as problem:
        return [], [str(problem)]
    steps: list[_Step] = []
    problems: list[str] = []
    shape: Shape | None = (in_chans, image_size, image_size)
    for index, layer in enumerate(layers):
        try:
            kind, args = _read_layer(layer)
            if shape is None:  # an earlier layer broke the shape: check this layer's values only
                PLANNERS[kind](args, ANY_FEATURE_MAP, num_classes)
                continue
            if kind == "dense" and len(shape) == 3:
                steps.append(_flatten_step(shape))
                shape = steps[-1].out_shape
            out_shape, params, make = PLANNERS[kind](args, shape, num_classes)
        except LayerProblem as problem:
            problems.append(f"{_label(index, layer)}: {problem}")
            shape = None
            continue
        steps.append(_Step(index, kind, out_shape, params, make))
        shape = out_shape
    if not problems:
        steps += _auto_head(layers, shape, num_classes)
    return steps, problems


def _layers_of(spec: object) -> list:
    if not isinstance(spec, dict):
        raise LayerProblem(
            f'a spec is an object like {{"layers": [...]}}, got {type(spec).__name__}'
        )
    unknown = sorted(set(spec) - _TOP_LEVEL_KEYS)
    if unknown:
        raise LayerProblem(
            f"unknown top-level key {unknown[0]!r}; a spec holds {sorted(_TOP_LEVEL_KEYS)}"
        )
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise LayerProblem('the spec needs "layers": a list of layer objects')
    return layers


def _label(index: int, layer: object) -> str:
    kind = layer.get("type") if isinstance(layer, dict) else None
    return (
        f"layer {index} ({kind})" if isinstance(kind, str) and kind in SCHEMA else f"layer {index}"
    )


def _read_layer(layer: object) -> tuple[str, dict]:
    """Check a layer's type and keys; returns its type and arguments with defaults filled in."""
    if not isinstance(layer, dict):
        raise LayerProblem(f'expected an object like {{"type": "conv", ...}}, got {layer!r}')
    kind = layer.get("type")
    if not isinstance(kind, str) or kind not in SCHEMA:
        hint = _did_you_mean(str(kind), SCHEMA)
        raise LayerProblem(f"unknown type {kind!r}{hint}; use one of {', '.join(SCHEMA)}")
    schema = SCHEMA[kind]
    for key in layer:
        if key != "type" and key not in schema:
            allowed = ", ".join(schema) or "no other keys"
            raise LayerProblem(
                f"unknown key {key!r}{_did_you_mean(key, schema)}; {kind} takes {allowed}"
            )
    for key, default in schema.items():
        if default is REQUIRED and key not in layer:
            raise LayerProblem(f"missing {key!r}")
    return kind, {key: layer.get(key, default) for key, default in schema.items()}


def _did_you_mean(word: str, options: object) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _flatten_step(shape: Shape) -> _Step:
    """A flatten the spec did not ask for, before a dense layer."""
    return _Step(None, "flatten", (math.prod(shape),), 0, nn.Flatten)


def _auto_head(layers: list, shape: Shape, num_classes: int) -> list[_Step]:
    """The flatten and dense-to-classes layers a spec leaves out."""
    last = layers[-1] if layers else {}
    if last.get("type") == "dense" and last.get("units") == "classes":
        return []
    steps = []
    if len(shape) == 3:
        steps.append(_flatten_step(shape))
        shape = steps[-1].out_shape
    out_shape, params, make = PLANNERS["dense"]({"units": num_classes}, shape, num_classes)
    return [*steps, _Step(None, "dense", out_shape, params, make)]
