"""AnalyzerRegistry: the built-in analyzers plus third-party ones from the `argus.analyzers` entry points.

A plugin is an `AnalyzerType`: a name, the names it depends on, an optional pydantic model for its
options, and a factory `(options: dict, ctx: AnalyzerContext) -> Analyzer` called once per camera.
An entry point may also name a bare factory (a function or an Analyzer class taking (options, ctx));
its `depends` and `options_model` attributes are read when present.

Built-in modules export `ANALYZER: AnalyzerType` and are imported when the registry is built, so a
missing or broken built-in fails the start-up loudly instead of the first camera quietly.

A camera's chain is a list of `{"name": ..., "options": {...}}`. `validate_chain` checks it without
building anything (the cameras API calls it at create/patch time and turns ChainError into a 422);
`build_chain` returns the analyzers in dependency order.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from app.analyzers.base import Analyzer
from app.errors import Invalid

if TYPE_CHECKING:
    from app.analyzers.tracing import Tracer
    from app.config import Settings
    from app.inference.pool import ResourcePool

log = logging.getLogger("argus.analyzers")

ENTRY_POINT_GROUP = "argus.analyzers"
BUILTINS: dict[str, str] = {
    "vad": "app.analyzers.vad:ANALYZER",
    "detector": "app.analyzers.detector:ANALYZER",
}


class ChainError(Invalid):
    """A camera's analyzer chain is wrong; `field` points into it, e.g. `analyzers[1].options.threshold`."""

    def __init__(self, message: str, field: str = "analyzers") -> None:
        super().__init__(message, field)


@dataclass(frozen=True, slots=True)
class AnalyzerContext:
    """What a factory gets besides its options: the camera it serves and the shared runtime parts."""

    camera_id: int
    pool: ResourcePool
    settings: Settings
    tracer: Tracer | None = None


AnalyzerFactory = Callable[[Mapping[str, Any], AnalyzerContext], Analyzer]


@dataclass(frozen=True, slots=True)
class AnalyzerType:
    name: str
    factory: AnalyzerFactory
    depends: tuple[str, ...] = ()
    options_model: type[BaseModel] | None = None
    # The pool models a configuration needs (e.g. its `model` option); checked when the chain is validated.
    models: Callable[[Mapping[str, Any]], Iterable[str]] | None = None
    description: str = ""

    def validate_options(self, options: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Validated options with defaults filled in; ChainError naming the option otherwise."""
        if self.options_model is None:
            return dict(options)
        try:
            return self.options_model.model_validate(dict(options)).model_dump()
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            suffix = f".{loc}" if loc else ""
            raise ChainError(
                f"analyzer {self.name!r}: option {loc or 'options'}: {err['msg']}", f"{where}.options{suffix}"
            ) from None


@dataclass(frozen=True, slots=True)
class ChainEntry:
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options}


def as_analyzer_type(name: str, obj: Any) -> AnalyzerType:
    if isinstance(obj, AnalyzerType):
        return obj if obj.name == name else AnalyzerType(name, obj.factory, obj.depends, obj.options_model,
                                                          obj.models, obj.description)  # fmt: skip
    if callable(obj):
        return AnalyzerType(
            name=name,
            factory=obj,
            depends=tuple(getattr(obj, "depends", ())),
            options_model=getattr(obj, "options_model", None),
        )
    raise TypeError(f"analyzer {name!r}: expected an AnalyzerType or a factory, got {type(obj).__name__}")


def _load_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class AnalyzerRegistry:
    def __init__(
        self,
        builtins: Mapping[str, str | AnalyzerType] | None = None,
        entry_points_: Iterable[EntryPoint] | None = None,
    ) -> None:
        """`builtins` maps names to "module:attr" paths or types; `entry_points_` defaults to the group's."""
        self._types: dict[str, AnalyzerType] = {}
        for name, ref in (BUILTINS if builtins is None else builtins).items():
            self.add(as_analyzer_type(name, _load_path(ref) if isinstance(ref, str) else ref))
        eps = entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_
        for ep in eps:
            if ep.name in self._types:
                log.error("analyzer plugin %s (%s) ignored: the name is taken", ep.name, ep.value)
                continue
            try:
                self.add(as_analyzer_type(ep.name, ep.load()))
            except Exception:
                log.exception("analyzer plugin %s (%s) failed to load", ep.name, ep.value)
                continue
            log.info("analyzer plugin %s loaded from %s", ep.name, ep.value)

    def add(self, kind: AnalyzerType) -> None:
        if kind.name in self._types:
            raise ValueError(f"analyzer {kind.name!r} is already registered")
        self._types[kind.name] = kind

    def names(self) -> list[str]:
        return sorted(self._types)

    def get(self, name: str) -> AnalyzerType:
        try:
            return self._types[name]
        except KeyError:
            raise ChainError(f"unknown analyzer {name!r} (known: {', '.join(self.names())})") from None

    def validate_chain(
        self, specs: Sequence[Mapping[str, Any]], *, models: Collection[str] | None = None
    ) -> list[ChainEntry]:
        """The chain in dependency order with validated options. `models`: the pool's model names, to
        check model options against (skipped when None)."""
        entries: dict[str, ChainEntry] = {}
        for i, spec in enumerate(specs):
            where = f"analyzers[{i}]"
            if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
                raise ChainError("each analyzer is an object with a string 'name'", f"{where}.name")
            name = spec["name"]
            options = spec.get("options") or {}
            if not isinstance(options, Mapping):
                raise ChainError(f"analyzer {name!r}: options must be an object", f"{where}.options")
            if name not in self._types:
                known = ", ".join(self.names())
                raise ChainError(f"unknown analyzer {name!r} (known: {known})", f"{where}.name")
            if name in entries:
                raise ChainError(f"analyzer {name!r} appears twice in the chain", f"{where}.name")
            kind = self._types[name]
            validated = kind.validate_options(options, where)
            if models is not None and kind.models is not None:
                for model in kind.models(validated):
                    if model not in models:
                        msg = f"analyzer {name!r}: unknown model {model!r}"
                        raise ChainError(msg, f"{where}.options.model")
            entries[name] = ChainEntry(name, validated)
        for i, entry in enumerate(entries.values()):
            for dep in self._types[entry.name].depends:
                if dep not in entries:
                    msg = f"analyzer {entry.name!r} depends on {dep!r}, which is not in the chain"
                    raise ChainError(msg, f"analyzers[{i}]")
        return [entries[n] for n in self._order(entries)]

    def _order(self, entries: Mapping[str, ChainEntry]) -> list[str]:
        """Topological order (stable: chain order among independent analyzers); ChainError on a cycle."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = visiting, 2 = done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = [*path[path.index(name) :], name]
                raise ChainError(f"analyzer dependency cycle: {' -> '.join(cycle)}")
            state[name] = 1
            for dep in self._types[name].depends:
                visit(dep, [*path, name])
            state[name] = 2
            order.append(name)

        for name in entries:
            visit(name, [])
        return order

    def build_chain(
        self, specs: Sequence[Mapping[str, Any] | ChainEntry], ctx: AnalyzerContext
    ) -> list[Analyzer]:
        """Validate, then create each analyzer for ctx.camera_id, dependencies first."""
        raw = [s.to_json() if isinstance(s, ChainEntry) else s for s in specs]
        chain = self.validate_chain(raw, models=ctx.pool.names())
        return [self._types[e.name].factory(e.options, ctx) for e in chain]
