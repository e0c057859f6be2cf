"""AnalyzerRegistry: built-ins, entry points, chain validation (unknown, options, deps, cycles), order."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.analyzers.base import Finding, Observation
from app.analyzers.registry import (
    ENTRY_POINT_GROUP,
    AnalyzerContext,
    AnalyzerRegistry,
    AnalyzerType,
    ChainError,
)
from app.analyzers.vad import VadAnalyzer
from app.config import Settings
from app.inference.pool import ResourcePool
from app.stream.frame import Frame


class Stub:
    def __init__(self, name: str, depends: tuple[str, ...]) -> None:
        self.name, self.depends = name, depends

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        return Observation(self.name)

    def finish(self) -> tuple[Finding, ...]:
        return ()


def stub_type(name: str, *depends: str) -> AnalyzerType:
    return AnalyzerType(name, lambda options, ctx: Stub(name, depends), depends=depends)


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def registry() -> AnalyzerRegistry:
    return AnalyzerRegistry(
        builtins={
            "vad": "app.analyzers.vad:ANALYZER",
            "a": stub_type("a"),
            "b": stub_type("b", "a"),
            "c": stub_type("c", "b"),
            "x": stub_type("x", "y"),
            "y": stub_type("y", "x"),
        },
        entry_points_=[],
    )


class TestBuiltins:
    def test_default_registry_has_vad_and_detector(self) -> None:
        assert {"vad", "detector"} <= set(AnalyzerRegistry(entry_points_=[]).names())

    def test_a_missing_builtin_module_fails_loudly(self) -> None:
        with pytest.raises(ModuleNotFoundError):
            AnalyzerRegistry(builtins={"ghost": "app.analyzers.no_such_module:ANALYZER"}, entry_points_=[])


class TestEntryPoints:
    def test_plugin_from_an_entry_point_validates_and_builds(self, tmp_path: Path) -> None:
        registry = AnalyzerRegistry(
            builtins={}, entry_points_=[ep("brightness", "tests.analyzers.sample_plugin:Brightness")]
        )
        assert registry.names() == ["brightness"]
        chain = registry.validate_chain([{"name": "brightness", "options": {"level": 50}}])
        assert chain[0].options == {"level": 50.0}
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "brightness", "options": {"level": 999}}])
        assert err.value.field == "analyzers[0].options.level"

    def test_a_broken_plugin_is_logged_and_skipped(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.ERROR, "argus.analyzers"):
            registry = AnalyzerRegistry(
                builtins={"a": stub_type("a")},
                entry_points_=[ep("broken", "tests.analyzers.sample_plugin:nothing_here"), ep("a", "x:y")],
            )
        assert registry.names() == ["a"]
        assert "broken" in caplog.text and "name is taken" in caplog.text


class TestValidateChain:
    def test_unknown_analyzer_is_named(self, registry: AnalyzerRegistry) -> None:
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "a"}, {"name": "teleport"}])
        assert err.value.status_code == 422
        assert err.value.field == "analyzers[1].name" and "teleport" in err.value.message

    def test_invalid_options_name_the_option(self, registry: AnalyzerRegistry) -> None:
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "vad", "options": {"threshold": -1}}])
        assert err.value.field == "analyzers[0].options.threshold"
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "vad", "options": {"treshold": 2}}])
        assert err.value.field == "analyzers[0].options.treshold"

    def test_missing_dependency_is_named(self, registry: AnalyzerRegistry) -> None:
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "c"}, {"name": "a"}])
        assert "'c' depends on 'b'" in err.value.message

    def test_cycle_is_named(self, registry: AnalyzerRegistry) -> None:
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "x"}, {"name": "y"}])
        assert "cycle" in err.value.message and "x -> y -> x" in err.value.message

    def test_duplicates_and_malformed_entries(self, registry: AnalyzerRegistry) -> None:
        with pytest.raises(ChainError, match="twice"):
            registry.validate_chain([{"name": "a"}, {"name": "a"}])
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"options": {}}])
        assert err.value.field == "analyzers[0].name"

    def test_unknown_model_when_the_pool_is_known(self, registry: AnalyzerRegistry) -> None:
        with pytest.raises(ChainError) as err:
            registry.validate_chain([{"name": "vad", "options": {"model": "nope"}}], models=["vad-motion"])
        assert err.value.field == "analyzers[0].options.model"

    def test_order_puts_dependencies_first(self, registry: AnalyzerRegistry) -> None:
        chain = registry.validate_chain([{"name": "c"}, {"name": "vad"}, {"name": "b"}, {"name": "a"}])
        names = [e.name for e in chain]
        assert names.index("a") < names.index("b") < names.index("c")
        assert set(names) == {"a", "b", "c", "vad"}


class TestBuildChain:
    async def test_builds_analyzers_for_a_camera(
        self, registry: AnalyzerRegistry, settings: Settings, tmp_path: Path
    ) -> None:
        async with ResourcePool(tmp_path / "models") as pool:
            ctx = AnalyzerContext(camera_id=4, pool=pool, settings=settings)
            chain = registry.build_chain(
                [{"name": "b"}, {"name": "vad", "options": {"threshold": 5}}, {"name": "a"}], ctx
            )
            assert [a.name for a in chain] == ["a", "b", "vad"]
            vad = chain[2]
            assert isinstance(vad, VadAnalyzer) and vad.options.threshold == 5
            assert pool.stats("vad-motion")[0]["cameras"] == [4]  # the VAD told the pool who uses the model
            frame = Frame(4, 0, 0.0, np.zeros((90, 160, 3), np.uint8), 160, 90)
            assert (await vad.process(frame, {})).analyzer == "vad"
            vad.finish()
            assert pool.stats("vad-motion")[0]["cameras"] == []

    def test_options_must_be_an_object(self, registry: AnalyzerRegistry) -> None:
        specs: list[dict[str, Any]] = [{"name": "vad", "options": "fast"}]
        with pytest.raises(ChainError) as err:
            registry.validate_chain(specs)
        assert err.value.field == "analyzers[0].options"
