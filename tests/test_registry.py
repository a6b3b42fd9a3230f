"""Registry: names, globs, errors, plugins through entry points, and user files."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest
import torch

from dropblock_bench import registry as registry_module
from dropblock_bench.errors import DuplicateImplementationError, ImplementationLoadError, UnknownImplementationError
from dropblock_bench.registry import Implementation, PlainCallable, Registry, resolve_implementations
from dropblock_bench.spec import PAPER_CONTRACT, Contract


def _record(name: str, **kwargs) -> Implementation:
    return Implementation(name=name, target="dropblock_bench.implementations.paper:drop_block2d", **kwargs)


def test_builtins_arrive_through_entry_points():
    names = registry_module.default_registry().names()
    assert {"blog-style", "paper", "fused", "fused-shared"} <= set(names)
    entry_points = importlib.metadata.entry_points(group=registry_module.ENTRY_POINT_GROUP)
    assert {"blog-style", "paper", "fused", "fused-shared"} <= {ep.name for ep in entry_points}


def test_records_load_their_callables_lazily():
    paper = registry_module.get_implementation("paper")
    assert isinstance(paper.target, str)
    fn = paper.load()
    assert fn is paper.load() and callable(fn)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownImplementationError, match=r"did you mean paper\?"):
        registry_module.get_implementation("papr")
    with pytest.raises(UnknownImplementationError, match="registered: blog-style"):
        registry_module.get_implementation("nothing-like-it")


def test_duplicate_registration_is_an_error():
    registry = Registry(entry_point_group=None)
    registry.register(_record("mine"))
    with pytest.raises(DuplicateImplementationError, match="already registered"):
        registry.register(_record("mine"))


def test_globs_and_comma_lists():
    registry = Registry(entry_point_group=None)
    for name in ("fast-a", "fast-b", "slow"):
        registry.register(_record(name))
    assert [i.name for i in registry.resolve("fast-*")] == ["fast-a", "fast-b"]
    with pytest.raises(UnknownImplementationError, match="no implementation matches"):
        registry.resolve("quick-*")
    resolved = resolve_implementations(["fused*", "paper,fused"])
    assert [i.name for i in resolved] == ["fused", "fused-shared", "paper"]


def test_record_validation():
    with pytest.raises(ValueError, match="without spaces or commas"):
        _record("a,b")
    with pytest.raises(ValueError, match="unknown device"):
        _record("x", devices=("tpu",))
    with pytest.raises(ValueError, match="unknown dtypes"):
        _record("x", dtypes=("int8",))


class _FakeEntryPoint:
    def __init__(self, name: str, obj: object, dist_name: str = "fake-plugin") -> None:
        self.name, self.value, self._obj = name, f"fake_plugin:{name}", obj
        self.dist = type("Dist", (), {"name": dist_name})()

    def load(self) -> object:
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def _registry_with(monkeypatch, *entry_points: _FakeEntryPoint) -> Registry:
    monkeypatch.setattr(registry_module.importlib.metadata, "entry_points", lambda group: list(entry_points))
    return Registry()


def test_plugins_register_records_lists_and_factories(monkeypatch):
    registry = _registry_with(
        monkeypatch,
        _FakeEntryPoint("one", _record("plugin-one")),
        _FakeEntryPoint("many", [_record("plugin-two"), _record("plugin-three")]),
        _FakeEntryPoint("factory", lambda: _record("plugin-four")),
    )
    assert registry.names() == ["plugin-four", "plugin-one", "plugin-three", "plugin-two"]
    assert registry.get("plugin-one").origin == "fake-plugin"
    assert registry.plugin_errors == []


def test_broken_or_colliding_plugins_are_reported_not_fatal(monkeypatch):
    registry = _registry_with(
        monkeypatch,
        _FakeEntryPoint("good", _record("good")),
        _FakeEntryPoint("broken", ImportError("no module named foo")),
        _FakeEntryPoint("clash", _record("good"), dist_name="other-plugin"),
        _FakeEntryPoint("junk", 42),
    )
    assert registry.names() == ["good"]
    errors = "\n".join(registry.plugin_errors)
    assert "'broken'" in errors and "no module named foo" in errors
    assert "already registered" in errors and "other-plugin" in errors
    assert "Implementation records" in errors
    with pytest.raises(UnknownImplementationError, match="'broken'.*failed to load.*no module named foo"):
        registry.get("broken")


# --------------------------------------------------------------------------- user files


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_dropblock.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from dropblock_bench import Implementation, Contract

            def my_drop(x, p, block_size):
                return x * (torch.rand_like(x) >= p) / (1 - p)

            RECORD = Implementation(name="my-record", target=my_drop, contract=Contract(norm="expected"))
            NOT_CALLABLE = 3
            """
        )
    )
    return path


def test_file_callable_gets_the_paper_contract(user_file):
    [impl] = resolve_implementations([f"{user_file}:my_drop"])
    assert impl.name == f"{user_file}:my_drop"
    assert impl.contract == PAPER_CONTRACT
    assert not impl.supports_inplace


def test_file_callable_contract_overrides(user_file):
    [impl] = resolve_implementations([f"{user_file}:my_drop"], {"norm": "expected", "mask": "shared"})
    assert impl.contract == Contract(mask="shared", norm="expected")
    with pytest.raises(ImplementationLoadError, match="must be one of"):
        resolve_implementations([f"{user_file}:my_drop"], {"norm": "sometimes"})


def test_file_may_hold_an_implementation_record(user_file):
    [impl] = resolve_implementations([f"{user_file}:RECORD"])
    assert impl.name == "my-record" and impl.contract.norm == "expected"


def test_file_errors_are_clear(user_file, tmp_path):
    with pytest.raises(ImplementationLoadError, match="file not found"):
        resolve_implementations([f"{tmp_path}/absent.py:f"])
    with pytest.raises(ImplementationLoadError, match="did you mean my_drop"):
        resolve_implementations([f"{user_file}:my_dorp"])
    with pytest.raises(ImplementationLoadError, match="not a callable"):
        resolve_implementations([f"{user_file}:NOT_CALLABLE"])
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(ImplementationLoadError, match="RuntimeError: boom at import"):
        resolve_implementations([f"{raising}:f"])


def test_plain_callable_adapter_honours_training_and_generator(user_file):
    [impl] = resolve_implementations([f"{user_file}:my_drop"])
    fn = impl.load()
    assert isinstance(fn, PlainCallable)
    x = torch.ones(2, 3, 8, 8)
    assert fn(x, 0.5, 3, training=False) is x
    first = fn(x, 0.5, 3, generator=torch.Generator().manual_seed(4))
    second = fn(x, 0.5, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, second)
    with pytest.raises(NotImplementedError, match="inplace"):
        fn(x, 0.5, 3, inplace=True)
