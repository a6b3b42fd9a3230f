"""Scheduled DropBlock: a linear ramp of p whose position survives state_dict."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dropblock_bench import DropBlock2d, ScheduledDropBlock2d


def test_ramps_linearly_per_training_step_and_stops_at_target():
    block = ScheduledDropBlock2d(DropBlock2d(p=0.2, block_size=3), ramp_length=4)
    x = torch.ones(2, 2, 8, 8)
    seen = []
    for _ in range(6):
        seen.append(block.p)
        assert block.drop_block.p == block.p  # the wrapped module drops at the ramp's p
        block(x)
    assert seen == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert block(x).shape == x.shape


def test_first_step_drops_nothing_and_eval_does_not_advance():
    block = ScheduledDropBlock2d(DropBlock2d(p=0.5, block_size=3), ramp_length=10)
    x = torch.randn(2, 2, 8, 8)
    assert torch.equal(block(x), x)  # p = 0 at position 0
    block.eval()
    block(x)
    assert block.position == 1


def test_epoch_ramp_advances_only_on_step():
    model = nn.Sequential(
        ScheduledDropBlock2d(DropBlock2d(p=0.1, block_size=3), ramp_length=5, unit="epoch"),
        ScheduledDropBlock2d(DropBlock2d(p=0.3, block_size=3), ramp_length=5, unit="epoch"),
    )
    x = torch.ones(1, 1, 8, 8)
    model(x)
    model(x)
    assert [m.position for m in model] == [0, 0]
    assert ScheduledDropBlock2d.step_all(model) == 2
    assert [m.p for m in model] == pytest.approx([0.02, 0.06])


def test_position_is_saved_and_restored_through_state_dict():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), ScheduledDropBlock2d(DropBlock2d(p=0.2, block_size=3), ramp_length=100))
    for _ in range(37):
        model(torch.ones(1, 1, 10, 10))
    state = model.state_dict()
    resumed = nn.Sequential(nn.Conv2d(1, 2, 3), ScheduledDropBlock2d(DropBlock2d(p=0.2, block_size=3), ramp_length=100))
    resumed.load_state_dict(state)
    assert resumed[1].position == 37
    assert resumed[1].p == pytest.approx(0.2 * 37 / 100)
    assert resumed[1].drop_block.p == pytest.approx(0.2 * 37 / 100)
    for other in ({"ramp_length": 50}, {"unit": "epoch"}):
        mismatched = ScheduledDropBlock2d(DropBlock2d(p=0.2, block_size=3), **{"ramp_length": 100, **other})
        with pytest.raises(ValueError, match="build the module as it was saved"):
            mismatched.load_state_dict({"_extra_state": state["1._extra_state"]})


def test_bad_arguments():
    with pytest.raises(ValueError, match="ramp_length"):
        ScheduledDropBlock2d(DropBlock2d(), ramp_length=0)
    with pytest.raises(ValueError, match="unit"):
        ScheduledDropBlock2d(DropBlock2d(), ramp_length=3, unit="batch")
    with pytest.raises(ValueError, match="attribute `p`"):
        ScheduledDropBlock2d(nn.Identity(), ramp_length=3)
