"""Ego4D Moments (moments_train.json): the bundled sample in its real schema, durations from ego4d.json or from the
videos themselves, and its bad labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evud.clips.ego4d import MetadataError
from evud.clips.selection import plan_clips
from evud.core.params import DataParams
from tests.support.repo import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data/sample"
VIDEO = "3c0dffd0-e38e-4643-bc48-d513943dc20b"  # 40 s
ANNOTATOR = "b0c1d2e3-0001-4000-8000-0000000000a1"


def moments_params(annotations: Path, with_ego4d_json: bool = True) -> DataParams:
    return DataParams(source="ego4d_moments", root=str(SAMPLE), annotations=str(annotations),
                      ego4d_json=str(SAMPLE / "ego4d.json") if with_ego4d_json else None,
                      video_url=f"{SAMPLE}/videos/{{video_uid}}.mp4", window_rounding="exact", min_window_sec=0.5)


@pytest.mark.parametrize("with_ego4d_json", [True, False])
def test_the_sample_gives_one_window_per_labelled_moment(with_ego4d_json: bool):
    """With ego4d.json, durations come from it (as for NLQ); without, from the videos' own headers: the same plans."""
    plans, skipped = plan_clips(moments_params(SAMPLE / "moments_train.json", with_ego4d_json))
    assert [(p.ids.annotation_uid, p.ids.language_query_index, p.window_start, p.window_end, p.query) for p in plans] == [
        (ANNOTATOR, 0, 2.4, 9.6, "cut_/_chop_/_slice_a_vegetable,_fruit,_or_meat"),
        (ANNOTATOR, 1, 14.0, 21.5, "wash_dishes_/_utensils_/_bakeware_etc."),
        ("b0c1d2e3-0002-4000-8000-0000000000a2", 0, 4.0, 12.0, "browse_through_clothing_items_on_rack_/_shelf_/_hanger")]
    assert [(r.language_query_index, r.reason.split(":")[0]) for r in skipped] == [(2, "empty_window")]


def write_moments(path: Path, labels: list, annotator: str | None = ANNOTATOR, video: str = VIDEO) -> Path:
    path.write_text(json.dumps({"videos": [{"video_uid": video, "clips": [
        {"clip_uid": "clip-1", "video_start_sec": 10.0, "annotations": [{"annotator_uid": annotator,
                                                                        "labels": labels}]}]}]}))
    return path


def test_labels_with_clip_times_only_are_placed_in_the_video(tmp_path: Path):
    path = write_moments(tmp_path / "m.json", [{"start_time": 1.5, "end_time": 4.0, "label": "stir_food"}])
    plans, _ = plan_clips(moments_params(path))
    assert [(p.window_start, p.window_end) for p in plans] == [(11.5, 14.0)]  # the clip starts 10 s into the video


def test_bad_labels_are_recorded_with_the_reasons_nlq_queries_get(tmp_path: Path):
    labels = [{"video_start_time": 50.0, "video_end_time": 55.0, "label": "late"},
              {"label": "no times"}, "not a label"]
    plans, skipped = plan_clips(moments_params(write_moments(tmp_path / "m.json", labels)))
    assert not plans
    assert [r.reason.split(":")[0] for r in skipped] == ["window_outside_video", "malformed_query", "malformed_query"]
    _, skipped = plan_clips(moments_params(write_moments(tmp_path / "m.json", labels[:1], annotator=None)))
    assert [r.reason for r in skipped] == [
        "missing_uid: annotator_uid is missing or empty at videos[0].clips[0].annotations[0].labels[0]"]
    _, skipped = plan_clips(moments_params(write_moments(tmp_path / "m.json", labels[:1], video="not-in-ego4d-json")))
    assert [r.reason.split(":")[0] for r in skipped] == ["unknown_video"]


def test_a_file_without_the_moments_structure_stops_naming_the_field(tmp_path: Path):
    (tmp_path / "m.json").write_text(json.dumps({"videos": [{"video_uid": VIDEO, "clips": [{"annotations": [
        {"annotator_uid": ANNOTATOR, "labels": {"not": "a list"}}]}]}]}))
    with pytest.raises(MetadataError, match=r"'videos\[0\].clips\[0\].annotations\[0\].labels' is not a list"):
        plan_clips(moments_params(tmp_path / "m.json"))


def test_clip_times_are_placed_in_the_video_in_exact_decimals(tmp_path: Path):
    """0.1 + 0.2 is 0.30000000000000004 in floats: a label of exactly data.min_window_sec stays one, its times clean."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"videos": [{"video_uid": VIDEO, "clips": [
        {"clip_uid": "clip-1", "video_start_sec": 0.1, "annotations": [{"annotator_uid": ANNOTATOR, "labels": [
            {"start_time": 0.2, "end_time": 0.7, "label": "stir_food"}]}]}]}]}))
    plans, skipped = plan_clips(moments_params(path))
    assert [(p.window_start, p.window_end) for p in plans] == [(0.3, 0.8)] and not skipped
