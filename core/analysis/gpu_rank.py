"""One rank of `bench gpu`'s torchrun section (core.analysis.gpu_check): joins the group as a
training run does (NCCL on a GPU, gloo on the CPU), wraps a BatchNorm network as the ranks'
`attach` does (SyncBatchNorm on CUDA, DDP) and takes a few steps; rank 0 prints one JSON line."""

from __future__ import annotations

import json

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from core.training.ranks import ProcessGroup, init_process_group, leave_process_group
from models import create_model

STEPS = 3
BATCH = 16  # per rank


def main() -> None:
    init_process_group()
    try:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        torch.manual_seed(0)
        model = create_model("resnet9-small", in_chans=3, num_classes=10, image_size=32)
        model = model.to(device, memory_format=torch.channels_last)
        ranks = ProcessGroup(device, BATCH * dist.get_world_size(),
                             sync_batchnorm=device.type == "cuda")
        if ranks.sync_batchnorm:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model, ranks.group)
        ddp = DistributedDataParallel(
            model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None,
            process_group=ranks.group)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
        generator = torch.Generator(device=device).manual_seed(1 + dist.get_rank())
        loss = torch.zeros((), device=device)
        for _ in range(STEPS):
            x = torch.randn(BATCH, 3, 32, 32, device=device, generator=generator)
            y = torch.randint(0, 10, (BATCH,), device=device, generator=generator)
            loss = F.cross_entropy(ddp(x.contiguous(memory_format=torch.channels_last)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        total = loss.detach().clone()
        dist.all_reduce(total, group=ranks.group)
        if dist.get_rank() == 0:
            synced = any(isinstance(m, torch.nn.SyncBatchNorm) for m in ddp.modules())
            print(json.dumps({"world_size": dist.get_world_size(), "backend": dist.get_backend(),
                              "sync_batchnorm": synced, "steps": STEPS,
                              "loss": total.item() / dist.get_world_size()}), flush=True)
    finally:
        leave_process_group()


if __name__ == "__main__":
    main()
