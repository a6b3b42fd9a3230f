"""The registry of interchangeable DropBlock implementations.

Every implementation, built-in or third-party, is an :class:`Implementation` record that
reaches the registry through the entry-point group ``dropblock_bench.implementations``
(loaded lazily, once). An entry point may name an :class:`Implementation`, an iterable of
them, or a zero-argument callable returning either. A user may also name
``path/to/file.py:callable`` wherever an implementation is accepted.

Every implementation belongs to one family (:mod:`dropblock_bench.families.catalog`), which
fixes its callable's signature; DropBlock2d's, the default, is::

    fn(x, p, block_size, *, training=True, inplace=False, generator=None) -> Tensor

DropPath and SpatialDropout take ``fn(x, p, ...)``, Cutout ``fn(x, n_holes, length, ...)``.

Records hold their callable as a ``"module:attribute"`` string (or the object itself), so
listing implementations never imports torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropblock_bench.errors import (
    DuplicateImplementationError,
    ImplementationLoadError,
    UnknownImplementationError,
)
from dropblock_bench.families.catalog import DROPBLOCK2D, FAMILIES, Family, FamilyContract, contract_fields, departures
from dropblock_bench.spec import PAPER_CONTRACT, Contract

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "DEVICE_TYPES",
    "DTYPE_NAMES",
    "ENTRY_POINT_GROUP",
    "Implementation",
    "PlainCallable",
    "Registry",
    "default_registry",
    "get_implementation",
    "list_implementations",
    "register_implementation",
    "resolve_implementations",
]

ENTRY_POINT_GROUP = "dropblock_bench.implementations"
NOT_INSTALLED_GROUP = "dropblock_bench.not_installed"
"""Entry points naming a function that returns ``[(Implementation, install hint), ...]`` for
adapters whose library is missing (``dbench list --all``)."""
DEVICE_TYPES = ("cpu", "cuda", "mps")
DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16")
_GLOB_CHARS = frozenset("*?[")

DropBlockFn = Callable[..., "torch.Tensor"]


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One registered implementation of a regularizer and the contract it declares.

    Attributes:
        name: unique registry name, e.g. ``"paper"`` (no spaces or commas).
        target: the callable, or ``"package.module:attribute"`` resolved on first use.
        contract: what the implementation promises: an instance of its family's contract type
            (:class:`~dropblock_bench.spec.Contract` for DropBlock2d and DropBlock3d).
        description: one line for ``dbench list``.
        devices: device types it runs on (``"cpu"``, ``"cuda"``, ``"mps"``).
        dtypes: floating dtypes it supports, by name (``"float32"``, ...).
        supports_inplace: whether ``inplace=True`` writes into ``x``.
        supports_generator: whether ``generator=`` makes results reproducible.
        supports_backward: whether gradients flow through it.
        supports_training: whether ``training=False`` is honoured (eval mode); False for a
            plain ``f(x, p, block_size)`` that takes no ``training`` argument.
        origin: where it came from: a distribution name, a file path, or ``"dropblock-bench"``.
        backend: optional ``"module:function"`` returning one line on which code path runs
            here and why (e.g. a compiled kernel or a fallback); ``dbench run`` records it.
        family: the family's name (``dbench list`` shows them): ``"dropblock2d"`` (the
            default), ``"dropblock3d"``, ``"drop-path"``, ``"spatial-dropout"``, ``"cutout"``.
    """

    name: str
    target: str | DropBlockFn
    contract: FamilyContract = PAPER_CONTRACT
    description: str = ""
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = DTYPE_NAMES
    supports_inplace: bool = True
    supports_generator: bool = True
    supports_backward: bool = True
    supports_training: bool = True
    origin: str = ""
    backend: str = ""
    family: str = DROPBLOCK2D.name

    def __post_init__(self) -> None:
        if not self.name or any(ch.isspace() or ch == "," for ch in self.name):
            raise ValueError(f"implementation name must be non-empty without spaces or commas: {self.name!r}")
        unknown_devices = set(self.devices) - set(DEVICE_TYPES)
        if unknown_devices:
            raise ValueError(f"{self.name}: unknown device types {sorted(unknown_devices)}; use {DEVICE_TYPES}")
        unknown_dtypes = set(self.dtypes) - set(DTYPE_NAMES)
        if unknown_dtypes:
            raise ValueError(f"{self.name}: unknown dtypes {sorted(unknown_dtypes)}; use {DTYPE_NAMES}")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}; use one of {', '.join(FAMILIES)}")
        expected = self.family_record.contract_type
        if not isinstance(self.contract, expected):
            raise TypeError(f"{self.name}: a {self.family} contract must be a {expected.__name__},"
                            f" got {type(self.contract).__name__}")

    @property
    def family_record(self) -> Family:
        """The :class:`~dropblock_bench.families.catalog.Family` this implementation belongs to."""
        return FAMILIES[self.family]

    @property
    def dropblock_contract(self) -> Contract:
        """The contract of a DropBlock2d or DropBlock3d implementation; ``TypeError`` for another
        family's (its contract is another type)."""
        if not isinstance(self.contract, Contract):
            raise TypeError(f"{self.name} is a {self.family} implementation; its contract is a {type(self.contract).__name__}")
        return self.contract

    def departures(self) -> list[str]:
        """Contract fields that differ from the family's reference (the paper's for DropBlock)."""
        return departures(self.family_record, self.contract)

    def load(self) -> DropBlockFn:
        """The callable itself, importing its module on first use."""
        if callable(self.target):
            return self.target
        return _import_target(self.target)

    def backend_status(self) -> str | None:
        """One line on the code path this implementation takes here (None without a ``backend``).
        May build or load a kernel; a backend that fails to report says so rather than raise."""
        if not self.backend:
            return None
        try:
            return str(_import_target(self.backend)())
        except Exception as exc:  # noqa: BLE001 - a status line must not stop a run
            return f"backend status unavailable: {type(exc).__name__}: {exc}"

    def with_contract(self, **changes: Any) -> Implementation:
        """A copy whose contract has some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, contract=replace_fields(self.contract, changes))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: everything but the callable."""
        return {
            "name": self.name,
            "family": self.family,
            "contract": contract_fields(self.contract),
            "departures_from_paper": self.departures(),
            "description": self.description,
            "devices": list(self.devices),
            "dtypes": list(self.dtypes),
            "supports_inplace": self.supports_inplace,
            "supports_generator": self.supports_generator,
            "supports_backward": self.supports_backward,
            "supports_training": self.supports_training,
            "origin": self.origin,
            "backend": self.backend,
        }


@functools.cache
def _import_target(target: str) -> DropBlockFn:
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ImplementationLoadError(f"target {target!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ImplementationLoadError(f"importing {module_name} raised {type(exc).__name__}: {exc}") from exc
    try:
        loaded: DropBlockFn = getattr(module, attribute)
    except AttributeError:
        raise ImplementationLoadError(f"module {module_name} has no attribute {attribute!r}") from None
    return loaded


class Registry:
    """Implementations by name. Plugins from ``entry_point_group`` load on the first query.

    Registering a name twice raises :class:`DuplicateImplementationError`. A plugin that
    fails to load, or collides with a name already taken, is skipped and recorded in
    :attr:`plugin_errors` so one broken package cannot take the tool down.
    """

    def __init__(self, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._implementations: dict[str, Implementation] = {}
        self._group = entry_point_group
        self._plugins_loaded = entry_point_group is None
        self.plugin_errors: list[str] = []

    def register(self, implementation: Implementation) -> Implementation:
        """Add ``implementation``; returns it unchanged (usable as a decorator helper)."""
        if not isinstance(implementation, Implementation):
            raise TypeError(f"expected an Implementation record, got {type(implementation).__name__}")
        existing = self._implementations.get(implementation.name)
        if existing is not None:
            raise DuplicateImplementationError(
                f"implementation {implementation.name!r} is already registered"
                f" (by {existing.origin or 'an earlier registration'}); pick another name"
            )
        self._implementations[implementation.name] = implementation
        return implementation

    def _ensure_plugins(self) -> None:
        if self._plugins_loaded or self._group is None:
            return
        self._plugins_loaded = True
        for entry_point in importlib.metadata.entry_points(group=self._group):
            origin = entry_point.dist.name if entry_point.dist is not None else entry_point.value
            try:
                records = _records_from(entry_point.load())
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the tool
                self.plugin_errors.append(
                    f"plugin {entry_point.name!r} ({entry_point.value}) failed to load:"
                    f" {type(exc).__name__}: {exc}"
                )
                continue
            for record in records:
                if not record.origin:
                    record = dataclasses.replace(record, origin=origin)
                try:
                    self.register(record)
                except DuplicateImplementationError as exc:
                    self.plugin_errors.append(f"plugin {entry_point.name!r} from {origin}: {exc}")

    def not_installed(self) -> list[tuple[Implementation, str]]:
        """Adapters whose library is missing, with how to install each (from the
        ``dropblock_bench.not_installed`` entry points; a failing one is recorded in
        :attr:`plugin_errors`)."""
        missing: list[tuple[Implementation, str]] = []
        for entry_point in importlib.metadata.entry_points(group=NOT_INSTALLED_GROUP):
            try:
                missing += [(record, str(hint)) for record, hint in entry_point.load()()]
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the tool
                self.plugin_errors.append(f"plugin {entry_point.name!r} ({entry_point.value}) failed: {type(exc).__name__}: {exc}")
        return sorted(missing, key=lambda item: item[0].name)

    def names(self, pattern: str | None = None, family: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a shell-style ``pattern`` (``"fused*"``) and
        by ``family`` (``None``: every family)."""
        self._ensure_plugins()
        names = sorted(n for n, record in self._implementations.items() if family is None or record.family == family)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def implementations(self, pattern: str | None = None, family: str | None = None) -> list[Implementation]:
        """Records sorted by name, optionally filtered like :meth:`names`."""
        return [self._implementations[n] for n in self.names(pattern, family)]

    def get(self, name: str) -> Implementation:
        """The record called ``name``; unknown names raise with the closest matches."""
        self._ensure_plugins()
        try:
            return self._implementations[name]
        except KeyError:
            raise UnknownImplementationError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._implementations, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._implementations)) or "none"
        broken = [error for error in self.plugin_errors if f"plugin {name!r}" in error]
        if broken:  # the name is a plugin's entry point that failed to load: say why
            return f"unknown implementation {name!r}: " + "; ".join(broken)
        return f"unknown implementation {name!r}{hint} (registered: {known}; see `dbench list`)"

    def resolve(self, spec: str, contract_overrides: Mapping[str, Any] | None = None,
                family: str | None = None) -> list[Implementation]:  # fmt: skip
        """Implementations named by ``spec``: a name, a glob (``"fused*"``) or ``file.py:callable``.

        ``contract_overrides`` (field name -> value) apply to ``file.py:callable`` specs,
        whose callables belong to ``family`` (DropBlock2d when None) and otherwise get its
        reference contract. A glob matches within ``family`` when one is given.
        """
        spec = spec.strip()
        if _is_file_spec(spec):
            return [load_file_implementation(spec, contract_overrides, family or DROPBLOCK2D.name)]
        if spec.endswith(".py"):
            raise ImplementationLoadError(_missing_callable_message(spec))
        if _GLOB_CHARS & set(spec):
            matched = self.implementations(spec, family)
            if not matched:
                raise UnknownImplementationError(
                    f"no implementation matches {spec!r} (registered: {', '.join(self.names(family=family))}; see `dbench list`)"
                )
            return matched
        return [self.get(spec)]


def _records_from(obj: Any) -> list[Implementation]:
    if callable(obj) and not isinstance(obj, Implementation):
        obj = obj()
    if isinstance(obj, Implementation):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        records = list(obj)
        if all(isinstance(r, Implementation) for r in records):
            return records
    raise TypeError(f"entry point must give Implementation records, got {type(obj).__name__}")


# --------------------------------------------------------------------------- user files


def _is_file_spec(spec: str) -> bool:
    path, sep, attribute = spec.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(attribute)


def _missing_callable_message(spec: str) -> str:
    """What to say for ``--impl my_db.py``: the syntax, and the callables the file defines."""
    path = Path(spec).expanduser()
    if not path.is_file():
        return f"{spec} names a file but no callable, and the file is not found: use path/to/file.py:callable"
    try:
        names = _public_callables(_import_file(path))
    except ImplementationLoadError as exc:
        return f"{spec} names a file but no callable (use {spec}:callable); {exc}"
    listed = ", ".join(names) or "none"
    example = f"{spec}:{names[0]}" if names else f"{spec}:callable"
    return f"{spec} names a file but no callable: add ':NAME', e.g. {example} (callables there: {listed})"


def _public_callables(module: Any) -> list[str]:
    """Callables a user file defines itself (not imported modules or names it imported)."""
    own = getattr(module, "__name__", None)
    return sorted(
        name
        for name, value in vars(module).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", own) == own
    )


def _accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def callable_problem(target: object, spec: str, family: Family = DROPBLOCK2D) -> str | None:
    """Why ``target`` cannot be called as ``family``'s signature (``f(x, p, block_size)`` for
    DropBlock2d), with how to wrap it; None if it can.

    Catches the common mistakes: an ``nn.Module`` class (or any class), a module instance whose
    ``forward`` takes only the input, and a function of the wrong arity.
    """
    name = spec.rpartition(":")[2] or getattr(target, "__name__", "f")
    file = spec.rpartition(":")[0] or "file.py"
    signature = family.signature
    arguments = ", ".join(family.arguments)
    wrap = (
        f"wrap it in the file, e.g. `def drop(x, {arguments}): return {name}({arguments}).train()(x)`,"
        f" and pass {file}:drop"
    )
    if isinstance(target, type):
        kind = "an nn.Module class" if _is_module_class(target) else "a class"
        return f"{spec} is {kind}; verify calls {signature} on tensors: {wrap}"
    if not callable(target):
        return f"{spec} is a {type(target).__name__}, not a callable {signature}"
    if _is_module_class(type(target)):
        return (
            f"{spec} is an nn.Module instance, with {arguments} fixed when it was built; verify needs"
            f" {signature} to vary them: {wrap}"
        )
    try:
        inspect.signature(target).bind(object(), *family.example_arguments)
    except TypeError:
        return (
            f"{spec} has the signature {name}{inspect.signature(target)}, which does not take (x, {arguments}):"
            f" write `def drop(x, {arguments}): ...` around it and pass {file}:drop"
        )
    except ValueError:  # no signature to read (a builtin): let the checks find out
        return None
    return None


def _is_module_class(cls: type) -> bool:
    torch_nn = sys.modules.get("torch.nn")
    return torch_nn is not None and isinstance(cls, type) and issubclass(cls, torch_nn.Module)


class PlainCallable:
    """Adapts a plain ``f(x, p, block_size) -> Tensor`` (training mode; any family's arguments
    after ``x``) to the standard signature.

    ``training`` is passed through when ``f`` takes it; otherwise ``training=False`` returns
    ``x`` (and the record says ``supports_training=False``, so verify skips the eval check
    rather than pass it unexercised). ``generator=`` is honoured by seeding torch's global
    RNG from it inside :func:`torch.random.fork_rng`; ``inplace=True`` is not supported.
    """

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.takes_training = _accepts_keyword(fn, "training")
        functools.update_wrapper(self, fn)

    def takes_keyword(self, name: str) -> bool:
        """Whether the wrapped function accepts the keyword ``name``."""
        return _accepts_keyword(self.fn, name)

    def __call__(
        self,
        x: torch.Tensor,
        *arguments: float,
        training: bool = True,
        inplace: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        extra = {"training": training} if self.takes_training else {}
        if not training and not self.takes_training:
            return x
        if inplace:
            raise NotImplementedError(f"{getattr(self.fn, '__name__', 'this callable')} does not support inplace=True")
        if generator is None:
            return self.fn(x, *arguments, **extra)
        import torch

        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        cuda_devices = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            return self.fn(x, *arguments, **extra)


def replace_fields(contract: FamilyContract, changes: Mapping[str, Any]) -> FamilyContract:
    """``contract`` with the fields in ``changes`` set (``None`` values ignored); a field the
    contract does not have raises ``ValueError`` naming its fields."""
    given = {name: value for name, value in changes.items() if value is not None}
    known = [field.name for field in dataclasses.fields(contract)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"a {type(contract).__name__} has no field {', '.join(unknown)} (fields: {', '.join(known)})")
    return dataclasses.replace(contract, **given) if given else contract


def load_file_implementation(spec: str, contract_overrides: Mapping[str, Any] | None = None,
                             family: str = DROPBLOCK2D.name) -> Implementation:  # fmt: skip
    """Load ``path/to/file.py:callable`` as an :class:`Implementation`.

    The attribute may be an :class:`Implementation` record (used as is, overrides applied
    to its contract) or a plain callable of ``family``'s signature (``f(x, p, block_size)``
    for DropBlock2d), which gets the family's reference contract (the paper's for DropBlock)
    unless ``contract_overrides`` say otherwise.
    """
    family_record = FAMILIES[family]
    path_text, _, attribute = spec.rpartition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ImplementationLoadError(f"file not found: {path_text} (in {spec!r})")
    module = _import_file(path)
    if not hasattr(module, attribute):
        public = _public_callables(module)
        close = difflib.get_close_matches(attribute, public, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (callables there: {', '.join(public) or 'none'})"
        raise ImplementationLoadError(f"{path_text} has no callable {attribute!r}{hint}")
    target = getattr(module, attribute)
    overrides = dict(contract_overrides or {})
    try:
        if isinstance(target, Implementation):
            return target.with_contract(**overrides)
        problem = callable_problem(target, spec, family_record)
        if problem is not None:
            raise ImplementationLoadError(problem)
        wrapped = PlainCallable(target)
        return Implementation(
            name=spec,
            target=wrapped,
            contract=replace_fields(family_record.reference_contract, overrides),
            family=family,
            description=f"user callable {attribute} from {path_text}",
            devices=DEVICE_TYPES,
            supports_inplace=False,
            supports_training=wrapped.takes_training,
            origin=str(path),
        )
    except ValueError as exc:
        raise ImplementationLoadError(f"{spec}: {exc}") from None


def _import_file(path: Path) -> Any:
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    module_name = f"_dbench_user_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise ImplementationLoadError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ImplementationLoadError(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    return module


# --------------------------------------------------------------------------- default registry

_DEFAULT = Registry()


def default_registry() -> Registry:
    """The process-wide registry that ``dbench`` and the module functions below use."""
    return _DEFAULT


def register_implementation(implementation: Implementation) -> Implementation:
    """Register ``implementation`` in the default registry (plugins prefer entry points)."""
    return _DEFAULT.register(implementation)


def get_implementation(name: str) -> Implementation:
    """The default registry's record called ``name``."""
    return _DEFAULT.get(name)


def list_implementations(pattern: str | None = None, family: str | None = None) -> list[Implementation]:
    """The default registry's records, sorted by name, optionally filtered by a glob and a family."""
    return _DEFAULT.implementations(pattern, family)


def resolve_implementations(
    specs: Iterable[str], contract_overrides: Mapping[str, Any] | None = None, family: str | None = None
) -> list[Implementation]:
    """Resolve names, globs, comma lists and ``file.py:callable`` specs, without duplicates
    (globs within ``family``, file callables of ``family``: see :meth:`Registry.resolve`)."""
    seen: dict[str, Implementation] = {}
    for spec in specs:
        for part in (s for s in spec.split(",") if s.strip()):
            for implementation in _DEFAULT.resolve(part, contract_overrides, family):
                seen.setdefault(implementation.name, implementation)
    return list(seen.values())
