"""The optimizer a config asks for, with no weight decay on biases and normalisation weights."""

from __future__ import annotations

import torch

from core.config import TrainConfig


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters():
        (decay if parameter.ndim > 1 else no_decay).append(parameter)  # no decay on bias / norm
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    lr = config.peak_lr()
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=lr)
