"""Registry records of the peer adapters, for the libraries that are installed (no imports of them).

Each contract is the library's real behaviour, read from its source (torchvision 0.29,
timm 1.0.31, dropblock 0.3.0), so ``dbench verify`` judges it against what it does and reports
where that departs from the paper. Where a library does something no contract field can say,
the description says it. timm (1.0.31) seeds anywhere, reaches up-left with even blocks
and clamps a large block per axis (``min(k, H) x min(k, W)``, the gamma too).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util

from dropblock_bench.registry import DTYPE_NAMES, Implementation
from dropblock_bench.spec import PAPER_CONTRACT, Contract

_ADAPTERS = "dropblock_bench.implementations.peers"
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
)


def missing_peers() -> list[tuple[Implementation, str]]:
    """Entry point (``dropblock_bench.not_installed``): the peers whose library is missing, each
    with how to install it."""
    return [(peer.record, INSTALL_HINT) for peer in PEERS if not peer.installed()]


def installed_peers() -> list[Implementation]:
    """Entry point: the records of the peers whose library is importable."""
    return [peer.with_version() for peer in PEERS if peer.installed()]
