"""Ego4D metadata: read ego4d.json and nlq_train.json, select language queries, resolve their windows."""

from __future__ import annotations

import codecs
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

import fsspec
import ijson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evud.clips.redaction import RedactedInterval, redaction_problem
from evud.core.errors import UserError
from evud.core.params import DataParams
from evud.core.records import ClipRecord, ClipStatus, QueryIds, UnsafeUidError, check_path_safe_uid

# Ego4D metadata: only the fields the pipeline reads; extra fields are ignored.


class VideoMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    fps: float | None = None
    num_frames: int | None = None
    display_resolution_width: int | None = None
    display_resolution_height: int | None = None


class Ego4dVideo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    video_uid: str
    duration_sec: float
    s3_path: str | None = None
    video_metadata: VideoMetadata = Field(default_factory=VideoMetadata)
    redacted_intervals: list[RedactedInterval] | None = None  # footage redacted for privacy: never cut


class LanguageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    video_start_sec: float
    video_end_sec: float
    clip_start_sec: float | None = None
    clip_end_sec: float | None = None
    template: str | None = None
    query: str | None = None  # Ego4D ships some queries without text
    slot_x: str | None = None
    verb_x: str | None = None


class SkipQuery(Exception):
    """This query cannot become a clip; the message starts with a short reason code."""


@dataclass(frozen=True)
class ClipPlan:
    """A query that passed selection: what to cut, from where, to which file."""

    ids: QueryIds
    query: str | None
    window_start: float
    window_end: float
    source_url: str
    clip_path: str  # relative to the clips directory
    template: str | None = None
    video_duration: float | None = None  # the source video's duration as its metadata gives it
    video_variant: str | None = None  # which of Ego4D's files source_url is (evud.clips.ego4d_videos)

    def record(self, **fields: Any) -> ClipRecord:
        return ClipRecord(**self.ids.model_dump(), query=self.query, template=self.template,
                          video_variant=self.video_variant,
                          window_start=self.window_start, window_end=self.window_end,
                          duration=float(window_length(self.window_start, self.window_end)), **fields)


class MetadataError(UserError):
    """A metadata file that cannot be used at all: fail fast, naming the file and the field."""


_BOM = codecs.BOM_UTF8


def not_utf8(url: str, offset: int, err: UnicodeDecodeError) -> MetadataError:
    return MetadataError(f"{url} is not UTF-8: byte {offset} is {err.object[err.start:err.start + 1]!r} ({err.reason}). "
                         "Ego4D ships UTF-8 JSON; re-save this file as UTF-8, e.g. "
                         "`iconv -f latin1 -t utf-8 in.json > out.json` if it is Latin-1")


def read_utf8(url: str) -> str:
    """A whole text file in UTF-8 (a byte-order mark is allowed); any other encoding is refused by name."""
    try:
        with fsspec.open(url, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise MetadataError(f"{url}: file not found") from None
    start = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise not_utf8(url, start + err.start, err) from None


def load_json(url: str) -> Any:
    """A whole JSON document in UTF-8 (a byte-order mark is allowed); any other encoding is refused by name."""
    text = read_utf8(url)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise MetadataError(f"{url}: not valid JSON ({err})") from None


class Utf8Stream(io.RawIOBase):
    """A binary stream checked as UTF-8 while it is read (a leading byte-order mark is dropped), so a file
    streamed by ijson fails with the byte offset of its first non-UTF-8 byte, in one pass."""

    def __init__(self, raw: IO[bytes], url: str):
        self._raw, self._url = raw, url
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0
        head = raw.read(len(_BOM))
        self._pending = b"" if head == _BOM else head
        self._offset = len(head) - len(self._pending)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        if not size:
            return 0
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
        else:
            data = self._raw.read(size)
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            raise not_utf8(self._url, self._offset + err.start, err) from None
        self._offset += len(data)
        buffer[: len(data)] = data
        return len(data)


def load_nested(url: str, levels: tuple[str, ...], what: str) -> dict[str, Any]:
    """An Ego4D annotation file, checked for the structure every item hangs on: videos[] and then each of `levels`
    (e.g. clips[].annotations[].language_queries[]) a list of objects."""
    document = load_json(url)
    if not isinstance(document, dict) or not isinstance(document.get("videos"), list):
        raise MetadataError(f"{url}: field 'videos' is missing or not a list; is this an Ego4D {what} file?")

    def check(items: list[Any], where: str, depth: int) -> None:
        for i, item in enumerate(items):
            children = item.get(levels[depth], []) if isinstance(item, dict) else None
            if not isinstance(children, list):
                raise MetadataError(f"{url}: field '{where}[{i}].{levels[depth]}' is not a list")
            if depth + 1 < len(levels):
                check(children, f"{where}[{i}].{levels[depth]}", depth + 1)

    check(document["videos"], "videos", 0)
    return document


def load_nlq(url: str) -> dict[str, Any]:
    """nlq_train.json, checked for the structure every query hangs on (videos[].clips[].annotations[])."""
    return load_nested(url, ("clips", "annotations", "language_queries"), "NLQ")


def load_videos(ego4d_json: str, wanted: set[str] | None = None) -> dict[str, Ego4dVideo | str]:
    """video_uid -> its metadata (or the error text of a malformed entry), for the wanted uids only.

    ego4d.json is hundreds of MB: it is streamed video by video (ijson), keeping only the few fields
    the pipeline reads, so memory stays flat in its size.
    """
    videos: dict[str, Ego4dVideo | str] = {}
    try:
        with fsspec.open(ego4d_json, "rb") as f:
            for i, raw in enumerate(ijson.items(Utf8Stream(f, ego4d_json), "videos.item", use_float=True)):
                uid = raw.get("video_uid") if isinstance(raw, dict) else None
                if not isinstance(uid, str) or (wanted is not None and uid not in wanted):
                    continue
                try:
                    videos[uid] = Ego4dVideo.model_validate(raw)
                except ValidationError as err:
                    videos[uid] = f"{ego4d_json} videos[{i}] ({uid}) is malformed: {_first_error(err)}"
    except FileNotFoundError:
        raise MetadataError(f"{ego4d_json}: file not found") from None
    except ijson.JSONError as err:
        raise MetadataError(f"{ego4d_json}: not valid JSON ({err})") from None
    if not videos and wanted:
        _require_videos_field(ego4d_json)
    return videos


def _require_videos_field(ego4d_json: str) -> None:
    with fsspec.open(ego4d_json, "rb") as f:
        for prefix, event, _ in ijson.parse(Utf8Stream(f, ego4d_json)):
            if prefix == "videos" and event == "start_array":
                return
    raise MetadataError(f"{ego4d_json}: field 'videos' is missing or not a list; is this Ego4D's ego4d.json?")


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


@dataclass(frozen=True)
class RawQuery:
    """One language query of nlq_train.json as found: its ids (blank when missing), where it is, its fields."""

    ids: QueryIds
    position: str  # videos[i].clips[j].annotations[k].language_queries[q]
    fields: Any  # in LanguageQuery's shape: video_start_sec, video_end_sec, query, template
    missing_uid: str | None = None  # the first id field that is missing or empty
    problem: str | None = None  # why a reader already knows it cannot be cut (`code: detail`), e.g. an unreadable time


def _uid(container: dict[str, Any], field: str) -> str | None:
    value = container.get(field)
    return value.strip() if isinstance(value, str) and value.strip() else None


def iter_annotated(document: dict[str, Any], annotation_uid: str, items: str,
                   fields: Callable[[Any, dict[str, Any]], Any] | None = None) -> Iterator[RawQuery]:
    """Every item of an Ego4D annotation file, videos[].clips[].annotations[].<items>[] (NLQ's language queries,
    Moments' labels), with its four ids and position, in file order. `annotation_uid` names the annotation's id field
    (Moments: `annotator_uid`); `fields(item, clip)` puts an item in LanguageQuery's shape (default: as it is)."""
    for i, video in enumerate(document.get("videos", [])):
        for j, clip in enumerate(video.get("clips", [])):
            for k, annotation in enumerate(clip.get("annotations", [])):
                uids = {"video_uid": _uid(video, "video_uid"), "clip_uid": _uid(clip, "clip_uid"),
                        annotation_uid: _uid(annotation, annotation_uid)}
                missing = next((field for field, value in uids.items() if value is None), None)
                for q, item in enumerate(annotation.get(items, [])):
                    ids = QueryIds(video_uid=uids["video_uid"] or "", clip_uid=uids["clip_uid"] or "",
                                   annotation_uid=uids[annotation_uid] or "", language_query_index=q)
                    yield RawQuery(ids, f"videos[{i}].clips[{j}].annotations[{k}].{items}[{q}]",
                                   fields(item, clip) if fields else item, missing)


def iter_language_queries(nlq: dict[str, Any]) -> Iterator[RawQuery]:
    """Every language query of nlq_train.json with its four ids and position, in file order."""
    return iter_annotated(nlq, "annotation_uid", "language_queries")


def round_window(start: float, end: float, duration: float, rounding: str) -> tuple[float, float]:
    """The window to cut: EVUD floors the start and ceils the end; both rules clamp to [0, duration]."""
    if rounding == "evud":
        start, end = math.floor(start), math.ceil(end)
    return max(float(start), 0.0), min(float(end), duration)


def resolve_window(query: LanguageQuery, video: Ego4dVideo, params: DataParams) -> tuple[float, float]:
    """Check and round a query's window, or raise SkipQuery saying why it cannot be cut."""
    start, end = query.video_start_sec, query.video_end_sec
    if not (math.isfinite(start) and math.isfinite(end)):
        raise SkipQuery(f"bad_window: window [{start}, {end}] is not finite")
    if end <= start:
        raise SkipQuery(f"empty_window: window [{start}, {end}] has no positive length")
    if start >= video.duration_sec or end <= 0:
        raise SkipQuery(f"window_outside_video: window [{start}, {end}] lies outside the video (0 to {video.duration_sec} s)")
    start, end = round_window(start, end, video.duration_sec, params.window_rounding)
    length = window_length(start, end)
    if length < exact_seconds(params.min_window_sec):
        raise SkipQuery(f"window_too_short: {seconds_text(length)} s < data.min_window_sec={params.min_window_sec}")
    if params.max_window_sec is not None and length > exact_seconds(params.max_window_sec):
        raise SkipQuery(f"window_too_long: {seconds_text(length)} s > data.max_window_sec={params.max_window_sec}")
    return start, end


def exact_seconds(value: float) -> Decimal:
    """A time as the decimal it was written as (its float's shortest spelling), so that windows are measured in exact
    arithmetic: 0.7 - 0.2 is 0.49999999999999994 in floats, 0.5 in decimals."""
    return Decimal(repr(float(value)))


def window_length(start: float, end: float) -> Decimal:
    return exact_seconds(end) - exact_seconds(start)


def seconds_text(seconds: Decimal) -> str:
    """Milliseconds at least, every written digit at most: 0.200, 0.4999 (never 0.500 for a window under 0.5 s)."""
    return f"{seconds:.3f}" if seconds == seconds.quantize(_MILLISECOND) else str(seconds)


_MILLISECOND = Decimal("0.001")


def video_source_url(video: Ego4dVideo, params: DataParams) -> str:
    """Where to read a video: the data.video_url template, or else ego4d.json's s3_path."""
    if params.video_url:
        return params.video_url.format(video_uid=video.video_uid)
    if not video.s3_path:
        raise SkipQuery(f"no_source: video {video.video_uid} has no s3_path in ego4d.json and data.video_url is null")
    return video.s3_path


def clip_relative_path(ids: QueryIds) -> str:
    """<video_uid>/<clip_uid>/<annotation_uid>/<index>.mp4, the published layout; uids are checked first."""
    parts = [check_path_safe_uid(ids.video_uid, "video_uid"), check_path_safe_uid(ids.clip_uid, "clip_uid"),
             check_path_safe_uid(ids.annotation_uid, "annotation_uid")]
    return "/".join(parts + [f"{ids.language_query_index}.mp4"])


def plan_query(ids: QueryIds, raw_query: Any, videos: dict[str, Ego4dVideo | str], params: DataParams,
               problem: str | None = None) -> ClipPlan:
    """Turn one raw language query into a ClipPlan, or raise SkipQuery with the reason."""
    try:
        relative_path = clip_relative_path(ids)
    except UnsafeUidError as err:
        raise SkipQuery(f"unsafe_uid: {err}") from None
    if problem is not None:
        raise SkipQuery(problem)
    try:
        query = LanguageQuery.model_validate(raw_query)
    except ValidationError as err:
        raise SkipQuery(f"malformed_query: {_first_error(err)}") from None
    video = videos.get(ids.video_uid)
    if video is None:
        raise SkipQuery(f"unknown_video: video_uid {ids.video_uid} is not in {params.ego4d_json or params.annotations}")
    if isinstance(video, str):
        raise SkipQuery(f"malformed_video: {video}")
    start, end = resolve_window(query, video, params)
    redacted = redaction_problem(video.video_uid, video.redacted_intervals or [], start, end, params.max_redacted_sec)
    if redacted is not None:
        raise SkipQuery(redacted)
    return ClipPlan(ids=ids, query=query.query, window_start=start, window_end=end,
                    source_url=video_source_url(video, params), clip_path=relative_path, template=query.template,
                    video_duration=video.duration_sec)


def query_words(fields: Any) -> tuple[str | None, str | None]:
    """The annotator's query text and template, when a query that cannot be cut still has them (for its record)."""
    if not isinstance(fields, dict):
        return None, None
    text, template = fields.get("query"), fields.get("template")
    return (text if isinstance(text, str) else None), (template if isinstance(template, str) else None)


def check_identity(query: RawQuery, first_seen: dict[str, str]) -> None:
    """Raise SkipQuery for a query without all its ids, or with the ids of an earlier one (never cut over it)."""
    if query.missing_uid is not None:
        raise SkipQuery(f"missing_uid: {query.missing_uid} is missing or empty at {query.position}")
    earlier = first_seen.setdefault(query.ids.key, query.position)
    if earlier != query.position:
        raise SkipQuery(f"duplicate_query: {query.position} has the ids of {earlier}")


def selected(queries: Iterable[RawQuery], params: DataParams) -> list[RawQuery]:
    """The queries of the data.video_uids allow-list (all when it is null), in file order."""
    allowed = set(params.video_uids) if params.video_uids is not None else None
    return [q for q in queries if allowed is None or q.ids.video_uid in allowed]


def plan_nlq(params: DataParams) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """Ego4D NLQ: every language query of nlq_train.json, its video's duration and source from ego4d.json."""
    queries = selected(iter_language_queries(load_nlq(params.nlq_json)), params)
    videos = load_videos(params.ego4d_json, {q.ids.video_uid for q in queries if q.ids.video_uid})
    return plan_queries(queries, videos, params)


def plan_queries(queries: list[RawQuery], videos: dict[str, Ego4dVideo | str],
                 params: DataParams) -> tuple[list[ClipPlan], list[ClipRecord]]:
    """All selected queries as plans, plus a `skipped` record for every query that cannot be cut: the checks every
    source of windows shares (ids, window, video), in file order, then `limit` (pilot runs)."""
    plans: list[ClipPlan] = []
    skipped: list[ClipRecord] = []
    first_seen: dict[str, str] = {}
    for query in queries:
        if params.limit is not None and len(plans) >= params.limit:
            break
        try:
            check_identity(query, first_seen)
            plans.append(plan_query(query.ids, query.fields, videos, params, query.problem))
        except SkipQuery as why:
            text, template = query_words(query.fields)
            skipped.append(ClipRecord(**query.ids.model_dump(), status=ClipStatus.skipped, reason=str(why),
                                      query=text, template=template))
    return plans, skipped
