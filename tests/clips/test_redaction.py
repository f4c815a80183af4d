"""Footage Ego4D redacted for privacy is never cut nor asked about: a window overlapping one of its video's
redacted_intervals (ego4d.json) is a `skipped` record naming the redaction and the overlap; its neighbours are cut."""

from __future__ import annotations

import json
from pathlib import Path

from evud.clips import prepare
from evud.clips.ego4d import iter_language_queries, load_nlq, load_videos, plan_queries, selected
from evud.core.params import ClipParams, DataParams, GcsParams
from tests.support.numbered_video import make_numbered_video

VIDEO = "5e1d2c3b-0000-4000-8000-00000000000a"
REDACTED = [{"start_sec": 12.0, "end_sec": 20.0, "start_frame": 120, "end_frame": 200},
            {"start_sec": 40.0, "end_sec": 41.0, "start_frame": 400, "end_frame": 410}]


def write_redacted_metadata(folder: Path, windows: list[tuple[float, float]], video_url: str | None = None,
                            **params: object) -> DataParams:
    """ego4d.json with one video whose footage is redacted at [12, 20] and [40, 41] s, and one NLQ query a window."""
    folder.mkdir(parents=True, exist_ok=True)
    video = {"video_uid": VIDEO, "duration_sec": 60.0, "s3_path": None, "has_redacted_regions": True,
             "redacted_intervals": REDACTED, "video_metadata": {"fps": 10}}
    (folder / "ego4d.json").write_text(json.dumps({"version": "v1", "videos": [video]}))
    queries = [{"video_start_sec": start, "video_end_sec": end, "query": f"q{n}"}
               for n, (start, end) in enumerate(windows)]
    (folder / "nlq_train.json").write_text(json.dumps({"videos": [{"video_uid": VIDEO, "clips": [{
        "clip_uid": "clip-a", "annotations": [{"annotation_uid": "ann-a", "language_queries": queries}]}]}]}))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=video_url, window_rounding="exact", **params)


def planned(data: DataParams) -> dict[int, str | None]:
    """Each query's index -> None when it is planned for cutting, else its skip reason."""
    queries = selected(iter_language_queries(load_nlq(data.nlq_json)), data)
    plans, skipped = plan_queries(queries, load_videos(data.ego4d_json, {VIDEO}), data)
    return {**{p.ids.language_query_index: None for p in plans},
            **{r.language_query_index: r.reason for r in skipped}}


def test_a_window_overlapping_redacted_footage_is_skipped_naming_the_redaction_and_the_overlap(tmp_path: Path):
    windows = [(10.0, 14.0), (18.5, 25.0), (39.0, 45.0)]
    outcome = planned(write_redacted_metadata(tmp_path, windows, "v/{video_uid}.mp4"))
    assert all(reason and reason.startswith("redacted_footage: ") for reason in outcome.values()), outcome
    assert "2.000 s" in outcome[0] and "[12.0, 20.0]" in outcome[0]
    assert "1.500 s" in outcome[1]
    assert "1.000 s" in outcome[2] and "[40.0, 41.0]" in outcome[2]


def test_windows_touching_or_clear_of_a_redacted_interval_are_cut(tmp_path: Path):
    outcome = planned(write_redacted_metadata(tmp_path, [(8.0, 12.0), (20.0, 24.0), (30.0, 34.0), (41.0, 44.0)],
                                              "v/{video_uid}.mp4"))
    assert outcome == {0: None, 1: None, 2: None, 3: None}


def test_max_redacted_sec_allows_a_small_overlap_only(tmp_path: Path):
    windows = [(10.0, 12.5), (10.0, 13.5), (39.5, 40.5)]  # 0.5 s, 1.5 s and 0.5 s of redacted footage
    outcome = planned(write_redacted_metadata(tmp_path, windows, "v/{video_uid}.mp4", max_redacted_sec=1.0))
    assert outcome[0] is None and outcome[2] is None
    assert outcome[1].startswith("redacted_footage: ") and "data.max_redacted_sec=1.0" in outcome[1]


def test_evud_rounding_is_checked_as_cut(tmp_path: Path):
    """EVUD floors the start and ceils the end: a query ending at 11.2 s is cut to 12 s, touching [12, 20]; one ending
    at 12.2 s is cut to 13 s and overlaps it by a second."""
    data = write_redacted_metadata(tmp_path, [(8.3, 11.2), (8.3, 12.2)], "v/{video_uid}.mp4")
    outcome = planned(data.model_copy(update={"window_rounding": "evud"}))
    assert outcome[0] is None and "1.000 s" in outcome[1]


def test_prepare_never_cuts_redacted_footage_and_counts_it_in_its_summary(tmp_path: Path, capsys):
    (tmp_path / "videos").mkdir()
    make_numbered_video(tmp_path / "videos" / f"{VIDEO}.mp4", 60, fps=10)
    data = write_redacted_metadata(tmp_path / "meta", [(10.0, 14.0), (20.0, 24.0), (30.0, 32.0)],
                                   str(tmp_path / "videos" / "{video_uid}.mp4"))
    run = prepare.run(data, ClipParams(height=72), GcsParams(), tmp_path / "clips", tmp_path / "clips.jsonl",
                      tmp_path / "metrics.json", 1)
    by_index = {r.language_query_index: r for r in run.records}
    assert by_index[0].status.value == "skipped" and by_index[0].clip_path is None
    assert by_index[0].reason.startswith("redacted_footage: ")
    assert [by_index[i].status.value for i in (1, 2)] == ["ok", "ok"]
    assert sorted(p.name for p in (tmp_path / "clips").rglob("*.mp4")) == ["1.mp4", "2.mp4"]
    assert json.loads((tmp_path / "metrics.json").read_text())["not_ok_by_reason"] == {"redacted_footage": 1}
    assert run.facts["redacted_skipped"] == 1
    assert "1 window overlaps footage redacted for privacy" in capsys.readouterr().err


def test_a_malformed_redacted_interval_is_named_never_ignored(tmp_path: Path):
    data = write_redacted_metadata(tmp_path, [(30.0, 34.0)], "v/{video_uid}.mp4")
    document = json.loads(Path(data.ego4d_json).read_text())
    document["videos"][0]["redacted_intervals"] = [{"start_sec": "soon", "end_sec": 20.0}]
    Path(data.ego4d_json).write_text(json.dumps(document))
    (reason,) = planned(data).values()
    assert reason.startswith("malformed_video: ") and "redacted_intervals" in reason
