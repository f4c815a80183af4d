"""Windows of the user's own (a CSV or JSON Lines file): times in either spelling, ids taken or derived, and every bad
input ending as the same record, with the same reason, as it does in Ego4D NLQ metadata."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from evud.clips.ego4d import MetadataError, plan_nlq
from evud.clips.selection import plan_clips
from evud.clips.sources import SourceLookup
from evud.clips.windows import derived_video_id, derived_window_id, parse_seconds, videos_by_url
from evud.core.params import DataParams
from tests.support.http_source import source_server
from tests.support.prepare_runs import prepare_run
from tests.support.repo import PROJECT_ROOT

KITCHEN = PROJECT_ROOT / "data/windows/videos/kitchen.mp4"  # 12 s
VIDEO_ID = "kitchen"


@pytest.mark.parametrize(("written", "seconds"), [
    ("00:01:05.300", 65.3), ("1:05.3", 65.3), ("65.3", 65.3), (65.3, 65.3), (7, 7.0), ("00:00:00.14", 0.14),
    ("01:00:00.000", 3600.0), ("0:00:09.05", 9.05)])
def test_timestamps_and_seconds_are_the_same_time(written, seconds):
    assert parse_seconds(written) == seconds  # the same float, not a near one: windows compare equal


@pytest.mark.parametrize("written", ["abc", "", None, "00:75:00", "1:60.0", "1::2", True])
def test_a_time_that_is_no_time_is_refused_naming_it(written):
    with pytest.raises(ValueError, match="not"):
        parse_seconds(written)


def windows_params(path: Path, **updates) -> DataParams:
    return DataParams(source="windows", root=str(path.parent), annotations=str(path),
                      window_rounding="exact", min_window_sec=0.5, **updates)


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def planned(params: DataParams) -> tuple[dict, dict]:
    """key -> (start, end, source, text) of each plan; key -> reason code of each skipped record."""
    plans, skipped = plan_clips(params)
    return ({p.ids.key: (p.window_start, p.window_end, p.source_url, p.query) for p in plans},
            {r.key: r.reason.split(":")[0] for r in skipped})


def test_seconds_and_timestamps_give_the_same_windows_and_ids_in_csv_and_jsonl(tmp_path: Path):
    shutil.copy(KITCHEN, tmp_path / "kitchen.mp4")
    in_seconds = [{"video": "kitchen.mp4", "start": 1.5, "end": 6, "text": "pour water"},
                  {"video": "kitchen.mp4", "start": 6.5, "end": 11.04, "text": ""}]
    as_timestamps = [{"video": "kitchen.mp4", "start": "00:00:01.500", "end": "0:06", "text": "pour water"},
                     {"video": "kitchen.mp4", "start": "00:00:06.5", "end": "00:00:11.040", "text": ""}]
    results = [planned(windows_params(write(tmp_path / name, rows))) for name, write, rows in (
        ("seconds.csv", write_csv, in_seconds), ("timestamps.csv", write_csv, as_timestamps),
        ("seconds.jsonl", write_jsonl, in_seconds), ("timestamps.jsonl", write_jsonl, as_timestamps))]
    assert all(result == results[0] for result in results)
    plans, skipped = results[0]
    video_id = derived_video_id("kitchen.mp4")
    assert not skipped and sorted(plans.values()) == [
        (1.5, 6.0, f"{tmp_path}/kitchen.mp4", "pour water"), (6.5, 11.04, f"{tmp_path}/kitchen.mp4", None)]
    assert sorted(plans) == sorted(f"{video_id}-{video_id}-{derived_window_id('kitchen.mp4', s, e)}-0"
                                   for s, e in ((1.5, 6.0), (6.5, 11.04)))


def test_derived_ids_are_stable_when_the_file_is_reordered_or_extended(tmp_path: Path):
    shutil.copy(KITCHEN, tmp_path / "kitchen.mp4")
    rows = [{"video": "kitchen.mp4", "start": s, "end": s + 2} for s in (1, 4, 7)]
    first, _ = planned(windows_params(write_csv(tmp_path / "a.csv", rows)))
    later, _ = planned(windows_params(write_csv(tmp_path / "b.csv", [rows[2], {"video": "kitchen.mp4", "start": 0,
                                                                             "end": 1}, rows[0], rows[1]])))
    assert set(first) < set(later) and len(later) == 4
    # Two videos of one name in two folders are two videos.
    assert derived_video_id("a/clip.mp4") != derived_video_id("b/clip.mp4")
    assert derived_video_id("s3://bucket/some dir/GH010042.MP4").startswith("GH010042-")


# One list of bad inputs, written once as Ego4D NLQ metadata and once as a windows file with the same ids: the
# video is 12 s long (ego4d.json says so for NLQ; the windows source reads it from the video).
BAD_INPUTS = [  # (window_id, start, end, the reason both give)
    ("w-ok", 1.0, 3.0, None),
    ("w-empty", 5.0, 4.0, "empty_window"),
    ("w-outside", 20.0, 25.0, "window_outside_video"),
    ("w-short", 1.0, 1.2, "window_too_short"),
    ("w-long", 0.0, 11.0, "window_too_long"),
    ("w-nan", "nan", 3.0, "bad_window"),
    ("w-words", "abc", 3.0, "malformed_query"),
    ("../escape", 1.0, 2.0, "unsafe_uid"),
    ("", 1.0, 2.0, "missing_uid"),
    ("w-ok", 2.0, 3.0, "duplicate_query"),
]


def nlq_with(folder: Path, cases: list) -> DataParams:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ego4d.json").write_text(json.dumps({"videos": [{"video_uid": VIDEO_ID, "duration_sec": 12.0}]}))
    annotations = [{"annotation_uid": window_id, "language_queries": [
        {"video_start_sec": float(start) if start == "nan" else start, "video_end_sec": end, "query": "q"}]}
        for window_id, start, end, _ in cases]
    (folder / "nlq_train.json").write_text(json.dumps(
        {"videos": [{"video_uid": VIDEO_ID, "clips": [{"clip_uid": VIDEO_ID, "annotations": annotations}]}]}))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=str(KITCHEN), window_rounding="exact",
                      min_window_sec=0.5, max_window_sec=10.0)


def test_every_bad_input_of_the_ego4d_path_gives_the_same_record_and_reason(tmp_path: Path):
    rows = [{"video": str(KITCHEN), "video_id": VIDEO_ID, "window_id": window_id, "start": start, "end": end,
             "text": "q"} for window_id, start, end, _ in BAD_INPUTS]
    from_windows = plan_clips(windows_params(write_csv(tmp_path / "w/windows.csv", rows), max_window_sec=10.0))
    from_nlq = plan_nlq(nlq_with(tmp_path / "nlq", BAD_INPUTS))
    for plans, skipped in (from_windows, from_nlq):
        assert [p.ids.key for p in plans] == [f"{VIDEO_ID}-{VIDEO_ID}-w-ok-0"]
        assert [r.reason.split(":")[0] for r in skipped] == [reason for *_, reason in BAD_INPUTS if reason]
    assert [r.key for r in from_windows[1]] == [r.key for r in from_nlq[1]]
    # The windows file's reasons name its rows and columns.
    reasons = {r.reason.split(":")[0]: r.reason for r in from_windows[1]}
    assert "windows.csv line 8: start 'abc' is not seconds or HH:MM:SS.fff" in reasons["malformed_query"]
    assert "window_id is missing or empty at windows.csv line 10" in reasons["missing_uid"]
    assert "lies outside the video (0 to 12.0 s)" in reasons["window_outside_video"]


def test_a_missing_or_corrupt_video_is_recorded_with_the_reason_ego4d_videos_get(tmp_path: Path):
    corrupt = tmp_path / "videos/corrupt.mp4"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(20_000))
    shutil.copy(KITCHEN, tmp_path / "videos/kitchen.mp4")
    path = write_csv(tmp_path / "windows.csv", [
        {"video": "videos/kitchen.mp4", "start": "0:01", "end": "0:03", "text": "ok"},
        {"video": "videos/not-there.mp4", "start": 1, "end": 2, "text": "missing"},
        {"video": "videos/corrupt.mp4", "start": 1, "end": 2, "text": "corrupt"},
        {"video": "", "start": 1, "end": 2, "text": "no video"}])
    records = prepare_run(tmp_path / "run", windows_params(path), workers=1).records
    outcome = {r.query: (r.status.value, (r.reason or "").split(":")[0]) for r in records}
    assert outcome == {"ok": ("ok", ""), "missing": ("skipped", "source_missing"),
                       "corrupt": ("skipped", "unreadable_video"), "no video": ("skipped", "missing_uid")}
    ok = next(r for r in records if r.query == "ok")
    assert (ok.window_start, ok.window_end, ok.duration) == (1.0, 3.0, 2.0)
    assert (tmp_path / "run/clips" / ok.clip_path).is_file()


def test_a_video_id_given_to_two_videos_and_a_row_without_video_are_recorded(tmp_path: Path):
    shutil.copy(KITCHEN, tmp_path / "a.mp4")
    shutil.copy(KITCHEN, tmp_path / "b.mp4")
    path = write_jsonl(tmp_path / "windows.jsonl", [
        {"video": "a.mp4", "video_id": "cam", "start": 1, "end": 3},
        {"video": "b.mp4", "video_id": "cam", "start": 4, "end": 6},
        {"video_id": "cam", "start": 7, "end": 9}])
    plans, skipped = plan_clips(windows_params(path))
    assert [p.source_url for p in plans] == [f"{tmp_path}/a.mp4"]
    assert [r.reason for r in skipped] == [
        f"malformed_query: windows.jsonl line 2: video_id cam is already the id of {tmp_path}/a.mp4",
        "no_source: windows.jsonl line 3 names no video"]


@pytest.mark.parametrize(("name", "content", "says"), [
    ("w.csv", "video,start\na.mp4,1\n", "no column end"),
    ("w.jsonl", '{"video": "a.mp4"}\n[1, 2]\n', "line 2: not a JSON object"),
    ("w.jsonl", '{"video": \n', "line 1: not valid JSON"),
    ("w.txt", "a.mp4 1 2\n", "a windows file is .csv or .jsonl"),
    ("w.csv", None, "file not found"),
])
def test_a_windows_file_that_cannot_be_read_stops_naming_it(tmp_path: Path, name: str, content: str | None, says: str):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(MetadataError, match=says):
        plan_clips(windows_params(tmp_path / name))


def test_a_source_without_its_files_is_refused_naming_the_key():
    with pytest.raises(ValidationError, match="source windows needs annotations"):
        DataParams(source="windows", root="data")
    with pytest.raises(ValidationError, match="source epic_kitchens needs video_url"):
        DataParams(source="epic_kitchens", root="data", annotations="a.csv")
    with pytest.raises(ValidationError, match="ego4d_json .* or video_url"):
        DataParams(source="ego4d_moments", root="data", annotations="m.json")
    with pytest.raises(ValidationError, match="`video` column; set video_url to null"):
        DataParams(source="windows", root="data", annotations="w.csv", video_url="v/{video_uid}.mp4")


def test_an_unreadable_video_is_cut_as_any_other_never_guessed_short():
    """A video whose header cannot be read has no duration: its windows are not judged outside it, the cut says why."""
    videos = videos_by_url({"gone": "/nonexistent/video.mp4", "kitchen": str(KITCHEN)}, SourceLookup())
    assert math.isinf(videos["gone"].duration_sec) and videos["kitchen"].duration_sec == 12.0


def test_a_videos_duration_is_read_from_its_header_once_then_kept_by_its_fingerprint(tmp_path: Path):
    """The header read costs a few ranged GETs of a remote video; a re-run (a new window, another experiment) asks the
    server for the fingerprint alone (a HEAD), as prepare does for every source, and reads no byte of the video."""
    shutil.copy(KITCHEN, tmp_path / "kitchen.mp4")
    with source_server(tmp_path) as server:
        rows = [{"video": f"{server.url}/kitchen.mp4", "start": 1, "end": 3}]
        first, _ = planned(windows_params(write_csv(tmp_path / "w/a.csv", rows)))
        read = server.body_bytes
        rows.append({"video": f"{server.url}/kitchen.mp4", "start": 4, "end": 6})
        again, skipped = planned(windows_params(write_csv(tmp_path / "w/b.csv", rows)))
        assert read > 0 and server.body_bytes == read
        assert set(first) < set(again) and not skipped
        rows.append({"video": f"{server.url}/kitchen.mp4", "start": 13, "end": 14})  # past the kept 12 s
        _, skipped = planned(windows_params(write_csv(tmp_path / "w/c.csv", rows)))
        assert list(skipped.values()) == ["window_outside_video"] and server.body_bytes == read


def test_a_run_looks_each_source_up_once_for_its_duration_and_its_clips(tmp_path: Path):
    """Planning (the duration) and cutting (the clips' store key) both need a video's fingerprint: one lookup serves
    both, so a run whose clips are all done asks the server once per video, never twice."""
    shutil.copy(KITCHEN, tmp_path / "kitchen.mp4")
    with source_server(tmp_path) as server:
        params = windows_params(write_csv(tmp_path / "w/windows.csv", [
            {"video": f"{server.url}/kitchen.mp4", "start": 1, "end": 3}]))
        assert [r.status.value for r in prepare_run(tmp_path / "run", params, workers=1).records] == ["ok"]
        server.requests = 0
        assert [r.status.value for r in prepare_run(tmp_path / "run", params, workers=1).records] == ["ok"]
        assert server.requests == 1  # the fingerprint's HEAD; the duration and the clip are in the store


@pytest.mark.parametrize(("name", "content"), [("w.csv", "video,start,end\n"), ("w.jsonl", "\n")])
def test_a_windows_file_without_a_window_stops_the_stage_with_one_line(tmp_path: Path, name: str, content: str):
    """A header and no row is a mistake (the wrong file, an export that failed), never an empty dataset."""
    import subprocess
    import sys

    import yaml

    (tmp_path / name).write_text(content)
    params = {"data": windows_params(tmp_path / name).model_dump(), "clip": {}, "gcs": {}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, "-m", "stages.prepare", "--clips-dir", str(tmp_path / "clips"),
                           "--manifest", str(tmp_path / "clips.jsonl"), "--metrics", str(tmp_path / "m.json"),
                           "--params", str(tmp_path / "params.yaml")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, "EVUD_STORE": str(tmp_path / "store")})
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1 and f"{name}: no window" in done.stderr, done.stderr
    assert not (tmp_path / "clips.jsonl").exists()
