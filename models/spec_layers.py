"""One planner per layer type of a JSON layer spec (see models.spec).

A planner checks a layer's arguments against the incoming feature shape and returns the output
shape, the parameter count and a factory for the module. Counting without building lets the
dashboard show sizes for a spec whose dense layers would need gigabytes.
"""

import math
from collections.abc import Callable

from torch import nn

REQUIRED = object()
SCHEMA: dict[str, dict[str, object]] = {  # in the order the layer editor offers them
    "conv": {"filters": REQUIRED, "kernel": 3, "stride": 1, "padding": "same", "activation": None},
    "pool": {"kind": "max", "size": 2, "stride": None},
    "batchnorm": {},
    "activation": {"fn": REQUIRED},
    "dropout": {"rate": REQUIRED},
    "globalpool": {"kind": "avg"},
    "flatten": {},
    "dense": {"units": REQUIRED, "activation": None},
}
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
LAYER_TYPES = tuple(SCHEMA)
ACTIVATION_NAMES = tuple(ACTIVATIONS)
POOLS = {"max": (nn.MaxPool2d, nn.AdaptiveMaxPool2d), "avg": (nn.AvgPool2d, nn.AdaptiveAvgPool2d)}

Shape = tuple[int, ...]  # (C, H, W) for a feature map, (F,) once flattened
ANY_FEATURE_MAP = (1, 4096, 4096)  # big enough that no layer's size check fails on it


class LayerProblem(Exception):
    """What is wrong with one layer; the caller adds which layer it is."""


def _positive_int(args: dict, key: str) -> int:
    value = args[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayerProblem(f"{key} must be a whole number, got {value!r}")
    if value <= 0:
        raise LayerProblem(f"{key} must be positive, got {value}")
    return value


def _choice(args: dict, key: str, options: object) -> str:
    value = args[key]
    if not isinstance(value, str) or value not in options:
        raise LayerProblem(f"{key} {value!r} is not one of {', '.join(options)}")
    return value


def _feature_map(shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise LayerProblem(
            "needs a 2-D feature map, but the features are already flat; "
            "move it before the flatten, globalpool or dense layers"
        )
    return shape


def _with_activation(make: Callable[[], nn.Module], args: dict) -> Callable[[], nn.Module]:
    """`make`, followed by args["activation"] when one is given."""
    if args.get("activation") is None:
        return make
    activation = ACTIVATIONS[_choice(args, "activation", ACTIVATIONS)]
    return lambda: nn.Sequential(make(), activation())


def _conv_padding(args: dict, kernel: int, stride: int) -> int | str:
    padding = args["padding"]
    if padding == "valid":
        return 0
    if padding == "same":
        if stride == 1:
            return "same"
        if kernel % 2 == 0:
            raise LayerProblem(
                f'padding "same" with stride {stride} needs an odd kernel, got {kernel}'
            )
        return kernel // 2
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    raise LayerProblem(f'padding must be "same", "valid" or a whole number >= 0, got {padding!r}')


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
        raise LayerProblem(
            f"kernel {kernel} does not fit the {height}x{width} feature map; "
            'use padding "same" or a smaller kernel'
        )
    params = chans * filters * kernel * kernel + filters
    make = _with_activation(lambda: nn.Conv2d(chans, filters, kernel, stride, padding), args)
    return (filters, out_h, out_w), params, make


def _plan_pool(args: dict, shape: Shape, num_classes: int) -> tuple:
    chans, height, width = _feature_map(shape)
    pool_cls = POOLS[_choice(args, "kind", POOLS)][0]
    size = _positive_int(args, "size")
    stride = size if args["stride"] is None else _positive_int(args, "stride")
    if size > min(height, width):
        raise LayerProblem(
            f"size {size} shrinks the {height}x{width} feature map to nothing; "
            "use a smaller size or remove the layer"
        )
    out_shape = (chans, (height - size) // stride + 1, (width - size) // stride + 1)
    return out_shape, 0, lambda: pool_cls(size, stride)


def _plan_globalpool(args: dict, shape: Shape, num_classes: int) -> tuple:
    chans = _feature_map(shape)[0]
    pool_cls = POOLS[_choice(args, "kind", POOLS)][1]
    return (chans,), 0, lambda: nn.Sequential(pool_cls(1), nn.Flatten())


def _plan_batchnorm(args: dict, shape: Shape, num_classes: int) -> tuple:
    norm_cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return shape, 2 * shape[0], lambda: norm_cls(shape[0])


def _plan_activation(args: dict, shape: Shape, num_classes: int) -> tuple:
    fn = _choice(args, "fn", ACTIVATIONS)
    return shape, 0, ACTIVATIONS[fn]


def _plan_dropout(args: dict, shape: Shape, num_classes: int) -> tuple:
    rate = args["rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise LayerProblem(f"rate must be a number from 0 up to (not including) 1, got {rate!r}")
    return shape, 0, lambda: nn.Dropout(rate)


def _plan_flatten(args: dict, shape: Shape, num_classes: int) -> tuple:
    return (math.prod(shape),), 0, nn.Flatten


def _plan_dense(args: dict, shape: Shape, num_classes: int) -> tuple:
    in_features = shape[0]
    units = args["units"]
    if units == "classes":
        units = num_classes
    elif isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise LayerProblem(f'units must be a positive whole number or "classes", got {units!r}')
    make = _with_activation(lambda: nn.Linear(in_features, units), args)
    return (units,), in_features * units + units, make


PLANNERS = {
    "conv": _plan_conv,
    "batchnorm": _plan_batchnorm,
    "activation": _plan_activation,
    "pool": _plan_pool,
    "dropout": _plan_dropout,
    "globalpool": _plan_globalpool,
    "flatten": _plan_flatten,
    "dense": _plan_dense,
}
