"""Registry records of the peer adapters, for the libraries that are installed (no imports of them).

Each contract is the library's real behaviour, read from its source (torchvision 0.29,
timm 1.0.31, dropblock 0.3.0, MONAI, mmcv-lite 2.2), so ``dbench verify`` judges it against what it does and reports
where that departs from the paper. Where a library does something no contract field can say,
the description says it. timm (1.0.31) seeds anywhere, reaches up-left with even blocks
and clamps a large block per axis (``min(k, H) x min(k, W)``, the gamma too).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util

from dropblock_bench.families.catalog import FamilyContract
from dropblock_bench.families.drop_path import DropPathContract
from dropblock_bench.families.spatial_dropout import SpatialDropoutContract
from dropblock_bench.registry import DTYPE_NAMES, Implementation
from dropblock_bench.spec import PAPER_CONTRACT, Contract

_ADAPTERS = "dropblock_bench.implementations.peers"
_FAMILY_ADAPTERS = "dropblock_bench.implementations.family_peers"
INSTALL_HINT = "pip install 'dropblock-bench[peers]'"


@dataclasses.dataclass(frozen=True)
class Peer:
    """A public implementation: its record, the module that must import, its distribution."""

    record: Implementation
    module: str
    distribution: str

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def with_version(self) -> Implementation:
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        return dataclasses.replace(self.record, origin=f"{self.distribution} {version}")


def _family_peer(name: str, adapter: str, family: str, contract: FamilyContract, description: str, module: str,
                 distribution: str, supports_inplace: bool = False) -> Peer:  # fmt: skip
    """A peer of another family than DropBlock2d: no generator, in place only where said."""
    record = Implementation(name=name, target=f"{_FAMILY_ADAPTERS}:{adapter}", contract=contract, description=description,
                            dtypes=DTYPE_NAMES, family=family, supports_generator=False,
                            supports_inplace=supports_inplace)  # fmt: skip
    return Peer(record, module=module, distribution=distribution)


ROW_INVERTED = DropPathContract(unit="row", scale="inverted")
FAMILY_PEERS: tuple[Peer, ...] = (
    _family_peer("torchvision-drop-block3d", "torchvision_drop_block3d", "dropblock3d", PAPER_CONTRACT,
                 "torchvision.ops.drop_block3d: odd block sizes only; kept count summed in the input dtype.",
                 "torchvision", "torchvision", supports_inplace=True),
    _family_peer("torchvision-stochastic-depth", "torchvision_stochastic_depth", "drop-path", ROW_INVERTED,
                 "torchvision.ops.stochastic_depth(mode='row'): the draw in the input dtype.", "torchvision", "torchvision"),
    _family_peer("torchvision-stochastic-depth-batch", "torchvision_stochastic_depth_batch", "drop-path",
                 DropPathContract(unit="batch", scale="inverted"),
                 "torchvision.ops.stochastic_depth(mode='batch'): one draw for the whole batch.", "torchvision", "torchvision"),
    _family_peer("timm-drop-path", "timm_drop_path", "drop-path", ROW_INVERTED,
                 "timm.layers.drop_path (scale_by_keep=True): a Bernoulli draw in the input dtype.", "timm", "timm"),
    _family_peer("monai-drop-path", "monai_drop_path", "drop-path", ROW_INVERTED,
                 "MONAI's DropPath (scale_by_keep=True): as timm's.", "monai", "monai"),
    _family_peer("mmcv-drop-path", "mmcv_drop_path", "drop-path", ROW_INVERTED,
                 "mmcv's DropPath: floor(1 - p + u), u drawn in the input dtype (coarse in bfloat16).", "mmcv", "mmcv-lite"),
    _family_peer("dropblock-pkg-3d", "dropblock_package_drop_block3d", "dropblock3d",
                 Contract(mask="shared", seeds="anywhere", gamma="naive", norm="batch"),
                 "The dropblock package's DropBlock3D: p/k³ seeds anywhere, one mask per sample.", "dropblock", "dropblock"),
    _family_peer("torch-dropout2d", "torch_dropout2d", "spatial-dropout", SpatialDropoutContract(unit="map", scale="inverted"),
                 "torch.nn.functional.dropout2d as it is: maps of 3-D and 5-D inputs too (with a warning).", "torch", "torch",
                 supports_inplace=True),
    _family_peer("torch-dropout3d", "torch_dropout3d", "spatial-dropout", SpatialDropoutContract(unit="map", scale="inverted"),
                 "torch.nn.functional.dropout3d as it is: a 4-D input is read as one unbatched (C, D, H, W) volume.",
                 "torch", "torch", supports_inplace=True),
)
"""DropBlock3d, DropPath and SpatialDropout peers, each with the contract its library has (the
torch ones' as documented: verify shows where a rank departs from it)."""

PEERS: tuple[Peer, ...] = (
    Peer(
        Implementation(
            name="torchvision",
            target=f"{_ADAPTERS}:torchvision_drop_block2d",
            contract=PAPER_CONTRACT,
            description="torchvision.ops.drop_block2d: odd block sizes only; kept count summed in the input dtype.",
            dtypes=DTYPE_NAMES,
            supports_generator=False,
        ),
        module="torchvision",
        distribution="torchvision",
    ),
    Peer(
        Implementation(
            name="timm",
            target=f"{_ADAPTERS}:timm_drop_block2d",
            contract=Contract(mask="shared", seeds="anywhere", gamma="paper", norm="batch", anchor="up-left", clamp="per-axis"),
            description="timm DropBlock2d as shipped (couple_channels=True): one mask for all channels.",
            dtypes=DTYPE_NAMES,
            supports_generator=False,
        ),
        module="timm",
        distribution="timm",
    ),
    Peer(
        Implementation(
            name="timm-per-channel",
            target=f"{_ADAPTERS}:timm_per_channel_drop_block2d",
            contract=Contract(mask="per-channel", seeds="anywhere", gamma="paper", norm="batch", anchor="up-left", clamp="per-axis"),
            description="timm DropBlock2d(couple_channels=False): one mask per channel, otherwise as timm.",
            dtypes=DTYPE_NAMES,
            supports_generator=False,
        ),
        module="timm",
        distribution="timm",
    ),
    Peer(
        Implementation(
            name="dropblock-pkg",
            target=f"{_ADAPTERS}:dropblock_package_drop_block2d",
            contract=Contract(mask="shared", seeds="anywhere", gamma="naive", norm="batch"),
            description="The dropblock package's DropBlock2D: p/k² seeds anywhere, one mask per sample.",
            dtypes=DTYPE_NAMES,
            supports_generator=False,
            supports_inplace=False,
        ),
        module="dropblock",
        distribution="dropblock",
    ),
    *FAMILY_PEERS,
)


def missing_peers() -> list[tuple[Implementation, str]]:
    """Entry point (``dropblock_bench.not_installed``): the peers whose library is missing, each
    with how to install it."""
    return [(peer.record, INSTALL_HINT) for peer in PEERS if not peer.installed()]


def installed_peers() -> list[Implementation]:
    """Entry point: the records of the peers whose library is importable."""
    return [peer.with_version() for peer in PEERS if peer.installed()]
