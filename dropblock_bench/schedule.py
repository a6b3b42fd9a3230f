"""Scheduled DropBlock: the paper's linear ramp of ``keep_prob`` from 1 to its target.

Ghiasi et al. (Section 3, "Scheduled DropBlock") found a fixed ``keep_prob`` hurts early
training and ramp it linearly from 1 to the target. In drop-probability terms:
``p(t) = target_p * min(t, ramp_length) / ramp_length``.

The position ``t`` is part of the module's ``state_dict`` (as extra state), so restoring a
checkpoint resumes the ramp where it stopped.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from dropblock_bench.spec import check_positive_int, check_probability

__all__ = ["ScheduledDropBlock2d"]

RampUnit = Literal["step", "epoch"]


class ScheduledDropBlock2d(nn.Module):
    """Wraps a DropBlock module and ramps its ``p`` linearly from 0 to its target.

    Args:
        drop_block (nn.Module): any module with a float attribute ``p`` (e.g.
            :class:`dropblock_bench.DropBlock2d`); its ``p`` at construction is the target.
        ramp_length (int): number of steps (or epochs) until ``p`` reaches the target.
        unit (str): ``"step"``: the position advances by one on every forward pass in
            training mode. ``"epoch"``: it advances only when you call :meth:`step`
            (e.g. once per epoch, or :meth:`step_all` on the whole model).

    Example::

        block = ScheduledDropBlock2d(DropBlock2d(p=0.1, block_size=7), ramp_length=5000)
    """

    def __init__(self, drop_block: nn.Module, ramp_length: int, *, unit: RampUnit = "step") -> None:
        super().__init__()
        target = getattr(drop_block, "p", None)
        if target is None:
            raise ValueError("drop_block must have a drop probability attribute `p`")
        check_probability(target)
        check_positive_int("ramp_length", ramp_length)
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch', got {unit!r}")
        self.drop_block = drop_block
        self.target_p = float(target)
        self.ramp_length = ramp_length
        self.unit: RampUnit = unit
        self.position = 0
        self._apply_p()

    @property
    def p(self) -> float:
        """The drop probability in force now, in [0, target_p]."""
        return self.target_p * min(self.position, self.ramp_length) / self.ramp_length

    def _apply_p(self) -> None:
        setattr(self.drop_block, "p", self.p)  # noqa: B010 - a float attribute of the wrapped module, not a parameter

    def step(self, count: int = 1) -> None:
        """Advance the ramp by ``count`` units (steps or epochs)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.position += count
        self._apply_p()

    @staticmethod
    def step_all(model: nn.Module, unit: RampUnit = "epoch") -> int:
        """Call :meth:`step` on every scheduled block of ``unit`` inside ``model``; returns how many."""
        blocks = [m for m in model.modules() if isinstance(m, ScheduledDropBlock2d) and m.unit == unit]
        for block in blocks:
            block.step()
        return len(blocks)

    def forward(self, input: Tensor) -> Tensor:
        """input (Tensor[N, C, H, W]) -> the wrapped module's output at the current ``p``."""
        self._apply_p()
        out = self.drop_block(input)
        if self.training and self.unit == "step":
            self.step()
        return out

    def get_extra_state(self) -> dict[str, Any]:
        return {"position": self.position, "unit": self.unit, "ramp_length": self.ramp_length}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Resume at the saved position; a checkpoint of another schedule (unit or ramp length)
        raises ValueError, since its position would mean something else here."""
        saved = {key: state[key] for key in ("unit", "ramp_length") if key in state}
        mine = {"unit": self.unit, "ramp_length": self.ramp_length}
        differ = {key: value for key, value in saved.items() if value != mine[key]}
        if differ:
            found = ", ".join(f"{key}={value!r}" for key, value in differ.items())
            wanted = ", ".join(f"{key}={mine[key]!r}" for key in differ)
            raise ValueError(f"the checkpoint's ramp has {found}, this module's {wanted}: build the module as it was saved")
        self.position = int(state["position"])
        self._apply_p()

    def extra_repr(self) -> str:
        return (
            f"target_p={self.target_p}, ramp_length={self.ramp_length}, unit={self.unit!r},"
            f" position={self.position}, p={self.p:.4g}"
        )
