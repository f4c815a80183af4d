"""dvc.yaml declares the code each stage runs: every module a stage script imports, directly or not (lazy
imports included), lies under one of the stage's deps, so no code change can miss a re-run; and the library's
imports form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.repo import PROJECT_ROOT

PACKAGES = ("evud", "stages")
STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file of a module of this project (evud.x.y), or None for anything else."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[Path]:
    """Project modules this file imports anywhere in it (top level, in functions, under TYPE_CHECKING)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            file = module_file(name)
            if file is not None:
                found.add(file)
            parts = name.split(".")
            for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
                parent = module_file(".".join(parts[:i]))
                if parent is not None:
                    found.add(parent)
    return found


def closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += imports_of(path) - seen
    return seen


def runs_code(path: Path) -> bool:
    """A module that holds only a docstring (a package's __init__) changes nothing a stage does."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def code_deps(stage: dict) -> list[Path]:
    deps = [str(d).split("#")[0].strip() for d in stage.get("deps", [])]
    return [PROJECT_ROOT / d for d in deps if d.split("/")[0] in PACKAGES]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_module_a_stage_runs_is_under_its_declared_deps(name: str):
    deps = code_deps(STAGES[name])
    used = closure(PROJECT_ROOT / "stages" / f"{name}.py")
    undeclared = sorted(str(p.relative_to(PROJECT_ROOT)) for p in used
                        if runs_code(p) and not any(p == d or d in p.parents for d in deps))
    assert not undeclared, f"stage {name} runs code dvc.yaml does not declare: {undeclared}"


def test_the_check_sees_lazy_imports():
    """The walk must find an import made inside a function (the vertex backend is imported lazily)."""
    used = closure(PROJECT_ROOT / "stages" / "generate.py")
    assert PROJECT_ROOT / "evud/gemini/backends/vertex.py" in used
    assert PROJECT_ROOT / "evud/gemini/backends/vertex_batch.py" in used


def test_the_library_has_no_import_cycle():
    graph = {p: imports_of(p) for p in (PROJECT_ROOT / "evud").rglob("*.py")}
    # A package's __init__ is imported by every module under it: not an edge of the cycles that matter here.
    graph = {p: {q for q in deps if q.name != "__init__.py"} for p, deps in graph.items()}
    state: dict[Path, str] = {}

    def visit(node: Path, trail: list[Path]) -> None:
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(module_name(p) for p in cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
