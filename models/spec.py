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

_REQUIRED = object()
_SCHEMA: dict[str, dict[str, object]] = {
    "conv": {"filters": _REQUIRED, "kernel": 3, "stride": 1, "padding": "same", "activation": None},
    "batchnorm": {},
    "activation": {"fn": _REQUIRED},
    "pool": {"kind": "max", "size": 2, "stride": None},
    "dropout": {"rate": _REQUIRED},
    "globalpool": {"kind": "avg"},
    "flatten": {},
    "dense": {"units": _REQUIRED, "activation": None},
}
_TOP_LEVEL_KEYS = {"layers", "name", "description"}
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
_POOLS = {"max": (nn.MaxPool2d, nn.AdaptiveMaxPool2d), "avg": (nn.AvgPool2d, nn.AdaptiveAvgPool2d)}

Shape = tuple[int, ...]  # (C, H, W) for a feature map, (F,) once flattened
_ANY_FEATURE_MAP = (1, 4096, 4096)  # big enough that no layer's size check fails on it


class _Problem(Exception):
    """What is wrong with one layer; the caller adds which layer it is."""


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
    except _Problem as problem:
        return [], [str(problem)]
    steps: list[_Step] = []
    problems: list[str] = []
    shape: Shape | None = (in_chans, image_size, image_size)
    for index, layer in enumerate(layers):
        try:
            kind, args = _read_layer(layer)
            if shape is None:  # an earlier layer broke the shape: check this layer's values only
                _PLANNERS[kind](args, _ANY_FEATURE_MAP, num_classes)
                continue
            if kind == "dense" and len(shape) == 3:
                steps.append(_flatten_step(shape))
                shape = steps[-1].out_shape
            out_shape, params, make = _PLANNERS[kind](args, shape, num_classes)
        except _Problem as problem:
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
        raise _Problem(f'a spec is an object like {{"layers": [...]}}, got {type(spec).__name__}')
    unknown = sorted(set(spec) - _TOP_LEVEL_KEYS)
    if unknown:
        raise _Problem(
            f"unknown top-level key {unknown[0]!r}; a spec holds {sorted(_TOP_LEVEL_KEYS)}"
        )
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise _Problem('the spec needs "layers": a list of layer objects')
    return layers


def _label(index: int, layer: object) -> str:
    kind = layer.get("type") if isinstance(layer, dict) else None
    return (
        f"layer {index} ({kind})" if isinstance(kind, str) and kind in _SCHEMA else f"layer {index}"
    )


def _read_layer(layer: object) -> tuple[str, dict]:
    """Check a layer's type and keys; returns its type and arguments with defaults filled in."""
    if not isinstance(layer, dict):
        raise _Problem(f'expected an object like {{"type": "conv", ...}}, got {layer!r}')
    kind = layer.get("type")
    if not isinstance(kind, str) or kind not in _SCHEMA:
        hint = _did_you_mean(str(kind), _SCHEMA)
        raise _Problem(f"unknown type {kind!r}{hint}; use one of {', '.join(_SCHEMA)}")
    schema = _SCHEMA[kind]
    for key in layer:
        if key != "type" and key not in schema:
            allowed = ", ".join(schema) or "no other keys"
            raise _Problem(
                f"unknown key {key!r}{_did_you_mean(key, schema)}; {kind} takes {allowed}"
            )
    for key, default in schema.items():
        if default is _REQUIRED and key not in layer:
            raise _Problem(f"missing {key!r}")
    return kind, {key: layer.get(key, default) for key, default in schema.items()}


def _did_you_mean(word: str, options: object) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _positive_int(args: dict, key: str) -> int:
    value = args[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Problem(f"{key} must be a whole number, got {value!r}")
    if value <= 0:
        raise _Problem(f"{key} must be positive, got {value}")
    return value


def _choice(args: dict, key: str, options: object) -> str:
    value = args[key]
    if not isinstance(value, str) or value not in options:
        raise _Problem(f"{key} {value!r} is not one of {', '.join(options)}")
    return value


def _feature_map(shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise _Problem(
            "needs a 2-D feature map, but the features are already flat; "
            "move it before the flatten, globalpool or dense layers"
        )
    return shape


def _with_activation(make: Callable[[], nn.Module], args: dict) -> Callable[[], nn.Module]:
    """`make`, followed by args["activation"] when one is given."""
    if args.get("activation") is None:
        return make
    activation = _ACTIVATIONS[_choice(args, "activation", _ACTIVATIONS)]
    return lambda: nn.Sequential(make(), activation())


def _conv_padding(args: dict, kernel: int, stride: int) -> int | str:
    padding = args["padding"]
    if padding == "valid":
        return 0
    if padding == "same":
        if stride == 1:
            return "same"
        if kernel % 2 == 0:
            raise _Problem(f'padding "same" with stride {stride} needs an odd kernel, got {kernel}')
        return kernel // 2
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    raise _Problem(f'padding must be "same", "valid" or a whole number >= 0, got {padding!r}')


def _plan_conv(args: dict, shape: Shape, num_classes: int) -> tuple:
    chans, height, width = _feature_map(shape)
    filters, kernel = _positive_int(args, "filters"), _positive_int(args, "kernel")
    stride = _positive_int(args, "stride")
    padding = _conv_padding(args, kernel, stride)
    if padding == "same":
        out_h, out_w = height, width
    else:
        out_h = (height + 2 * padding - kernel) // stride + 1
        out_w = (width + 2 * padding - kernel) // stride + 1
    if out_h < 1 or out_w < 1:
        raise _Problem(
            f"kernel {kernel} does not fit the {height}x{width} feature map; "
            'use padding "same" or a smaller kernel'
        )
    params = chans * filters * kernel * kernel + filters
    make = _with_activation(lambda: nn.Conv2d(chans, filters, kernel, stride, padding), args)
    return (filters, out_h, out_w), params, make


def _plan_pool(args: dict, shape: Shape, num_classes: int) -> tuple:
    chans, height, width = _feature_map(shape)
    pool_cls = _POOLS[_choice(args, "kind", _POOLS)][0]
    size = _positive_int(args, "size")
    stride = size if args["stride"] is None else _positive_int(args, "stride")
    if size > min(height, width):
        raise _Problem(
            f"size {size} shrinks the {height}x{width} feature map to nothing; "
            "use a smaller size or remove the layer"
        )
    out_shape = (chans, (height - size) // stride + 1, (width - size) // stride + 1)
    return out_shape, 0, lambda: pool_cls(size, stride)


def _plan_globalpool(args: dict, shape: Shape, num_classes: int) -> tuple:
    chans = _feature_map(shape)[0]
    pool_cls = _POOLS[_choice(args, "kind", _POOLS)][1]
    return (chans,), 0, lambda: nn.Sequential(pool_cls(1), nn.Flatten())


def _plan_batchnorm(args: dict, shape: Shape, num_classes: int) -> tuple:
    norm_cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return shape, 2 * shape[0], lambda: norm_cls(shape[0])


def _plan_activation(args: dict, shape: Shape, num_classes: int) -> tuple:
    fn = _choice(args, "fn", _ACTIVATIONS)
    return shape, 0, _ACTIVATIONS[fn]


def _plan_dropout(args: dict, shape: Shape, num_classes: int) -> tuple:
    rate = args["rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise _Problem(f"rate must be a number from 0 up to (not including) 1, got {rate!r}")
    return shape, 0, lambda: nn.Dropout(rate)


def _plan_flatten(args: dict, shape: Shape, num_classes: int) -> tuple:
    return (math.prod(shape),), 0, nn.Flatten


def _flatten_step(shape: Shape) -> _Step:
    """A flatten the spec did not ask for, before a dense layer."""
    return _Step(None, "flatten", (math.prod(shape),), 0, nn.Flatten)


def _plan_dense(args: dict, shape: Shape, num_classes: int) -> tuple:
    in_features = shape[0]
    units = args["units"]
    if units == "classes":
        units = num_classes
    elif isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise _Problem(f'units must be a positive whole number or "classes", got {units!r}')
    make = _with_activation(lambda: nn.Linear(in_features, units), args)
    return (units,), in_features * units + units, make


_PLANNERS = {
    "conv": _plan_conv,
    "batchnorm": _plan_batchnorm,
    "activation": _plan_activation,
    "pool": _plan_pool,
    "dropout": _plan_dropout,
    "globalpool": _plan_globalpool,
    "flatten": _plan_flatten,
    "dense": _plan_dense,
}


def _auto_head(layers: list, shape: Shape, num_classes: int) -> list[_Step]:
    """The flatten and dense-to-classes layers a spec leaves out."""
    last = layers[-1] if layers else {}
    if last.get("type") == "dense" and last.get("units") == "classes":
        return []
    steps = []
    if len(shape) == 3:
        steps.append(_flatten_step(shape))
        shape = steps[-1].out_shape
    out_shape, params, make = _plan_dense({"units": num_classes}, shape, num_classes)
    return [*steps, _Step(None, "dense", out_shape, params, make)]
