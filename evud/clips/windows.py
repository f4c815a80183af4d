"""Windows of a file of the user's own (CSV or JSON Lines: a video, a start and an end, optional text and ids), and
what every source without Ego4D's metadata shares: times in seconds or `HH:MM:SS.fff`, ids derived stably from
(video, start, end), and videos known only by their URL, whose duration is read from the video itself.

Rows become the RawQuery that Ego4D NLQ queries are, so every source goes through the same checks and records
(evud.clips.ego4d.plan_queries): missing, duplicate or unsafe ids, malformed times, windows outside the video,
too short or too long, and then the same cut.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from evud.clips.ego4d import ClipPlan, Ego4dVideo, MetadataError, RawQuery, plan_queries, read_utf8, selected
from evud.clips.sources import DurationStore, SourceLookup, known_durations
from evud.core.params import DataParams
from evud.core.records import ClipRecord, QueryIds
from evud.core.store import store_root

# [[HH:]MM:]SS[.fff]: EPIC-KITCHENS writes HH:MM:SS.ff, video editors HH:MM:SS.fff, people 1:05.5.
_TIMESTAMP = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?)$")

WINDOW_COLUMNS = ("video", "start", "end")  # required; `text`, `video_id` and `window_id` are optional


def parse_seconds(value: Any) -> float:
    """Seconds from a number or a `[[HH:]MM:]SS[.fff]` timestamp; both spellings of a time give the same float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = value.strip() if isinstance(value, str) else None
    match = _TIMESTAMP.match(text) if text else None
    if match and ":" in text:
        hours, minutes, seconds = match.groups()
        if (hours is not None and int(minutes) >= 60) or Decimal(seconds) >= 60:
            raise ValueError(f"{value!r} is not a time: minutes and seconds must be below 60")
        # Decimal, not float arithmetic: "00:01:05.300" is exactly the float of 65.3.
        return float(int(hours or 0) * 3600 + int(minutes) * 60 + Decimal(seconds))
    if text:
        try:
            return float(text)  # also "-1", "nan", "inf": the window checks say what is wrong with those
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not seconds or HH:MM:SS.fff")


def cell(row: dict[str, Any], column: str) -> str | None:
    """A text cell, stripped; None when absent or blank."""
    value = row.get(column)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def timed_fields(row: dict[str, Any], start: str, end: str, text: str,
                 position: str) -> tuple[dict[str, Any], str | None]:
    """A row's window in LanguageQuery's shape, and why it cannot be cut when a time does not parse."""
    fields: dict[str, Any] = {"query": cell(row, text)}
    for column, key in ((start, "video_start_sec"), (end, "video_end_sec")):
        try:
            fields[key] = parse_seconds(row.get(column))
        except ValueError as err:
            return fields, f"malformed_query: {position}: {column} {err}"
    return fields, None


def derived_video_id(video: str) -> str:
    """A path-safe id for a video, from its name as the windows file writes it: the file stem and a hash of the whole
    name (two `clip.mp4` in different folders are two videos)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePosixPath(urlsplit(video).path).stem).strip("._-") or "video"
    return f"{stem[:48]}-{_digest(video)[:8]}"


def derived_window_id(video: str, start: Any, end: Any) -> str:
    """A window's id from (video, start, end), times to the millisecond: the same window in seconds or HH:MM:SS.fff
    has the same id, and a re-ordered or extended file keeps every id."""
    times = [f"{t:.3f}" if isinstance(t, float) and math.isfinite(t) else str(t) for t in (start, end)]
    return "w" + _digest("\n".join([video, *times]))[:15]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_video(video: str, windows_file: str) -> str:
    """A video as written in a windows file: a URL (s3://, gs://, http(s)://, file://) as is, a relative path relative to
    the windows file's folder (the file and its videos move together), an absolute path as is."""
    if "://" in video or video.startswith("/"):
        return video
    folder = windows_file.rsplit("/", 1)[0] if "/" in windows_file else "."
    return f"{folder}/{video}"


# --- reading rows ------------------------------------------------------------------------------------------------


def csv_rows(url: str, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(position, row) of a CSV file with a header naming at least the `required` columns."""
    reader = csv.DictReader(io.StringIO(read_utf8(url), newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise MetadataError(f"{url}: no column {', '.join(missing)} in its header {reader.fieldnames}; "
                            f"this source reads {', '.join(required)}")
    name = url.rsplit("/", 1)[-1]
    for row in reader:
        yield f"{name} line {reader.line_num}", row


def jsonl_rows(url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(position, row) of a JSON Lines file, one object a line (blank lines skipped)."""
    name = url.rsplit("/", 1)[-1]
    for number, line in enumerate(read_utf8(url).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise MetadataError(f"{url} line {number}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise MetadataError(f"{url} line {number}: not a JSON object")
        yield f"{name} line {number}", row


def window_rows(url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if url.endswith(".csv"):
        return csv_rows(url, WINDOW_COLUMNS)
    if url.endswith((".jsonl", ".ndjson")):
        return jsonl_rows(url)
    raise MetadataError(f"{url}: a windows file is .csv or .jsonl (JSON Lines)")


# --- planning ----------------------------------------------------------------------------------------------------


def window_query(position: str, row: dict[str, Any], windows_file: str) -> tuple[RawQuery, str | None]:
    """One row of a windows file as a query, and the URL of its video (None when the row names none).

    Ids: video_id and window_id from the file when it has those columns (a blank cell is a missing id), else derived;
    the video is also the clip (clip_uid), and each window one query (index 0)."""
    video = cell(row, "video")
    fields, problem = timed_fields(row, "start", "end", "text", position)
    video_id = cell(row, "video_id") if "video_id" in row else (video and derived_video_id(video))
    window_id = cell(row, "window_id") if "window_id" in row else derived_window_id(
        video or "", fields.get("video_start_sec", row.get("start")), fields.get("video_end_sec", row.get("end")))
    missing = None
    if not video_id:
        missing = "video_id" if "video_id" in row else "video"
    elif not window_id:
        missing = "window_id"
    elif video is None and problem is None:
        problem = f"no_source: {position} names no video"
    query_ids = QueryIds(video_uid=video_id or "", clip_uid=video_id or "", annotation_uid=window_id or "",
                         language_query_index=0)
    return RawQuery(query_ids, position, fields, missing, problem), video and resolve_video(video, windows_file)


def videos_by_url(urls: dict[str, str], sources: SourceLookup) -> dict[str, Ego4dVideo | str]:
    """video id -> the video at its URL, its duration read from its header once (infinite when it cannot be read now:
    its cut then records why, as for any source)."""
    durations = known_durations(sorted(set(urls.values())), sources, DurationStore(store_root() / "durations"))
    return {uid: Ego4dVideo(video_uid=uid, s3_path=url, duration_sec=durations[url] or math.inf)
            for uid, url in urls.items()}


def same_video_once(queries: list[tuple[RawQuery, str | None]]) -> tuple[list[RawQuery], dict[str, str]]:
    """The queries, and each video id's URL; a row giving an id already used for another video is not cut."""
    urls: dict[str, str] = {}
    checked = []
    for query, url in queries:
        uid = query.ids.video_uid
        if url and uid and urls.setdefault(uid, url) != url and query.problem is None:
            query = RawQuery(query.ids, query.position, query.fields, query.missing_uid,
                             f"malformed_query: {query.position}: video_id {uid} is already the id of {urls[uid]}")
        checked.append(query)
    return checked, urls


def plan_window_queries(rows: list[tuple[RawQuery, str | None]], params: DataParams,
                        sources: SourceLookup) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """Plans and skipped records of queries whose videos are known by URL only (the URL is the source to cut)."""
    queries, urls = same_video_once(rows)
    queries = selected(queries, params)
    wanted = {q.ids.video_uid for q in queries}
    videos = videos_by_url({uid: url for uid, url in urls.items() if uid in wanted}, sources)
    return plan_queries(queries, videos, params.model_copy(update={"video_url": None}))


def plan_windows_file(params: DataParams, sources: SourceLookup) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """data.source=windows: every row of the windows file (data.annotations)."""
    windows_file = params.annotations or ""
    return plan_window_queries([window_query(position, row, windows_file)
                                for position, row in window_rows(windows_file)], params, sources)
