"""Registry records of the built-in implementations of the families beside DropBlock2d:
DropBlock3d, DropPath, SpatialDropout and Cutout (no torch import: ``dbench list`` stays fast).

Each implementation module takes its contract from the constant its record here declares, so
the contract an implementation declares and the one it runs with cannot drift apart.
"""

from __future__ import annotations

from dropblock_bench.families.cutout import DEFAULT_CONTRACT as CUTOUT_CONTRACT
from dropblock_bench.families.drop_path import DEFAULT_CONTRACT as DROP_PATH_CONTRACT
from dropblock_bench.families.drop_path import DropPathContract
from dropblock_bench.families.spatial_dropout import DEFAULT_CONTRACT as SPATIAL_DROPOUT_CONTRACT
from dropblock_bench.registry import Implementation
from dropblock_bench.spec import PAPER_CONTRACT

DROP_PATH_BLOG_CONTRACT = DropPathContract(unit="batch", scale="eval-time")
"""The stochastic-depth blog's residual block: one coin per call, scaling at eval time."""

_PACKAGE = "dropblock_bench.implementations"
_ORIGIN = "dropblock-bench"

DROPBLOCK3D = Implementation(
    name="dropblock3d",
    target=f"{_PACKAGE}.dropblock3d:drop_block3d",
    contract=PAPER_CONTRACT,
    description="DropBlock on (N, C, D, H, W), the paper's law with k³ cubes, fast: sparse seeds, one pass.",
    origin=_ORIGIN,
    family="dropblock3d",
)
DROPBLOCK3D_REFERENCE = Implementation(
    name="dropblock3d-reference",
    target=f"{_PACKAGE}.dropblock3d:drop_block3d_reference",
    contract=PAPER_CONTRACT,
    description="DropBlock3d step by step: dense Bernoulli seeds painted by shifts, then the exact scale.",
    supports_inplace=False,
    origin=_ORIGIN,
    family="dropblock3d",
)

DROP_PATH = Implementation(
    name="drop-path",
    target=f"{_PACKAGE}.drop_path:drop_path",
    contract=DROP_PATH_CONTRACT,
    description="Stochastic depth per sample, kept rows / (1 - p), fast: one pass over x, in place too.",
    origin=_ORIGIN,
    family="drop-path",
)
DROP_PATH_REFERENCE = Implementation(
    name="drop-path-reference",
    target=f"{_PACKAGE}.drop_path:drop_path_reference",
    contract=DROP_PATH_CONTRACT,
    description="Stochastic depth per sample, step by step: a Bernoulli keep, divided by 1 - p.",
    supports_inplace=False,
    origin=_ORIGIN,
    family="drop-path",
)
DROP_PATH_BLOG = Implementation(
    name="drop-path-blog",
    target=f"{_PACKAGE}.drop_path:drop_path_blog",
    contract=DROP_PATH_BLOG_CONTRACT,
    description="The stochastic-depth blog's block: one coin per call for the batch, x (1 - p) at eval.",
    supports_inplace=False,
    origin=_ORIGIN,
    family="drop-path",
)

SPATIAL_DROPOUT = Implementation(
    name="spatial-dropout",
    target=f"{_PACKAGE}.spatial_dropout:spatial_dropout",
    contract=SPATIAL_DROPOUT_CONTRACT,
    description="Whole feature maps dropped, kept ones / (1 - p), fast: one pass over x, in place too.",
    origin=_ORIGIN,
    family="spatial-dropout",
)
SPATIAL_DROPOUT_REFERENCE = Implementation(
    name="spatial-dropout-reference",
    target=f"{_PACKAGE}.spatial_dropout:spatial_dropout_reference",
    contract=SPATIAL_DROPOUT_CONTRACT,
    description="Whole feature maps dropped, step by step: a Bernoulli keep per map, divided by 1 - p.",
    supports_inplace=False,
    origin=_ORIGIN,
    family="spatial-dropout",
)

CUTOUT = Implementation(
    name="cutout",
    target=f"{_PACKAGE}.cutout:cutout",
    contract=CUTOUT_CONTRACT,
    description="Cutout for whole batches: holes' spans compared with arange, one masked fill.",
    origin=_ORIGIN,
    family="cutout",
)
CUTOUT_BLOG = Implementation(
    name="cutout-blog",
    target=f"{_PACKAGE}.cutout:cutout_blog",
    contract=CUTOUT_CONTRACT,
    description="The Cutout blog's loop: image by image, hole by hole, a float mask zeroed by slices.",
    supports_inplace=False,
    origin=_ORIGIN,
    family="cutout",
)
CUTOUT_REFERENCE = Implementation(
    name="cutout-reference",
    target=f"{_PACKAGE}.cutout:cutout_reference",
    contract=CUTOUT_CONTRACT,
    description="Cutout from the contract's reference sampler, applied with a masked fill.",
    supports_inplace=False,
    origin=_ORIGIN,
    family="cutout",
)

FAMILY_BUILTINS: tuple[Implementation, ...] = (
    DROPBLOCK3D, DROPBLOCK3D_REFERENCE, DROP_PATH, DROP_PATH_REFERENCE, DROP_PATH_BLOG,
    SPATIAL_DROPOUT, SPATIAL_DROPOUT_REFERENCE, CUTOUT, CUTOUT_BLOG, CUTOUT_REFERENCE,
)  # fmt: skip
"""Every built-in record here (one entry point registers them all)."""
