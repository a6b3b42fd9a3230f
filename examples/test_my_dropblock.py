"""A user's test-suite for their own DropBlock, with dropblock-bench's assertion and fixture.

    pytest examples/test_my_dropblock.py --dbench-quick     # quick mode for every fixture use

``assert_dropblock`` raises ``AssertionError`` listing every check that failed, with its reason.
The fixture of the same name comes from the pytest plugin dropblock-bench installs; it takes
``--dbench-quick`` and ``--dbench-seed N`` from the command line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from dropblock_bench.testing import assert_dropblock


def _load_my_dropblock():
    """examples/my_dropblock.py; in your own suite this is ``from my_package import drop``."""
    path = Path(__file__).with_name("my_dropblock.py")
    spec = importlib.util.spec_from_file_location("my_dropblock", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


drop = _load_my_dropblock().drop


def drop_shared(x, p, block_size):
    """``drop`` with one mask per sample, shared by all its channels."""
    mask = drop(torch.ones_like(x[:, :1]), p, block_size)  # 0 where dropped, the scale elsewhere
    return x * mask


def test_my_dropblock_keeps_the_paper_contract():
    assert_dropblock(drop, quick=True)


def test_with_the_fixture(assert_dropblock):  # the plugin's fixture, shadowing the import on purpose
    report = assert_dropblock(drop)  # quick when pytest runs with --dbench-quick
    assert not report.failures


def test_a_shared_mask_breaks_the_paper_contract():
    with pytest.raises(AssertionError, match="independence"):
        assert_dropblock(drop_shared, quick=True)


def test_a_shared_mask_passes_when_declared():
    assert_dropblock(drop_shared, {"mask": "shared"}, quick=True)


def test_the_conventions_at_p_0_and_p_1():
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(drop(x, 0.0, 3), x)
    assert torch.count_nonzero(drop(x, 1.0, 3)) == 0
