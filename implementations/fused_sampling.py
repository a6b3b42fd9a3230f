"""The sampling pieces every ``fused`` back end shares: exact sparse Bernoulli seeds, the seed
geometry of a contract (from :mod:`dropblock_bench.spec`), and blocks as corners.

Its own module so that the pure-torch path, the CPU kernel (:mod:`.fused_cpu`) and the Triton
kernels (:mod:`.fused_triton`) import it without importing each other.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

from dropblock_bench import spec

__all__ = ["Blocks", "SeedGeometry", "sample_bernoulli_positions", "sample_blocks", "seed_geometry"]


class SeedGeometry(NamedTuple):
    """Where seeds fall and what they paint, in the kernel's terms (all from :mod:`dropblock_bench.spec`).

    A seed at position ``i`` of the ``rows x cols`` seed region paints the ``k x k`` block with
    top-left corner ``(top0 + i // cols, left0 + i % cols)``, clipped to the ``height x width`` map.
    Each position holds a seed with probability ``gamma``.
    """

    height: int
    width: int
    k: int
    top0: int
    rows: int
    left0: int
    cols: int
    gamma: float


def sample_bernoulli_positions(
    total: int, probability: float, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """Sorted int64 positions in ``[0, total)``, each included independently with ``probability``.

    Exact: the gaps between included positions of an iid Bernoulli sequence are iid
    Geometric(probability) on {1, 2, ...}; we draw gaps and take running sums. Costs about
    ``total * probability`` draws instead of ``total``.
    """
    if total <= 0 or probability <= 0.0:
        return torch.empty(0, dtype=torch.int64, device=device)
    if probability >= 1.0:
        return torch.arange(total, dtype=torch.int64, device=device)
    mean = total * probability
    batch = int(mean + 8.0 * math.sqrt(mean) + 16)
    pieces: list[Tensor] = []
    last = -1.0  # position of the latest seed drawn so far
    while last < total:
        gaps = torch.empty(batch, dtype=torch.float64, device=device).geometric_(probability, generator=generator)
        positions = gaps.cumsum_(0).add_(last)  # float64 is exact for integers below 2**53
        last = float(positions[-1])
        pieces.append(positions[positions < total])
    return torch.cat(pieces).to(torch.int64)


class Blocks(NamedTuple):
    """Where the blocks are: block ``i`` covers rows ``first_row[i] .. + size - 1`` of the
    (maps * H, W) view and columns ``left[i] .. + size - 1``; ``map_index[i]`` is its map."""

    map_index: Tensor
    top: Tensor
    left: Tensor
    size: int

    def first_row(self, height: int) -> Tensor:
        return self.map_index * height + self.top


@functools.lru_cache(maxsize=256)
def seed_geometry(contract: spec.Contract, height: int, width: int, block_size: int, p: float) -> SeedGeometry:
    """The seed region, block and gamma of ``contract`` on an H x W map (from :mod:`spec`),
    as both the pure-torch sampler and the CPU kernel use them."""
    k = spec.painted_block_size(contract, height, width, block_size)
    rows, cols = spec.seed_rows(contract, height, k), spec.seed_rows(contract, width, k)
    before, _ = spec.block_extent(k, contract.anchor)
    gamma = spec.gamma(contract, p, height, width, block_size)
    return SeedGeometry(height, width, k, rows.start - before, len(rows), cols.start - before, len(cols), gamma)


def sample_blocks(
    contract: spec.Contract, n_maps: int, height: int, width: int, block_size: int, p: float, generator: torch.Generator | None, device: torch.device
) -> Blocks:
    """Bernoulli(gamma) seeds on every map's seed region, as block corners (sorted by map)."""
    g = seed_geometry(contract, height, width, block_size, p)
    per_map = g.rows * g.cols
    seeds = sample_bernoulli_positions(n_maps * per_map, g.gamma, generator=generator, device=device)
    within = seeds % per_map
    return Blocks(seeds // per_map, within // g.cols + g.top0, within % g.cols + g.left0, g.k)
