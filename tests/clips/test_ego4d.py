"""Selecting NLQ queries and resolving windows: every bad item is named and skipped, never a crash."""

from __future__ import annotations

import pytest

from evud.clips.ego4d import Ego4dVideo, SkipQuery, clip_relative_path, plan_query, round_window
from evud.core.params import DataParams
from evud.core.records import ClipStatus, QueryIds

PARAMS = DataParams(root="data/sample", ego4d_json="e.json", nlq_json="n.json",
                    video_url="videos/{video_uid}.mp4", window_rounding="evud", min_window_sec=0.5)
VIDEOS = {"v1": Ego4dVideo(video_uid="v1", duration_sec=40.0, s3_path="s3://bucket/v1.mp4")}


def ids(video="v1", clip="c1", annotation="a1", index=0) -> QueryIds:
    return QueryIds(video_uid=video, clip_uid=clip, annotation_uid=annotation, language_query_index=index)


def query(start, end, **extra):
    return {"video_start_sec": start, "video_end_sec": end, "query": "where is the cup?", **extra}


def test_evud_rounding_floors_start_ceils_end_and_clamps():
    assert round_window(5.3, 12.8, 40.0, "evud") == (5.0, 13.0)
    assert round_window(35.2, 48.9, 40.0, "evud") == (35.0, 40.0)
    assert round_window(-0.5, 3.2, 40.0, "exact") == (0.0, 3.2)


def test_plan_has_the_published_clip_layout():
    plan = plan_query(ids(), query(5.3, 12.8), VIDEOS, PARAMS)
    assert (plan.window_start, plan.window_end) == (5.0, 13.0)
    assert plan.clip_path == "v1/c1/a1/0.mp4"
    assert plan.source_url == "videos/v1.mp4"


def test_null_video_url_means_the_s3_path():
    plan = plan_query(ids(), query(1, 2), VIDEOS, PARAMS.model_copy(update={"video_url": None}))
    assert plan.source_url == "s3://bucket/v1.mp4"


@pytest.mark.parametrize("bad_ids", [ids(annotation="../x"), ids(clip="a/b"), ids(video=".."), ids(clip=".hidden")])
def test_path_like_uids_are_refused(bad_ids):
    with pytest.raises(SkipQuery, match="unsafe_uid"):
        plan_query(bad_ids, query(1, 5), {bad_ids.video_uid: VIDEOS["v1"]}, PARAMS)
    with pytest.raises(ValueError):
        clip_relative_path(bad_ids)


@pytest.mark.parametrize(("raw", "reason"), [
    (query(33.0 + 10, 50.0), "window_outside_video"),
    (query(18.0, 16.0), "empty_window"),
    (query(3.0, 3.0), "empty_window"),
    ({"video_end_sec": 3.0}, "malformed_query"),
    (query("soon", 3.0), "malformed_query"),
])
def test_bad_windows_are_skipped_with_a_reason(raw, reason):
    with pytest.raises(SkipQuery, match=reason):
        plan_query(ids(), raw, VIDEOS, PARAMS)


def test_unknown_video_is_named():
    with pytest.raises(SkipQuery, match="unknown_video: video_uid v9"):
        plan_query(ids(video="v9"), query(1, 5), VIDEOS, PARAMS)


def test_exact_rounding_can_make_a_window_too_short():
    exact = PARAMS.model_copy(update={"window_rounding": "exact"})
    with pytest.raises(SkipQuery, match="window_too_short"):
        plan_query(ids(), query(10.2, 10.25), VIDEOS, exact)
    assert plan_query(ids(), query(10.2, 10.25), VIDEOS, PARAMS).window_end == 11.0


@pytest.mark.parametrize(("start", "end"), [(0.2, 0.7), (0.6, 1.1), (1.8, 2.3), (3.9, 4.4)])
def test_a_window_of_exactly_min_window_sec_is_cut(start: float, end: float):
    """0.7 - 0.2 is 0.49999999999999994 and 1.1 - 0.6 is 0.5000000000000001 in floats: windows are measured in exact
    decimals, as written (neither data.min_window_sec nor data.max_window_sec refuses a window of exactly its length)."""
    params = PARAMS.model_copy(update={"window_rounding": "exact", "min_window_sec": 0.5, "max_window_sec": 0.5})
    plan = plan_query(ids(), query(start, end), VIDEOS, params)
    assert (plan.window_start, plan.window_end) == (start, end)
    assert plan.record(status=ClipStatus.ok).duration == 0.5


def test_a_window_just_under_min_window_sec_is_still_refused_naming_its_length():
    params = PARAMS.model_copy(update={"window_rounding": "exact", "min_window_sec": 0.5})
    with pytest.raises(SkipQuery, match=r"window_too_short: 0.4999 s < data.min_window_sec=0.5$"):
        plan_query(ids(), query(0.1, 0.5999), VIDEOS, params)
