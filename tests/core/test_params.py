"""The committed params.yaml is exactly what Hydra composes from conf/ (what `dvc exp run` would write)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evud.core.params import SECTIONS, compose_params, load_section
from tests.support.repo import PROJECT_ROOT


def test_committed_params_equal_hydra_composition(tmp_path: Path):
    composed = tmp_path / "params.yaml"
    compose_params(composed, PROJECT_ROOT / "conf")
    assert composed.read_text() == (PROJECT_ROOT / "params.yaml").read_text(), \
        "params.yaml is stale: run `python -m evud.core.params` and commit it"


def test_every_section_validates(tmp_path: Path):
    for name in SECTIONS:
        load_section(name, PROJECT_ROOT / "params.yaml")


def test_a_typo_in_a_section_fails_loudly(tmp_path: Path):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["gemini"]["modle"] = "x"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    with pytest.raises(Exception, match="modle"):
        load_section("gemini", bad)


def test_evud_prompt_is_the_published_instruction():
    prompt = load_section("prompt", PROJECT_ROOT / "params.yaml")
    assert prompt.text.startswith("You are an intelligent embodied agent that can answer questions.")
    assert "object recognition, attribute recognition, object state recognition, object localisation, " \
           "spatial reasoning, functional reasoning, world knowledge." in prompt.text
    assert prompt.text.endswith("Category: <category>\nQuestion: <question>\nShort answer: <answer>\n\nAssistant:")


def test_evud_json_prompt_schema_matches_the_model_postprocess_validates_with(tmp_path: Path):
    from evud.core.domain import EVUD_CATEGORIES
    from evud.dataset.answers import QAItem

    composed = tmp_path / "params.yaml"
    compose_params(composed, PROJECT_ROOT / "conf", ["prompt=evud_json"])
    prompt = load_section("prompt", composed)
    assert prompt.format == "json"
    items = prompt.response_schema["items"]
    assert prompt.response_schema["type"] == "array" and items["type"] == "object"
    assert items["required"] == list(QAItem.model_fields) == list(items["properties"])
    assert tuple(items["properties"]["category"]["enum"]) == EVUD_CATEGORIES
    # The text keeps the published instruction and only changes how to answer.
    published = load_section("prompt", PROJECT_ROOT / "params.yaml").text
    assert prompt.text.split("\n\n")[:3] == published.split("\n\n")[:3]


def stage(module: str, repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "EVUD_PROGRESS": "0", **(env or {})})


PREPARE_ARGS = ("--clips-dir", "data/clips", "--manifest", "data/clips.jsonl", "--metrics", "metrics/prepare.json")


@pytest.mark.parametrize(("module", "args", "change", "expected"), [
    ("prepare", PREPARE_ARGS, ("clip", "mode", "fast"), "params.yaml: clip.mode='fast': Input should be 'exact', 'copy' or 'reencode'"),
    ("postprocess", ("--manifest", "m", "--responses", "r", "--out", "o", "--rejects", "x", "--metrics", "y"),
     ("post", "min_pairs", 0), "params.yaml: post.min_pairs=0: Input should be greater than or equal to 1"),
    ("prepare", PREPARE_ARGS, ("clip", "speed", 2), "params.yaml: clip.speed=2: Extra inputs are not permitted"),
])
def test_a_bad_param_stops_the_stage_in_one_line_naming_it(tmp_path: Path, module, args, change, expected):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    section, key, value = change
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = stage(module, PROJECT_ROOT, *args, "--params", str(tmp_path / "params.yaml"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"{module}: {expected.replace('params.yaml', str(tmp_path / 'params.yaml'))}"


def test_a_bad_runtime_knob_stops_the_stage_in_one_line_naming_it(tmp_path: Path):
    result = stage("prepare", PROJECT_ROOT, "--clips-dir", str(tmp_path / "c"), "--manifest", str(tmp_path / "m"),
                   "--metrics", str(tmp_path / "x"), env={"EVUD_WORKERS": "abc"})
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "prepare: EVUD_WORKERS='abc' is not a whole number of at least 1"


def leaves(value: object, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [leaf for key, inner in value.items() for leaf in leaves(inner, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def test_params_hold_settings_of_a_run_not_the_price_list(tmp_path: Path):
    """`dvc exp show` has a column per param: prices (facts about models, dated, in conf/prices.yaml) would add
    dozens of columns that never differ between two experiments. An old params.yaml with them is named."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    columns = leaves(params)
    assert not [c for c in columns if "price" in c or c.endswith("_per_1m")], columns
    assert len(columns) < 90, len(columns)  # 120 with gemini.pricing; 86 with the openai backend and per-check models
    params["gemini"]["pricing"] = {"gemini-3.8-flash": {"input_per_1m": 1.5}}
    old = tmp_path / "params.yaml"
    old.write_text(yaml.safe_dump(params))
    with pytest.raises(Exception, match=r"gemini.pricing moved to conf/prices.yaml"):
        load_section("gemini", old)
