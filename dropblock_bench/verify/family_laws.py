"""What ``dbench verify`` needs of each family's exact law, in one shape, for one case.

The family verifier (:mod:`.family_engine`) calls an implementation on a positive input, reads
the dropped elements as the zeros of the output, and asks a :class:`CaseLaw` what it should
have seen: the expected dropped fraction of a call and its exact variance, the structure every
call must have (exact), the factor on kept elements, the eval-mode factor, the per-position drop
probabilities of its replicates, which values the contract makes independent, and the variance
shift. The laws themselves live in :mod:`dropblock_bench.families`; nothing is derived here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from dropblock_bench import spec
from dropblock_bench.families import cutout, drop_path, dropblock3d, spatial_dropout
from dropblock_bench.families.unit_dropout import UnitLaw, constant_within_units

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["CaseLaw", "FamilyCase", "case_law"]


@dataclasses.dataclass(frozen=True)
class FamilyCase:
    """One input shape and the call's arguments after ``x`` (``(p,)``, ``(p, block_size)`` or
    ``(n_holes, length)``)."""

    shape: tuple[int, ...]
    arguments: tuple[float | int, ...]

    @property
    def label(self) -> str:
        names = {1: ("p",), 2: ("p", "k")}
        shape = "x".join(map(str, self.shape))
        if isinstance(self.arguments[0], int) and len(self.arguments) == 2:  # cutout
            return f"{shape} holes={self.arguments[0]} L={self.arguments[1]}"
        return f"{shape} " + " ".join(f"{n}={a:g}" for n, a in zip(names[len(self.arguments)], self.arguments))


class CaseLaw:
    """The exact law of one case under one contract (see the module docstring). Subclasses fill
    in the attributes; every method takes a bool ``dropped`` tensor of the input's shape."""

    expected_rate: float
    """Expected fraction of dropped elements in one call."""
    rate_variance: float
    """Exact variance of one call's dropped fraction."""
    eval_factor: float
    """Eval mode returns ``x * eval_factor``."""
    variance_shift: float
    """``Var(training output) / Var(eval output)`` for zero-mean unit-variance input."""
    variance_shift_exact: bool = True
    position_probabilities: torch.Tensor
    """float64 (P,): each position's drop probability in every replicate."""

    def structure_problem(self, dropped: torch.Tensor) -> str | None:
        """Why one call's dropped set is not what the contract's structure allows (None: it is)."""
        raise NotImplementedError

    def replicates(self, dropped: torch.Tensor) -> torch.Tensor:
        """(R, P) bool: one call's independent replicates, each a map of P positions."""
        raise NotImplementedError

    def independent_values(self, dropped: torch.Tensor) -> torch.Tensor:
        """(S, U) float64: one value per (sample, unit within the sample) that the contract draws
        independently of every other in the call: S samples (1 where the batch shares one draw)
        and U units a sample (its channels' maps; 1 where they share one draw or a sample is
        the unit)."""
        raise NotImplementedError

    def kept_factor(self, dropped: torch.Tensor) -> torch.Tensor:
        """float64, broadcastable to ``dropped``: what kept elements must be multiplied by."""
        raise NotImplementedError


class _UnitCase(CaseLaw):
    """DropPath and SpatialDropout: one Bernoulli draw per unit."""

    def __init__(self, law: UnitLaw, unit_shape: tuple[int, ...], name: str) -> None:
        import torch

        self.law, self.unit_shape, self.name = law, unit_shape, name
        self.expected_rate, self.rate_variance = law.drop_rate, law.drop_rate_variance
        self.eval_factor, self.variance_shift = law.eval_scale, law.variance_shift
        self.position_probabilities = torch.full((law.units,), law.p, dtype=torch.float64)

    def structure_problem(self, dropped: torch.Tensor) -> str | None:
        if constant_within_units(dropped, self.unit_shape):
            return None
        return f"a {self.name} is partly dropped: the contract drops whole {self.name}s (draws of shape {self.unit_shape})"

    def _units(self, dropped: torch.Tensor) -> torch.Tensor:
        dims = tuple(d for d, size in enumerate(self.unit_shape) if size == 1 and dropped.shape[d] != 1)
        return (dropped.double().mean(dim=dims, keepdim=True) if dims else dropped.double()).reshape(-1)

    def replicates(self, dropped: torch.Tensor) -> torch.Tensor:
        return (self._units(dropped) > 0.5).reshape(1, -1)

    def independent_values(self, dropped: torch.Tensor) -> torch.Tensor:
        units = self._units(dropped)
        samples = self.unit_shape[0]
        return units.reshape(samples, -1)

    def kept_factor(self, dropped: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.tensor(self.law.train_scale, dtype=torch.float64)


class _CutoutCase(CaseLaw):
    def __init__(self, contract: cutout.CutoutContract, shape: tuple[int, ...], n_holes: int, length: int) -> None:
        n, c, height, width = shape
        self.contract, self.shape, self.length = contract, shape, length
        self.per_channel = contract.holes is cutout.CutoutHoles.PER_CHANNEL
        self.side = cutout.patch_side(length)
        maps = n * c if self.per_channel else n
        self.position_probabilities = cutout.masked_probability_map(contract, n_holes, length, height, width).reshape(-1)
        self.expected_rate = float(self.position_probabilities.mean())
        self.rate_variance = cutout.masked_count_variance(contract, n_holes, length, height, width) / (height * width) ** 2 / maps
        self.eval_factor = 1.0
        try:
            self.variance_shift = cutout.variance_shift(contract, n_holes, length, height, width)
        except ValueError:  # too many placements to enumerate: the no-rescale value, marked approximate
            self.variance_shift, self.variance_shift_exact = 1.0 / (1.0 - self.expected_rate), False

    def structure_problem(self, dropped: torch.Tensor) -> str | None:
        if not self.per_channel and not bool((dropped == dropped[:, :1]).all()):
            return "channels of one image have different holes: the contract shares an image's holes across its channels"
        if not bool(cutout.explained_by_holes(self.contract, dropped, self.length).all()):
            if self.side == 0:
                return "pixels are cut with a zero-size patch"
            return f"a cut-out region is not made of {self.side}x{self.side} squares (clipped at the border)"
        return None

    def replicates(self, dropped: torch.Tensor) -> torch.Tensor:
        maps = dropped if self.per_channel else dropped[:, :1]
        return maps.reshape(-1, self.shape[2] * self.shape[3])

    def independent_values(self, dropped: torch.Tensor) -> torch.Tensor:
        return self.replicates(dropped).double().mean(dim=1).reshape(self.shape[0], -1)

    def kept_factor(self, dropped: torch.Tensor) -> torch.Tensor:
        import torch

        if self.contract.rescale is cutout.CutoutRescale.NONE:
            return torch.tensor(1.0, dtype=torch.float64)
        return spec.kept_scale(dropped.sum(dim=(-2, -1), keepdim=True), dropped.shape[-2] * dropped.shape[-1]).double()


class _DropBlock3dCase(CaseLaw):
    def __init__(self, contract: spec.Contract, shape: tuple[int, ...], p: float, block_size: int) -> None:
        n, c, *volume_list = shape
        volume = (volume_list[0], volume_list[1], volume_list[2])
        self.contract, self.shape, self.p, self.block_size = contract, shape, p, block_size
        self.block = dropblock3d.painted_block_shape(contract, volume, block_size)
        self.shared = contract.mask is spec.MaskSharing.SHARED
        self.one_mask = contract.batch is spec.BatchSharing.SHARED
        masks = 1 if self.one_mask else (n if self.shared else n * c)
        self.position_probabilities = dropblock3d.drop_probability_volume(contract, p, volume, block_size).reshape(-1)
        self.expected_rate = float(self.position_probabilities.mean())
        self.rate_variance = dropblock3d.drop_count_variance(contract, p, volume, block_size) / math.prod(volume) ** 2 / masks
        self.eval_factor = 1.0
        self.variance_shift, self.variance_shift_exact = dropblock3d.variance_shift(contract, p, volume, block_size)

    def structure_problem(self, dropped: torch.Tensor) -> str | None:
        if self.shared and not bool((dropped == dropped[:, :1]).all()):
            return "channels of one sample have different masks: the contract shares one mask across channels"
        if self.one_mask and not bool((dropped == dropped[:1]).all()):
            return "samples have different masks: the contract has one mask for the whole batch"
        if not bool(dropblock3d.explained_by_blocks(self.contract, dropped, self.block_size).all()):
            kd, kh, kw = self.block
            return f"a dropped region is not made of whole {kd}x{kh}x{kw} blocks"
        return None

    def replicates(self, dropped: torch.Tensor) -> torch.Tensor:
        maps = dropped[:1] if self.one_mask else dropped
        maps = maps[:, :1] if self.shared else maps
        return maps.reshape(-1, math.prod(self.shape[2:]))

    def independent_values(self, dropped: torch.Tensor) -> torch.Tensor:
        samples = 1 if self.one_mask else self.shape[0]
        return self.replicates(dropped).double().mean(dim=1).reshape(samples, -1)

    def kept_factor(self, dropped: torch.Tensor) -> torch.Tensor:
        return dropblock3d.normalisation_scale(self.contract, dropped, self.p, self.block_size).double()


def case_law(family: str, contract: Any, case: FamilyCase) -> CaseLaw:
    """The law of ``case`` for an implementation of ``family`` declaring ``contract``."""
    if family == "drop-path":
        p = float(case.arguments[0])
        return _UnitCase(drop_path.law(contract, p, case.shape), drop_path.unit_shape(contract, case.shape), str(contract.unit))
    if family == "spatial-dropout":
        p = float(case.arguments[0])
        return _UnitCase(spatial_dropout.law(contract, p, case.shape), spatial_dropout.unit_shape(contract, case.shape),
                         str(contract.unit))  # fmt: skip
    if family == "cutout":
        n_holes, length = (int(a) for a in case.arguments)
        return _CutoutCase(contract, case.shape, n_holes, length)
    if family == "dropblock3d":
        return _DropBlock3dCase(contract, case.shape, float(case.arguments[0]), int(case.arguments[1]))
    raise ValueError(f"no family verifier for {family!r}")
