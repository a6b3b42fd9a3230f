"""Verify a DropBlock from your own test-suite: one assertion, the same engine as ``dbench verify``.

::

    from dropblock_bench.testing import assert_dropblock

    def test_my_dropblock():
        assert_dropblock(my_drop_block)                           # held to the paper's contract
        assert_dropblock(my_shared_one, contract={"mask": "shared"})

or, with the pytest plugin this package installs, through the ``assert_dropblock`` fixture
(``pytest --dbench-quick`` makes every use quick). The guarantees are verify's: at default
settings a 10 % error in the drop rate is caught with probability >= 0.99 in every case, and
a correct implementation fails with probability <= 0.01.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dropblock_bench.registry import Implementation, PlainCallable, callable_problem
from dropblock_bench.spec import PAPER_CONTRACT, Contract

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dropblock_bench.verify.results import ImplementationReport

__all__ = ["as_implementation", "assert_dropblock"]

_STANDARD_KEYWORDS = ("training", "inplace", "generator")


def as_implementation(
    fn: Callable[..., Any] | Implementation,
    contract: Contract | Mapping[str, str] | None = None,
    *,
    name: str | None = None,
) -> Implementation:
    """An :class:`Implementation` record for ``fn``.

    ``fn`` may be a record (its contract is updated with ``contract``), a function with the
    standard signature ``f(x, p, block_size, *, training, inplace, generator)``, or a plain
    ``f(x, p, block_size)`` (keywords it does not take are not used). Anything else (an
    ``nn.Module`` class, a module instance, a function of the wrong arity) raises ``TypeError``
    saying how to wrap it.
    """
    changes = dict(contract.as_dict() if isinstance(contract, Contract) else contract or {})
    if isinstance(fn, Implementation):
        return fn.with_contract(**changes)
    label = name or getattr(fn, "__name__", None) or type(fn).__name__
    problem = callable_problem(fn, label)
    if problem is not None:
        raise TypeError(problem)
    wrapped = PlainCallable(fn)
    takes = {keyword: wrapped.takes_keyword(keyword) for keyword in _STANDARD_KEYWORDS}
    target: Callable[..., Any] = fn if all(takes.values()) else wrapped
    return Implementation(
        name=label.replace(" ", "_").replace(",", "_") or "f",
        target=target,
        contract=PAPER_CONTRACT.replace(**changes),
        description="checked by assert_dropblock",
        supports_inplace=takes["inplace"] and target is fn,
        supports_training=takes["training"],
        origin="assert_dropblock",
    )


def assert_dropblock(
    fn: Callable[..., Any] | Implementation,
    contract: Contract | Mapping[str, str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    strict: bool = False,
    name: str | None = None,
    **record: Any,
) -> ImplementationReport:
    """Verify ``fn`` against ``contract`` (default: the paper's) and raise ``AssertionError``
    listing every failed check (and, with ``strict``, every warning) with its reason.

    ``record`` sets capabilities of the record made for a plain function, e.g.
    ``dtypes=("float32",)`` or ``supports_backward=False``. Returns the full report when
    nothing failed, so a test can look further (``report.warnings``, ``report.checks``).
    """
    from dropblock_bench.verify import VerifySettings, verify_implementation

    implementation = as_implementation(fn, contract, name=name)
    if record:
        implementation = dataclasses.replace(implementation, **record)
    report = verify_implementation(implementation, VerifySettings.for_mode(quick=quick, seed=seed))
    problems = report.failures + (report.warnings if strict else [])
    if problems:
        lines = [f"{implementation.name} breaks its contract ({implementation.contract}):"]
        lines += [f"  {c.verdict} {c.check}" + ("" if c.case == "-" else f" [{c.case}]") + f": {c.reason}" for c in problems]
        raise AssertionError("\n".join(lines))
    return report
