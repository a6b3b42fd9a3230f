"""The peer adapters call their library as documented, tested with stand-in modules so they run
where the libraries are not installed (tests/verify/test_peers.py runs the real ones)."""

from __future__ import annotations

import sys
import types
from typing import ClassVar

import pytest
import torch
from dropblock_bench.implementations import family_peers, peer_records, peers


class _Recorder:
    """A stand-in DropBlock module class: records its constructor and train() arguments."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def train(self, mode: bool):
        self.training = mode
        return self

    def __call__(self, x):
        _Recorder.calls.append({**self.kwargs, "training": self.training})
        return x * 2


@pytest.fixture
def fake_libraries(monkeypatch):
    _Recorder.calls = []
    calls = []

    def drop_block2d(x, p, block_size, inplace=False, training=True):
        calls.append({"p": p, "block_size": block_size, "inplace": inplace, "training": training})
        return x * 3

    torchvision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.drop_block2d, torchvision.ops = drop_block2d, ops
    timm, layers = types.ModuleType("timm"), types.ModuleType("timm.layers")
    layers.DropBlock2d, timm.layers = _Recorder, layers
    dropblock = types.ModuleType("dropblock")
    dropblock.DropBlock2D = _Recorder
    for name, module in {"torchvision": torchvision, "torchvision.ops": ops, "timm": timm, "timm.layers": layers,
                         "dropblock": dropblock}.items():  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_torchvision_adapter_passes_every_argument(fake_libraries):
    x = torch.ones(1, 1, 4, 4)
    out = peers.torchvision_drop_block2d(x, 0.2, 3, training=False, inplace=True)
    assert torch.equal(out, x * 3)
    assert fake_libraries == [{"p": 0.2, "block_size": 3, "inplace": True, "training": False}]


@pytest.mark.parametrize(("adapter", "coupled"), [(peers.timm_drop_block2d, True), (peers.timm_per_channel_drop_block2d, False)])
def test_timm_adapters_choose_channel_coupling(fake_libraries, adapter, coupled):
    x = torch.ones(1, 1, 4, 4)
    assert torch.equal(adapter(x, 0.2, 5, inplace=True), x * 2)
    assert _Recorder.calls == [{"drop_prob": 0.2, "block_size": 5, "inplace": True, "couple_channels": coupled, "training": True}]


def test_dropblock_package_adapter_and_its_missing_in_place_mode(fake_libraries):
    x = torch.ones(1, 1, 4, 4)
    assert torch.equal(peers.dropblock_package_drop_block2d(x, 0.3, 3, training=False), x * 2)
    assert _Recorder.calls == [{"drop_prob": 0.3, "block_size": 3, "training": False}]
    with pytest.raises(NotImplementedError, match="no in-place mode"):
        peers.dropblock_package_drop_block2d(x, 0.3, 3, inplace=True)


def test_records_point_at_the_adapters_and_are_offered_only_when_installed(monkeypatch):
    for peer in peer_records.PEERS:
        module, _, attribute = peer.record.target.partition(":")
        adapters = family_peers if peer in peer_records.FAMILY_PEERS else peers
        assert module == adapters.__name__ and callable(getattr(adapters, attribute))
    monkeypatch.setattr(peer_records.importlib.util, "find_spec", lambda name: None)
    assert peer_records.installed_peers() == []
