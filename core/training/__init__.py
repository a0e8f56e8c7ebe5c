"""Training one run: a config in, checkpoints and a result out, events through hooks.

    loop        fit(): the epochs, the steps, validation, the best and last checkpoints
    prepare     PreparedRun: device, data on it, model, optimizer, before the first step
    device      device and precision, autocast, torch.compile with fallbacks
    optim       the optimizer          schedule   the learning-rate schedule
    batch_size  the largest batch that fits the GPU, found once
    ema         a moving average of the weights
    evaluate    loss, accuracy and the confusion matrix on a split
    hooks       how a run reports progress and hears a stop request
    ranks       one run on several processes (torchrun / DDP): the loop's side
    transfer    starting from trained weights: what fits, what carries over, freezing
    checkpoint  safetensors + JSON checkpoints     model_card   model.json (torch-free)
    run_files   the names of the files in a run's folder (torch-free)
    recipes     one-click configs adapted to the dataset
    lr_find     the learning-rate range test

Arrows point down only: training never imports core.runs, core.serving or core.analysis.
"""

from core.lazy import facade

__all__, __getattr__, __dir__ = facade(__name__, {
    "loop": ("fit", "StopRequested", "NonFiniteLoss"),
    "prepare": ("PreparedRun", "prepare"),
    "transfer": ("load_matching_weights", "same_network", "can_freeze", "what_carries_over",
                 "CUSTOM_NAME"),
    "device": ("pick_device", "describe_device", "visible_gpus", "autocast_for"),
    "optim": ("make_optimizer",),
    "schedule": ("lr_factor", "lr_curve"),
    "batch_size": ("auto_batch_size", "NO_PROBE_BATCH"),
    "ema": ("WeightEMA",),
    "evaluate": ("evaluate", "per_class_metrics"),
    "hooks": ("Hooks", "HookList", "LogFile", "ProgressBar"),
    "checkpoint": ("save_checkpoint", "load_checkpoint", "has_checkpoint", "load_weights"),
    "model_card": ("read_model_card", "write_model_card"),
    "run_files": ("MODEL_CARD", "LOG", "has_trained_model", "weights_file"),
    "recipes": ("RECIPES", "recipe_config", "recipe_settings", "suggested_recipe"),
    "lr_find": ("lr_find",),
})
