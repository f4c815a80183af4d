"""The committed params.yaml is exactly what Hydra composes from conf/ (what `dvc exp run` would write)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT
from stages.params import SECTIONS, compose_params, load_section


def test_committed_params_equal_hydra_composition(tmp_path: Path):
    composed = tmp_path / "params.yaml"
    compose_params(composed, PROJECT_ROOT / "conf")
    assert composed.read_text() == (PROJECT_ROOT / "params.yaml").read_text(), \
        "params.yaml is stale: run `python -m stages.params` and commit it"


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
    from stages.answers import EVUD_CATEGORIES
    from stages.records import QAItem

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
