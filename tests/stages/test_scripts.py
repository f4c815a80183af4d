"""The DVC stage scripts as dvc.yaml and people call them: thin command lines over the library."""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache

import pytest
import yaml

from tests.support.repo import PROJECT_ROOT

STAGE_SCRIPTS = sorted(p.stem for p in (PROJECT_ROOT / "stages").glob("*.py") if p.stem != "__init__")


@lru_cache(maxsize=None)  # one process per module, whichever test asks first
def help_text(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("module", [f"stages.{name}" for name in STAGE_SCRIPTS] + ["evud.dataset.review_sheet"])
def test_help_keeps_the_usage_examples_line_breaks(module: str):
    example = next(line for line in help_text(module).splitlines() if f"python -m {module}" in line)
    assert len(example) < 120, example  # the example wraps where its docstring does


def test_every_dvc_stage_is_one_of_the_stage_scripts_and_runs_as_dvc_yaml_calls_it():
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    assert sorted(stages) == STAGE_SCRIPTS
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"python -m stages.{name} ")
        flags = {word for word in stage["cmd"].split() if word.startswith("--")}
        assert flags <= set(help_text(f"stages.{name}").split()) | {"--params"}, name


@pytest.mark.parametrize("name", STAGE_SCRIPTS)
def test_a_stage_script_is_argparse_then_one_call(name: str):
    """Thin: the work lives in the evud package, where tests call it directly."""
    source = (PROJECT_ROOT / "stages" / f"{name}.py").read_text()
    code = [line for line in source.split('"""', 2)[2].splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) < 40, f"stages/{name}.py has {len(code)} lines of code"
    assert "def main(" in source and "import evud" not in source.split("def main(")[1]
