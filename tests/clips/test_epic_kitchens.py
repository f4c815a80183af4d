"""EPIC-KITCHENS-100's annotation CSV: the bundled sample in its real schema, and its bad rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from evud.clips.ego4d import MetadataError
from evud.clips.selection import plan_clips
from evud.core.params import DataParams
from tests.support.repo import PROJECT_ROOT

HEADER = ("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
          "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n")


def sample_params(**updates) -> DataParams:
    conf = yaml.safe_load((PROJECT_ROOT / "conf/data/epic_kitchens_sample.yaml").read_text())
    conf = {k: (v.replace("data/", f"{PROJECT_ROOT}/data/", 1) if isinstance(v, str) and v.startswith("data/") else v)
            for k, v in conf.items()}
    return DataParams.model_validate({**conf, **updates})


def test_the_sample_gives_one_window_per_action_segment_with_its_narration():
    plans, skipped = plan_clips(sample_params())
    assert [(p.ids.key, p.window_start, p.window_end, p.query) for p in plans] == [
        ("P01_01-P01_01-P01_01_0-0", 0.14, 3.37, "open door"),
        ("P01_01-P01_01-P01_01_1-0", 4.37, 9.05, "take cup"),
        ("P01_01-P01_01-P01_01_2-0", 12.0, 17.5, "wash cup"),
        ("P02_109-P02_109-P02_109_0-0", 2.5, 8.25, "cut onion")]
    assert {p.source_url for p in plans} == {f"{PROJECT_ROOT}/data/epic_kitchens_sample/P01/videos/P01_01.MP4",
                                             f"{PROJECT_ROOT}/data/epic_kitchens_sample/P02/videos/P02_109.MP4"}
    # P02_109 is 15 s long, as its own header says (EPIC ships no durations).
    assert {r.annotation_uid: r.reason for r in skipped} == {
        "P01_01_3": "window_too_short: 0.200 s < data.min_window_sec=0.5",
        "P02_109_1": "window_outside_video: window [16.0, 18.0] lies outside the video (0 to 15.0 s)"}
    assert {r.query for r in skipped} == {"put down cup", "turn off tap"}


def test_rows_without_ids_or_times_are_recorded_naming_the_line(tmp_path: Path):
    shutil.copytree(PROJECT_ROOT / "data/epic_kitchens_sample/P01", tmp_path / "P01")
    (tmp_path / "train.csv").write_text(HEADER + "\n".join([
        "P01_01_0,P01,P01_01,00:00:01.00,00:00:01.00,00:00:03.00,60,180,open door,open,3,door,8,['door'],[8]",
        ",P01,P01_01,00:00:01.00,00:00:04.00,00:00:06.00,240,360,take cup,take,0,cup,13,['cup'],[13]",
        "P01_01_2,P01,P01_01,00:00:01.00,00:00:07.00,later,420,0,wash cup,wash,2,cup,13,['cup'],[13]",
        "P01_01_0,P01,P01_01,00:00:01.00,00:00:08.00,00:00:09.00,480,540,open door,open,3,door,8,['door'],[8]",
    ]) + "\n")
    plans, skipped = plan_clips(sample_params(annotations=str(tmp_path / "train.csv"),
                                              video_url=f"{tmp_path}/{{participant_id}}/videos/{{video_id}}.MP4"))
    assert [p.ids.annotation_uid for p in plans] == ["P01_01_0"]
    assert [r.reason for r in skipped] == [
        "missing_uid: narration_id is missing or empty at train.csv line 3",
        "malformed_query: train.csv line 4: stop_timestamp 'later' is not seconds or HH:MM:SS.fff",
        "duplicate_query: train.csv line 5 has the ids of train.csv line 2"]


def test_a_csv_without_epic_columns_stops_naming_them(tmp_path: Path):
    (tmp_path / "train.csv").write_text("video_id,start,end\nP01_01,1,2\n")
    with pytest.raises(MetadataError, match="no column narration_id, participant_id, start_timestamp"):
        plan_clips(sample_params(annotations=str(tmp_path / "train.csv")))
