"""The repository's layout rules that import-linter (`make lint`) cannot check, because they are
about single-file modules at the root: which Python files the root holds, which files use only
the standard library, and that the entry files never import each other in a circle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

ENTRY_FILES = {
    "live_execution_monitor.py",
    "run_live_monitor.py",
    "execution_difference_report.py",
    "log_analysis_tool.py",
    "generate_sample_logs.py",
    "backend_logging_config.py",
}
PACKAGING_FILES = {"setup.py"}


def imported_names(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_root_holds_only_the_users_entry_files() -> None:
    modules = {path.name for path in ROOT.glob("*.py")}
    assert modules - ENTRY_FILES - PACKAGING_FILES == set(), "a module belongs in live_monitor/"
    assert ENTRY_FILES <= modules


@pytest.mark.parametrize("name", ["backend_logging_config.py", "live_monitor/install.py"])
def test_a_file_that_must_run_anywhere_imports_only_the_standard_library(name: str) -> None:
    """backend_logging_config.py is copied into apps; the first-run install runs before the
    requirements are installed."""
    path = ROOT / name
    assert path.is_file(), f"{name} is missing"
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    assert imported_names(path) - allowed == set()


def test_the_entry_files_import_each_other_in_no_circle() -> None:
    """The launcher calls the monitor's entry point, which must not import the launcher back."""
    entries = {name.removesuffix(".py") for name in ENTRY_FILES}
    graph = {name: imported_names(ROOT / f"{name}.py") & entries - {name} for name in entries}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path and (found := cycle_from(start, [*path, nxt])):
                return found
        return None

    cycles = [cycle for name in sorted(entries) if (cycle := cycle_from(name, [name]))]
    assert cycles == [], " -> ".join(cycles[0])


def test_tests_import_no_benchmark_and_conftest_holds_only_fixtures() -> None:
    """Helpers live in tests/helpers.py; the benchmark's code and its own tests in benchmarks/."""
    users = sorted(p.name for p in (ROOT / "tests").glob("*.py") if "benchmarks" in imported_names(p))
    assert users == [], "move what they need to tests/helpers.py"
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    defined = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
    helpers = [
        node.name for node in defined if not any("fixture" in ast.unparse(d) for d in node.decorator_list)
    ]
    assert helpers == [], "move these to tests/helpers.py"
