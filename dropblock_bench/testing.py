"""Verify a DropBlock (or a relative) from your own test-suite: one assertion, the same engine
as ``dbench verify``.

::

    from dropblock_bench.testing import assert_dropblock

    def test_my_dropblock():
        assert_dropblock(my_drop_block)                           # held to the paper's contract
        assert_dropblock(my_shared_one, contract={"mask": "shared"})
        assert_dropblock(my_drop_path, family="drop-path")        # f(x, p), timm's contract
        assert_dropblock(my_cutout, family="cutout", contract={"centre": "fits"})

or, with the pytest plugin this package installs, through the ``assert_dropblock`` fixture
(``pytest --dbench-quick`` makes every use quick). The guarantees are verify's: at default
settings a 10 % error in the drop rate is caught with probability >= 0.99 in every case, and
a correct implementation fails with probability <= 0.01.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dropblock_bench.families.catalog import FamilyContract, family_named
from dropblock_bench.registry import Implementation, PlainCallable, callable_problem, replace_fields

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dropblock_bench.verify.results import ImplementationReport

__all__ = ["as_implementation", "assert_dropblock"]

_STANDARD_KEYWORDS = ("training", "inplace", "generator")


def as_implementation(
    fn: Callable[..., Any] | Implementation,
    contract: FamilyContract | Mapping[str, str] | None = None,
    *,
    name: str | None = None,
    family: str = "dropblock2d",
) -> Implementation:
    """An :class:`Implementation` record for ``fn``, of ``family``.

    ``fn`` may be a record (its contract is updated with ``contract``), a function with the
    family's standard signature (``f(x, p, block_size, *, training, inplace, generator)`` for
    DropBlock2d, ``f(x, p, ...)`` for DropPath, ``f(x, n_holes, length, ...)`` for Cutout), or
    a plain one without the keywords (those it does not take are not used). ``contract`` holds
    the fields that depart from the family's reference contract. Anything else (an
    ``nn.Module`` class, a module instance, a function of the wrong arity) raises ``TypeError``
    saying how to wrap it; an unknown family or contract field raises ``ValueError``.
    """
    record = family_named(family)
    if contract is None or isinstance(contract, Mapping):
        changes: dict[str, Any] = dict(contract or {})
    else:  # a contract object: all its fields
        changes = {field.name: getattr(contract, field.name) for field in dataclasses.fields(contract)}
    if isinstance(fn, Implementation):
        return fn.with_contract(**changes)
    label = name or getattr(fn, "__name__", None) or type(fn).__name__
    problem = callable_problem(fn, label, record)
    if problem is not None:
        raise TypeError(problem)
    wrapped = PlainCallable(fn)
    takes = {keyword: wrapped.takes_keyword(keyword) for keyword in _STANDARD_KEYWORDS}
    target: Callable[..., Any] = fn if all(takes.values()) else wrapped
    return Implementation(
        name=label.replace(" ", "_").replace(",", "_") or "f",
        target=target,
        contract=replace_fields(record.reference_contract, changes),
        description="checked by assert_dropblock",
        supports_inplace=takes["inplace"] and target is fn,
        supports_training=takes["training"],
        origin="assert_dropblock",
        family=family,
    )


def assert_dropblock(
    fn: Callable[..., Any] | Implementation,
    contract: FamilyContract | Mapping[str, str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    strict: bool = False,
    name: str | None = None,
    family: str = "dropblock2d",
    **record: Any,
) -> ImplementationReport:
    """Verify ``fn`` against ``contract`` (default: its family's reference, the paper's for
    DropBlock2d) and raise ``AssertionError`` listing every failed check (and, with ``strict``,
    every warning) with its reason. ``family`` names the regularizer ``fn`` implements
    (``dropblock2d``, ``dropblock3d``, ``drop-path``, ``spatial-dropout``, ``cutout``); a
    record passed as ``fn`` brings its own.

    ``record`` sets capabilities of the record made for a plain function, e.g.
    ``dtypes=("float32",)`` or ``supports_backward=False``. Returns the full report when
    nothing failed, so a test can look further (``report.warnings``, ``report.checks``).
    """
    from dropblock_bench.verify import VerifySettings
    from dropblock_bench.verify.session import verify_one

    implementation = as_implementation(fn, contract, name=name, family=family)
    if record:
        implementation = dataclasses.replace(implementation, **record)
    report = verify_one(implementation, VerifySettings.for_mode(quick=quick, seed=seed))
    problems = report.failures + (report.warnings if strict else [])
    if problems:
        lines = [f"{implementation.name} breaks its contract ({implementation.contract}):"]
        lines += [f"  {c.verdict} {c.check}" + ("" if c.case == "-" else f" [{c.case}]") + f": {c.reason}" for c in problems]
        raise AssertionError("\n".join(lines))
    return report
