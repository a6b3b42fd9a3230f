"""Scheduled DropBlock in a training loop: p ramps linearly from 0 to its target (the paper's schedule).

A two-layer conv net on random data, a few SGD steps on the CPU (a couple of seconds):

    python examples/train_scheduled.py

``ScheduledDropBlock2d(..., ramp_length=N)`` advances one step per forward pass in training
mode; with ``unit="epoch"`` it advances when you call ``ScheduledDropBlock2d.step_all(model)``
instead. The ramp's position is in the module's ``state_dict``, so a resumed run continues it.
"""

from __future__ import annotations

import torch
from torch import nn

from dropblock_bench import DropBlock2d, ScheduledDropBlock2d


def make_model(ramp_length: int) -> nn.Module:
    """conv, ReLU, scheduled DropBlock (p ramps to 0.1, block 3), conv, global average pool, linear."""
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        ScheduledDropBlock2d(DropBlock2d(p=0.1, block_size=3), ramp_length=ramp_length),
        nn.Conv2d(8, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def main(steps: int = 8, ramp_length: int = 4, seed: int = 0) -> float:
    """Train for ``steps`` steps; returns the drop probability in force at the end."""
    torch.manual_seed(seed)
    model = make_model(ramp_length)
    block = next(m for m in model.modules() if isinstance(m, ScheduledDropBlock2d))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = torch.randn(16, 3, 16, 16), torch.randint(0, 2, (16,))
    model.train()
    for step in range(steps):
        p_used = block.p  # the p this forward pass drops with
        loss = nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        print(f"step {step}: p={p_used:.3f} loss={loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        model(images)  # eval mode: DropBlock is the identity and the ramp does not move
    return block.p


if __name__ == "__main__":
    print(f"final p: {main():.3f}")
