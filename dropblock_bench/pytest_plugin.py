"""The pytest plugin of dropblock-bench: an ``assert_dropblock`` fixture.

Installed with the package (entry point ``pytest11``), so a library's test is one line::

    def test_drop_block(assert_dropblock):
        assert_dropblock(my_package.drop_block2d)

``pytest --dbench-quick`` runs every such check in quick mode (seconds, power 0.5), and
``--dbench-seed N`` changes the seed of every draw. Nothing heavy is imported until the
fixture is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dropblock-bench")
    group.addoption("--dbench-quick", action="store_true", help="assert_dropblock: quick mode (less power).")
    group.addoption("--dbench-seed", type=int, default=0, help="assert_dropblock: seed of every random draw.")


@pytest.fixture
def assert_dropblock(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """:func:`dropblock_bench.testing.assert_dropblock` with the session's quick and seed options."""
    from dropblock_bench.testing import assert_dropblock as check

    defaults = {"quick": request.config.getoption("--dbench-quick"), "seed": request.config.getoption("--dbench-seed")}

    @functools.wraps(check)
    def configured(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **{**defaults, **kwargs})

    return configured
