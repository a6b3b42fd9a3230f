"""The regularizer families ``dbench`` knows: what a call of each looks like and what its
contract is. No torch import (``dbench list`` stays fast).

A family fixes the callable's signature (training mode; the keywords ``training``,
``inplace`` and ``generator`` are optional), the contract type its implementations declare,
and that contract's reference value (the first value of each axis: the paper's for DropBlock,
timm's and torchvision's for DropPath, the reference code's for Cutout).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from dropblock_bench.spec import MAIN_FIELDS, PAPER_CONTRACT, Contract

from .cutout import DEFAULT_CONTRACT as CUTOUT_DEFAULT
from .cutout import CutoutContract
from .drop_path import DEFAULT_CONTRACT as DROP_PATH_DEFAULT
from .drop_path import DropPathContract
from .spatial_dropout import DEFAULT_CONTRACT as SPATIAL_DEFAULT
from .spatial_dropout import SpatialDropoutContract

__all__ = [
    "DROPBLOCK2D",
    "FAMILIES",
    "Family",
    "FamilyContract",
    "contract_fields",
    "departures",
    "family_named",
]

FamilyContract = Contract | DropPathContract | SpatialDropoutContract | CutoutContract
"""Any family's contract."""


@dataclasses.dataclass(frozen=True)
class Family:
    """One family of regularizers.

    Attributes:
        name: what ``--family`` takes, e.g. ``"drop-path"``.
        title: a human name, e.g. ``"DropPath (stochastic depth)"``.
        contract_type: the contract class its implementations declare.
        reference_contract: the first value of every axis (what departures are measured from).
        arguments: the callable's arguments after ``x``, e.g. ``("p", "block_size")``.
        example_arguments: values a signature check binds them to.
        input_layout: the input the callable takes, e.g. ``"(N, C, H, W)"``.
        reference_name: whose the reference contract is, e.g. ``"the paper (Algorithm 1)"``.
        main_fields: the contract fields ``dbench list`` gives columns (the others show below
            an entry where they depart from the reference).
        ranks: the input ranks ``dbench run`` and ``dbench show`` take for it, e.g. ``(4,)``
            (Cutout's calls also take one (C, H, W) image; its runs time batches).
        shape_hint: how a shape of it is written, e.g. ``"NxCxHxW"``.
    """

    name: str
    title: str
    contract_type: type
    reference_contract: Any
    arguments: tuple[str, ...]
    example_arguments: tuple[float | int, ...]
    input_layout: str
    reference_name: str
    main_fields: tuple[str, ...]
    ranks: tuple[int, ...] = (4,)
    shape_hint: str = "NxCxHxW"

    @property
    def takes_block(self) -> bool:
        """Whether a call takes a block size (DropBlock's ``block_size``, Cutout's ``length``):
        ``dbench run``'s ``--block-size``."""
        return "block_size" in self.arguments or "length" in self.arguments

    @property
    def takes_p(self) -> bool:
        """Whether a call takes a drop probability ``p``."""
        return "p" in self.arguments

    @property
    def signature(self) -> str:
        """``f(x, p, block_size)`` and the like."""
        return f"f({', '.join(('x', *self.arguments))})"


_PAPER = "the paper (Algorithm 1)"
DROPBLOCK2D = Family("dropblock2d", "DropBlock2d", Contract, PAPER_CONTRACT, ("p", "block_size"), (0.1, 3),
                     "(N, C, H, W)", _PAPER, MAIN_FIELDS)  # fmt: skip
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        DROPBLOCK2D,
        Family("dropblock3d", "DropBlock3d", Contract, PAPER_CONTRACT, ("p", "block_size"), (0.1, 3),
               "(N, C, D, H, W)", _PAPER + " in 3-D", MAIN_FIELDS, (5,), "NxCxDxHxW"),
        Family("drop-path", "DropPath (stochastic depth)", DropPathContract, DROP_PATH_DEFAULT, ("p",), (0.1,),
               "(N, ...), dimension 0 the sample", "timm's and torchvision's DropPath", ("unit", "scale"),
               (2, 3, 4, 5), "NxL[xD...]"),
        Family("spatial-dropout", "SpatialDropout", SpatialDropoutContract, SPATIAL_DEFAULT, ("p",), (0.1,),
               "(N, C, ...)", "PyTorch's dropout2d/dropout3d on (N, C, ...)", ("unit", "scale"),
               (3, 4, 5), "NxCxL[xH[xW]]"),
        Family("cutout", "Cutout", CutoutContract, CUTOUT_DEFAULT, ("n_holes", "length"), (1, 4),
               "(N, C, H, W) or (C, H, W)", "the Cutout paper's code", ("centre", "holes", "rescale"),
               (4,), "NxCxHxW"),
    )
}
"""Every family, DropBlock2d first."""


def family_named(name: str) -> Family:
    """The family called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}") from None


def contract_fields(contract: FamilyContract) -> dict[str, str]:
    """A contract as ``{field: value}`` strings, in declaration order."""
    return {field.name: str(_plain(getattr(contract, field.name))) for field in dataclasses.fields(contract)}


def departures(family: Family, contract: FamilyContract) -> list[str]:
    """The fields of ``contract`` that differ from the family's reference contract."""
    reference = contract_fields(family.reference_contract)
    return [name for name, value in contract_fields(contract).items() if reference.get(name) != value]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value
