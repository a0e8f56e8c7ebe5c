"""Model zoo for CNN Studio: presets, JSON layer specs, pretrained EfficientNet-Lite0/1/2, timm.

Depends on torch and timm only.
"""

from models import presets  # noqa: F401  (registers the presets)
from models.errors import ModelError
from models.pretrained import (
    OFFERED_NAMES,
    PRETRAINED_NAME,
    PRETRAINED_NAMES,
    freeze_backbone,
    pretrained_data_config,
)
from models.registry import (
    create_model,
    describe_model,
    is_known_model,
    list_models,
    list_presets,
    list_timm_models,
    model_profile,
    register_preset,
)
from models.spec import build_from_spec, load_spec, spec_summary, validate_spec
from models.spec_layers import ACTIVATION_NAMES, LAYER_TYPES
from models.summary import model_summary, summary_text

__all__ = [
    "ACTIVATION_NAMES",
    "LAYER_TYPES",
    "OFFERED_NAMES",
    "PRETRAINED_NAME",
    "PRETRAINED_NAMES",
    "ModelError",
    "build_from_spec",
    "create_model",
    "describe_model",
    "freeze_backbone",
    "is_known_model",
    "list_models",
    "list_presets",
    "list_timm_models",
    "load_spec",
    "model_profile",
    "model_summary",
    "pretrained_data_config",
    "register_preset",
    "spec_summary",
    "summary_text",
    "validate_spec",
]
