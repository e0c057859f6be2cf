"""Declared dependencies = imported ones: every third-party package app/ imports is in pyproject.toml's
dependencies, and every one tests/ and bench/ import is there or in the dev extra (or a known exception)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Imported, deliberately undeclared: GStreamer's bindings come from the system (make system-deps);
# bench/detector_gpu.py runs on a GPU machine's own PyTorch; the soak/capacity plots fall back to OpenCV.
UNDECLARED = {"gi", "torch", "onnx2torch", "matplotlib"}


def _imports(*folders: str) -> set[str]:
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"app", "tests", "bench"} - UNDECLARED


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _undeclared(modules: set[str], declared: set[str]) -> list[str]:
    dists = packages_distributions()
    return sorted(
        m for m in modules if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared
    )


def test_what_app_imports_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _undeclared(_imports("app"), _names(project["dependencies"])) == []


def test_what_tests_and_bench_import_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    assert _undeclared(_imports("tests", "bench"), declared) == []
