"""EPIC-KITCHENS-100 action segments: the annotation CSV (EPIC_100_train.csv, EPIC_100_validation.csv), one window a
narrated action, from start_timestamp to stop_timestamp (HH:MM:SS.ff), its narration as the window's text."""

from __future__ import annotations

from typing import Any

from evud.clips.ego4d import ClipPlan, RawQuery
from evud.clips.sources import SourceLookup
from evud.clips.windows import cell, csv_rows, plan_window_queries, timed_fields
from evud.core.params import DataParams
from evud.core.records import ClipRecord, QueryIds

# The columns read; the CSV's others (verb, noun, their classes, frames) are left as they are.
EPIC_COLUMNS = ("narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "narration")


def epic_query(position: str, row: dict[str, Any], video_url: str) -> tuple[RawQuery, str | None]:
    """One action segment as a query: the video is also the clip, the narration id names the window."""
    video_id, narration_id = cell(row, "video_id"), cell(row, "narration_id")
    fields, problem = timed_fields(row, "start_timestamp", "stop_timestamp", "narration", position)
    missing = "video_id" if not video_id else "narration_id" if not narration_id else None
    ids = QueryIds(video_uid=video_id or "", clip_uid=video_id or "", annotation_uid=narration_id or "",
                   language_query_index=0)
    # P01_01 is participant P01's: the download scripts' layout is <participant>/videos/<video>.MP4.
    participant = cell(row, "participant_id") or (video_id or "").split("_")[0]
    url = video_url.format(video_uid=video_id, video_id=video_id, participant_id=participant) if video_id else None
    return RawQuery(ids, position, fields, missing, problem), url


def plan_epic_kitchens(params: DataParams, sources: SourceLookup) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """data.source=epic_kitchens: every action segment of the CSV (data.annotations); videos at data.video_url."""
    return plan_window_queries([epic_query(position, row, params.video_url or "")
                                for position, row in csv_rows(params.annotations or "", EPIC_COLUMNS)], params, sources)
