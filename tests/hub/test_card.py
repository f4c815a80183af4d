"""The dataset card: a YAML header the Hub and `datasets` read (configs, features, license), a body that says what
the data is, how it was made, how to load it, its terms and its citations."""

from __future__ import annotations

from typing import get_args

import pytest
import yaml
from pydantic import ValidationError

from evud.core.params import ExportParams, WindowSource
from evud.hub.card import CardFacts, dataset_card, features
from evud.hub.layout import ClipKind
from evud.hub.rows import MetadataRow, metadata_row
from evud.hub.sources import SOURCES
from tests.support.hf import export_item, manifest_clip


def facts(source: str = "ego4d_nlq", **export: str) -> CardFacts:
    return CardFacts(source=source, model="gemini-3.8-flash", prompt_name="evud", export=ExportParams(**export))


VERSION = "0.0.1"


def rows(verdicts: tuple[str | None, ...] = ("grounded", None)) -> list[MetadataRow]:
    return [metadata_row(export_item(manifest_clip(i), verdict=v), "ego4d_nlq") for i, v in enumerate(verdicts)]


def split_card(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    header, _, body = card[4:].partition("\n---\n")
    return yaml.safe_load(header), body


def test_the_header_declares_the_config_and_every_column_as_datasets_reads_them():
    import datasets  # here, not at the top: see tests/support/hf.py

    header, _ = split_card(dataset_card(rows(), ClipKind.files, ["metadata.jsonl", "clips/**/*.mp4"], facts(), VERSION))
    assert header["configs"] == [{"config_name": "default", "version": VERSION, "data_files": [
        {"split": "train", "path": ["metadata.jsonl", "clips/**/*.mp4"]}]}]
    declared = datasets.Features._from_yaml_list(header["dataset_info"]["features"])
    assert list(declared) == ["video", *MetadataRow.model_fields] and isinstance(declared["video"], datasets.Video)
    assert declared["qa_pairs"] == datasets.List({name: datasets.Value("string")
                                                  for name in ("category", "question", "answer", "verdict")})
    assert header["size_categories"] == ["n<1K"] and header["language"] == ["en"]
    assert {"video-text-to-text", "visual-question-answering"} <= set(header["task_categories"])


def test_clips_by_uri_are_a_string_column():
    header, body = split_card(dataset_card(rows(), ClipKind.uris, ["metadata.jsonl"], facts(), VERSION))
    assert header["dataset_info"]["features"][0] == {"name": "video", "dtype": "string"}
    assert features(ClipKind.uris)[1:] == features(ClipKind.files)[1:]
    assert "gs:// URI" in body and "Video(decode=False)" not in body


@pytest.mark.parametrize(("source", "license_fields", "cited"), [
    ("ego4d_nlq", {"license": "other", "license_name": "ego4d-license",
                   "license_link": "https://ego4ddataset.com/ego4d-license/"}, "Grauman"),
    ("ego4d_moments", {"license": "other", "license_name": "ego4d-license",
                       "license_link": "https://ego4ddataset.com/ego4d-license/"}, "Grauman"),
    ("epic_kitchens", {"license": "cc-by-nc-4.0"}, "Damen"),
    ("windows", {"license": "unknown"}, None),
])
def test_the_license_terms_and_citations_are_the_sources(source: str, license_fields: dict, cited: str | None):
    header, body = split_card(dataset_card(rows(), ClipKind.files, ["metadata.jsonl"], facts(source), VERSION))
    assert {key: header[key] for key in ("license", "license_name", "license_link") if key in header} == license_fields
    assert "arXiv:2406.13807" in body and "AlanaVLM: A Multimodal Embodied AI Foundation Model" in body
    assert body.count("```bibtex") == (2 if cited else 1)
    if cited:
        assert cited in body
    if source.startswith("ego4d"):
        assert "accepted the Ego4D license" in body and "gated or private" in body
    if source == "epic_kitchens":
        assert "Attribution-NonCommercial 4.0" in body


def test_export_params_override_the_license_and_name_the_repository():
    header, body = split_card(dataset_card(rows(), ClipKind.files, ["metadata.jsonl"], facts(
        "windows", license="cc-by-4.0", pretty_name="My kitchen QA", repo_id="me/kitchen-qa"), VERSION))
    assert (header["license"], header["pretty_name"]) == ("cc-by-4.0", "My kitchen QA")
    assert "license_name" not in header
    assert body.lstrip().startswith("# My kitchen QA") and 'load_dataset("me/kitchen-qa", split="train")' in body


def test_an_other_license_needs_its_name_and_link():
    with pytest.raises(ValidationError, match="license: other needs license_name and license_link"):
        ExportParams(license="other")


def test_the_body_says_how_it_was_made_and_counts_pairs_by_verdict():
    _, body = split_card(dataset_card(rows(("grounded", "grounded", None)), ClipKind.files, ["metadata.jsonl"],
                                      facts(), VERSION))
    assert "`gemini-3.8-flash`" in body and "prompt `evud`" in body
    assert "| clips (rows) | 3 |" in body and "| QA pairs | 9 |" in body
    assert "| pairs by verdict: grounded | 6 |" in body
    assert "| pairs by verdict: (none: verify did not run) | 3 |" in body
    for column in ["video", *MetadataRow.model_fields]:
        assert f"| `{column}` |" in body


def test_the_same_rows_give_the_same_card():
    first = dataset_card(rows(), ClipKind.files, ["metadata.jsonl"], facts(), VERSION)
    assert dataset_card(rows(), ClipKind.files, ["metadata.jsonl"], facts(), VERSION) == first


def test_every_window_source_has_what_its_card_says():
    assert set(SOURCES) == set(get_args(WindowSource))
