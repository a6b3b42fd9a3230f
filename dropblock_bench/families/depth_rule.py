"""Per-layer drop rates for a stack of ``L`` residual blocks (stochastic depth's depth rules).

Huang et al. (2016) let the survival probability fall linearly with depth, from 1 at the input
to ``p_L`` at the last block: ``keep_l = 1 - (l / L) (1 - keep_L)``, which in drop-probability
form is ``p_l = (l / L) p_L`` for ``l = 1 .. L`` (the stochastic-depth blog writes the first).
timm's models take ``linspace(0, p_L, L)`` instead: ``p_l = (l - 1) / (L - 1) p_L``, so the first
block is never dropped and the rates step by ``p_L / (L - 1)``.
"""

from __future__ import annotations

from dropblock_bench.spec import check_positive_int, check_probability

__all__ = ["linear_drop_rates", "linspace_drop_rates"]


def linear_drop_rates(layers: int, last_drop_rate: float) -> list[float]:
    """``[l / L * p_L for l in 1 .. L]``: Huang et al.'s linear decay, as drop probabilities.
    The last layer gets ``last_drop_rate``; the first ``last_drop_rate / L``."""
    check_positive_int("layers", layers)
    check_probability(last_drop_rate)
    return [layer * last_drop_rate / layers for layer in range(1, layers + 1)]


def linspace_drop_rates(layers: int, last_drop_rate: float) -> list[float]:
    """``[(l - 1) / (L - 1) * p_L for l in 1 .. L]``: timm's ``linspace(0, p_L, L)`` (the first
    layer 0; one layer gets 0, as ``torch.linspace(0, p, 1)`` does)."""
    check_positive_int("layers", layers)
    check_probability(last_drop_rate)
    if layers == 1:
        return [0.0]
    return [index * last_drop_rate / (layers - 1) for index in range(layers)]
