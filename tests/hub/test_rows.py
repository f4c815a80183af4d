"""metadata.jsonl's rows: the same columns and types in every row, never null, in a stable order."""

from __future__ import annotations

import json

import pytest

from evud.hub.inputs import ExportError, join_clips
from evud.hub.rows import MetadataRow, features_yaml, metadata_line, metadata_row
from tests.support.hf import export_item, manifest_clip


def test_a_window_without_text_template_or_verdict_gets_empty_strings_not_nulls():
    item = export_item(manifest_clip(0, query=None, template=None), verdict=None)
    row = metadata_row(item, "ego4d_nlq")
    assert (row.text, row.template) == ("", "")
    assert {pair.verdict for pair in row.qa_pairs} == {""}


def test_a_row_maps_the_record_and_its_clip():
    item = export_item(manifest_clip(3, window_start=2.0, window_end=10.0, duration=8.0), verdict="grounded",
                       human=True)
    row = metadata_row(item, "epic_kitchens")
    assert (row.id, row.source, row.video_id, row.clip_id, row.annotation_id, row.window_index) == \
           (item.clip.key, "epic_kitchens", "v1", "c1", "a1", 3)
    assert (row.window_start, row.window_end, row.duration, row.text) == (2.0, 10.0, 8.0, "where is thing 3?")
    assert row.qa_pairs[0].model_dump() == {"category": "object recognition", "question": "What is 0?",
                                            "answer": "Thing 0", "verdict": "grounded"}
    assert [turn.model_dump(by_alias=True) for turn in row.conversations] == \
           [turn.model_dump(by_alias=True) for turn in item.record.conversations]
    assert row.human_annotated and row.clip_sha256 == item.clip.sha256


def test_the_declared_features_are_what_datasets_infers_from_the_rows():
    """Missing texts and verdicts, whole-number seconds: no column infers as null or int64 where it is declared
    string or float64 (the published EVUD files' cast error)."""
    import datasets  # here, not at the top: see tests/support/hf.py
    import pyarrow as pa

    rows = [metadata_row(export_item(manifest_clip(i, query=None, template=None, window_start=1.0, window_end=9.0,
                                                   duration=8.0)), "ego4d_nlq") for i in range(3)]
    table = pa.Table.from_pylist([json.loads(metadata_line("video", "gs://b/x.mp4", row))
                                  for row in rows])
    inferred = datasets.Features.from_arrow_schema(table.schema)
    declared = datasets.Features._from_yaml_list([{"name": "video", "dtype": "string"}, *features_yaml(MetadataRow)])
    assert inferred == declared and list(inferred) == list(declared)


def test_a_line_has_the_video_column_first_then_the_columns_in_declared_order():
    row = metadata_row(export_item(manifest_clip(0)), "ego4d_nlq")
    line = metadata_line("file_name", "clips/v1/c1/a1/0.mp4", row)
    names = list(json.loads(line))
    assert names == ["file_name", *(feature["name"] for feature in features_yaml(MetadataRow))]
    assert line == metadata_line("file_name", "clips/v1/c1/a1/0.mp4", row)  # same row, same bytes


def test_records_are_joined_to_their_clips_in_id_order_the_index_as_a_number():
    items = [export_item(manifest_clip(i)) for i in (10, 2, 1)]
    joined = join_clips([item.record for item in items], [item.clip for item in reversed(items)])
    assert [item.clip.language_query_index for item in joined] == [1, 2, 10]
    assert all(item.record.id == item.clip.key for item in joined)


def test_a_record_without_its_clip_in_the_manifest_fails_naming_it():
    kept, lost = export_item(manifest_clip(0)), export_item(manifest_clip(1))
    with pytest.raises(ExportError, match=f"record {lost.record.id}: no ok clip"):
        join_clips([kept.record, lost.record], [kept.clip])


def test_a_clip_without_a_checksum_fails_naming_it():
    item = export_item(manifest_clip(0, sha256=None))
    with pytest.raises(ExportError, match=f"clip {item.clip.key}: the manifest line has no sha256"):
        join_clips([item.record], [item.clip])


def test_a_row_says_which_span_of_the_video_its_clip_file_holds():
    """A copy cut starts at the keyframe before the window: a loader reading the file reads that lead-in too, so the row
    says where the file starts and ends (an exact cut's file is its window)."""
    copied = metadata_row(export_item(manifest_clip(0, cut_mode="copy", file_start=8.0, file_end=15.2)), "ego4d_nlq")
    assert (copied.window_start, copied.window_end, copied.clip_start, copied.clip_end) == (10.0, 15.0, 8.0, 15.2)
    exact = metadata_row(export_item(manifest_clip(1, file_start=10.0, file_end=15.0)), "ego4d_nlq")
    assert (exact.clip_start, exact.clip_end) == (exact.window_start, exact.window_end)
