"""Registry records of the built-in implementations (no torch import: ``dbench list`` stays fast).

Each family module reads its contract from its record here, so the contract an
implementation declares and the one it runs with cannot drift apart.
"""

from __future__ import annotations

from dropblock_bench.registry import Implementation
from dropblock_bench.spec import PAPER_CONTRACT, Contract

_PACKAGE = "dropblock_bench.implementations"
_ORIGIN = "dropblock-bench"

BLOG_STYLE = Implementation(
    name="blog-style",
    target=f"{_PACKAGE}.blog_style:drop_block2d",
    contract=Contract(mask="shared", seeds="anywhere", gamma="naive", norm="batch"),
    description="The max-pool DropBlock of a popular blog post: p/k² seeds anywhere, one mask per sample.",
    origin=_ORIGIN,
)

PAPER = Implementation(
    name="paper",
    target=f"{_PACKAGE}.paper:drop_block2d",
    contract=PAPER_CONTRACT,
    description="Algorithm 1 of Ghiasi et al. (NeurIPS 2018), step by step; the reference.",
    origin=_ORIGIN,
)

FUSED = Implementation(
    name="fused",
    target=f"{_PACKAGE}.fused:drop_block2d",
    contract=PAPER_CONTRACT,
    description="Paper contract, fast: exact sparse seeds, no mask, one pass (C kernel on CPU, Triton on CUDA).",
    origin=_ORIGIN,
    backend=f"{_PACKAGE}.fused:backend_status",
)

FUSED_SHARED = Implementation(
    name="fused-shared",
    target=f"{_PACKAGE}.fused:drop_block2d_shared",
    contract=PAPER_CONTRACT.replace(mask="shared"),
    description="Like fused, with one mask per sample shared by all channels.",
    origin=_ORIGIN,
    backend=f"{_PACKAGE}.fused:backend_status",
)

BUILTINS: tuple[Implementation, ...] = (BLOG_STYLE, PAPER, FUSED, FUSED_SHARED)
