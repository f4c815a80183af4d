"""Ego4D Moments (moments_train.json, moments_val.json): one window a labelled moment of an annotator, from its
video_start_time to video_end_time, its label (e.g. "wash_dishes_/_utensils_/_bakeware_etc.") as the window's text.

Ids: video_uid, clip_uid, the annotator's uid (in the place of NLQ's annotation_uid) and the label's index in the
annotator's labels. Videos' durations and sources come from ego4d.json when data.ego4d_json names it, as for NLQ;
otherwise from data.video_url and the videos' own headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evud.clips.ego4d import (
    ClipPlan,
    RawQuery,
    exact_seconds,
    iter_annotated,
    load_nested,
    load_videos,
    plan_queries,
    selected,
)
from evud.clips.sources import SourceLookup
from evud.clips.windows import videos_by_url
from evud.core.params import DataParams
from evud.core.records import ClipRecord


def moment_fields(label: Any, clip: dict[str, Any]) -> Any:
    """A label in LanguageQuery's shape: its times in the video (or, in older files without them, its clip-relative
    times plus the clip's start in the video); anything else is left for the query model to refuse."""
    if not isinstance(label, dict):
        return label
    start, end = label.get("video_start_time"), label.get("video_end_time")
    offset = clip.get("video_start_sec")
    # Added in exact decimals: 0.1 + 0.2 is 0.30000000000000004 in floats, and the window's length would be off too.
    if start is None and isinstance(offset, (int, float)) and isinstance(label.get("start_time"), (int, float)):
        start = float(exact_seconds(offset) + exact_seconds(label["start_time"]))
    if end is None and isinstance(offset, (int, float)) and isinstance(label.get("end_time"), (int, float)):
        end = float(exact_seconds(offset) + exact_seconds(label["end_time"]))
    text = label.get("label")
    return {"video_start_sec": start, "video_end_sec": end, "query": text if isinstance(text, str) else None}


def iter_moment_labels(moments: dict[str, Any]) -> Iterator[RawQuery]:
    """Every labelled moment with its four ids and position, in file order."""
    return iter_annotated(moments, "annotator_uid", "labels", moment_fields)


def plan_moments(params: DataParams, sources: SourceLookup) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """data.source=ego4d_moments: every labelled moment of data.annotations."""
    moments = load_nested(params.annotations or "", ("clips", "annotations", "labels"), "Moments")
    queries = selected(iter_moment_labels(moments), params)
    uids = {q.ids.video_uid for q in queries if q.ids.video_uid}
    if params.ego4d_json:
        videos = load_videos(params.ego4d_json, uids)
    else:
        videos = videos_by_url({uid: (params.video_url or "").format(video_uid=uid) for uid in sorted(uids)}, sources)
    return plan_queries(queries, videos, params)
