"""Which of Ego4D's files a window is cut from: `video_540ss` (short side 540, 30 fps, the canonical timeline) where
Ego4D has one for the video, else `full_scale` (ego4d.json's s3_path).

Clips are 384p: most of a full-scale decode is spent on pixels that are thrown away (measured: exact cutting from 1080p
0.636 CPU-s per clip-second, from 540p 0.266; docs/performance.md). The 540p files are listed, as the Ego4D CLI
finds them (facebookresearch/Ego4d ego4d/cli/manifest.py), in
`s3://ego4d-consortium-sharing/public/<version>/video_540ss/manifest.csv` (`<version>`: ego4d.json's `version`), a row
per file: `video_uid` (or `file_uid`) and its location in `canonical_s3_location` (or `s3_path`). The manifest is
read once per run. A video it does not list (v2.1's `grp-*` aggregates), or whose 540p file's duration (from its
header) differs from ego4d.json's by more than DURATION_TOLERANCE_S, is cut from full scale, and the run says so.
A video cut from its 540p file never has its full-scale object read: planning reads only ego4d.json.

Only for Ego4D sources read from ego4d.json's s3_path: when data.video_url names the videos (the bundled sample,
a mirror of one's own), they are what is cut and no manifest is looked for.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import ijson

from evud.clips.ego4d import ClipPlan, MetadataError, Utf8Stream
from evud.clips.sources import DurationStore, SourceLookup, known_durations
from evud.core.errors import UserError
from evud.core.params import ClipParams, DataParams
from evud.core.store import store_root

VIDEO_540SS, FULL_SCALE = "video_540ss", "full_scale"
SMALL_SIDE_540 = 540  # clips at most this tall lose nothing cut from the 540p files
DURATION_TOLERANCE_S = 0.5  # a 540p file longer or shorter than this is not the canonical timeline
MANIFEST_BUCKET = "ego4d-consortium-sharing"
_EGO4D_SOURCES = ("ego4d_nlq", "ego4d_moments")
_UID_COLUMNS = ("video_uid", "file_uid")
_LOCATION_COLUMNS = ("canonical_s3_location", "s3_path")


class ManifestError(UserError):
    """video_540ss was asked for (data.ego4d_videos) but its manifest cannot be read."""


class ManifestUnreadable(Exception):
    """The video_540ss manifest is missing or malformed; the message says which and where."""


@dataclass
class VariantReport:
    """Which file each video of the run is cut from, and why a video is cut from full scale when 540p was wanted."""

    variants: dict[str, str] = field(default_factory=dict)  # video_uid -> video_540ss | full_scale
    fallbacks: dict[str, str] = field(default_factory=dict)  # video_uid -> why not its 540p file
    manifest_problem: str | None = None  # the one line said when the manifest could not be read

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.variants.values()).items()))

    def summary(self) -> list[str]:
        """The run summary's lines: the count per variant, then each video not cut from its 540p file and why."""
        if not self.variants:
            return []
        counts = self.counts()
        unlisted = sum(1 for why in self.fallbacks.values() if why == NOT_LISTED)
        why = f" ({unlisted} not in the video_540ss manifest)" if unlisted else ""
        lines = [f"prepare: Ego4D videos cut from video_540ss: {counts.get(VIDEO_540SS, 0)}, from full_scale: "
                 f"{counts.get(FULL_SCALE, 0)}{why}"]
        lines += [f"prepare: video {uid} cut from full_scale, not video_540ss: {reason}"
                  for uid, reason in sorted(self.fallbacks.items()) if reason != NOT_LISTED]
        return lines


NOT_LISTED = "not in the video_540ss manifest"


def wanted_variant(data: DataParams, clip: ClipParams) -> tuple[str, bool]:
    """The variant to cut from and whether data.ego4d_videos asked for it (null: 540p when clips are <= 540 tall)."""
    if data.ego4d_videos is not None:
        return data.ego4d_videos, True
    return (VIDEO_540SS if clip.height <= SMALL_SIDE_540 else FULL_SCALE), False


def reads_ego4d_s3_paths(data: DataParams) -> bool:
    """Whether the run's videos are Ego4D's own, at ego4d.json's s3_path (not videos data.video_url names)."""
    return data.source in _EGO4D_SOURCES and bool(data.ego4d_json) and not data.video_url


def ego4d_version(ego4d_json: str) -> str | None:
    """ego4d.json's top-level `version` (e.g. v2), read by streaming: the key comes before the videos."""
    with fsspec.open(ego4d_json, "rb") as f:
        for prefix, event, value in ijson.parse(Utf8Stream(f, ego4d_json)):
            if prefix == "version" and event in ("string", "number"):
                return str(value)
    return None


def manifest_url(data: DataParams) -> str:
    """data.ego4d_manifest, or where the Ego4D CLI finds the video_540ss manifest of ego4d.json's version."""
    if data.ego4d_manifest:
        return data.ego4d_manifest
    try:
        version = ego4d_version(data.ego4d_json or "")
    except (MetadataError, ijson.JSONError, OSError) as err:
        raise ManifestUnreadable(f"the version of {data.ego4d_json} cannot be read ({err})") from None
    if not version:
        raise ManifestUnreadable(f"{data.ego4d_json} has no `version`, which names the video_540ss manifest; set "
                                 "data.ego4d_manifest to its location")
    return f"s3://{MANIFEST_BUCKET}/public/{version}/{VIDEO_540SS}/manifest.csv"


def read_manifest(url: str, sources: SourceLookup) -> dict[str, str]:
    """video_uid -> its 540p file's location, from a manifest CSV (rows without a location are not listed)."""
    try:
        with fsspec.open(url, "rb", **sources.options(url)) as f:
            text = f.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise ManifestUnreadable(f"{url} does not exist") from None
    except UnicodeDecodeError as err:
        raise ManifestUnreadable(f"{url} is not UTF-8 CSV (byte {err.start}: {err.reason})") from None
    except (OSError, PermissionError) as err:
        raise ManifestUnreadable(f"{url} cannot be read ({type(err).__name__}: {err})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    uid_column = next((c for c in _UID_COLUMNS if c in columns), None)
    location_column = next((c for c in _LOCATION_COLUMNS if c in columns), None)
    if uid_column is None or location_column is None:
        raise ManifestUnreadable(f"{url} is malformed: its header {columns} has no {' or '.join(_UID_COLUMNS)} and "
                                 f"{' or '.join(_LOCATION_COLUMNS)} columns")
    try:
        return {row[uid_column].strip(): row[location_column].strip() for row in reader
                if (row.get(uid_column) or "").strip() and (row.get(location_column) or "").strip()}
    except csv.Error as err:
        raise ManifestUnreadable(f"{url} is malformed CSV ({err})") from None


def duration_problem(seconds_540: float | None, seconds_full: float | None) -> str | None:
    """Why a 540p file is not the canonical timeline of its video (None when it is, to DURATION_TOLERANCE_S)."""
    if seconds_540 is None:
        return "its 540p file cannot be read now (no duration in its header)"
    if seconds_full is not None and abs(seconds_540 - seconds_full) > DURATION_TOLERANCE_S:
        return (f"540p duration {seconds_540:.1f} s differs from ego4d.json's duration_sec {seconds_full:.1f} s by "
                f"more than {DURATION_TOLERANCE_S} s")
    return None


def locate_540ss(plans: list[ClipPlan], listed: dict[str, str], sources: SourceLookup,
                 report: VariantReport) -> dict[str, str]:
    """video_uid -> the 540p file to cut from, for the videos whose listed file agrees with ego4d.json's duration."""
    full_durations: dict[str, float | None] = {}
    for plan in plans:
        full_durations.setdefault(plan.ids.video_uid, plan.video_duration)
    candidates = {uid: listed[uid] for uid in full_durations if uid in listed}
    for uid in full_durations:
        if uid not in listed:
            report.fallbacks[uid] = NOT_LISTED
    # Each 540p header is read once per content (kept by fingerprint in the store, as the videos' own durations).
    durations = known_durations(sorted(set(candidates.values())), sources, DurationStore(store_root() / "durations"))
    chosen = {}
    for uid, url in candidates.items():
        problem = duration_problem(durations.get(url), full_durations[uid])
        if problem is None:
            chosen[uid] = url
        else:
            report.fallbacks[uid] = problem
    return chosen


def choose_ego4d_videos(plans: list[ClipPlan], data: DataParams, clip: ClipParams,
                        sources: SourceLookup) -> tuple[list[ClipPlan], VariantReport]:
    """The plans with each Ego4D video's file chosen (its 540p file where Ego4D has a good one and 540p is wanted),
    and what was chosen. Plans of videos data.video_url names are returned as they are, without a variant."""
    report = VariantReport()
    if not reads_ego4d_s3_paths(data) or not plans:
        return plans, report
    variant, asked = wanted_variant(data, clip)
    chosen: dict[str, str] = {}
    if variant == VIDEO_540SS:
        try:
            url = manifest_url(data)
            chosen = locate_540ss(plans, read_manifest(url, sources), sources, report)
        except ManifestUnreadable as err:
            if asked:
                raise ManifestError(f"data.ego4d_videos=video_540ss but the video_540ss manifest cannot be used: "
                                    f"{err}. Set data.ego4d_manifest to a readable manifest.csv, or data.ego4d_videos="
                                    "full_scale") from None
            report.manifest_problem = (f"prepare: the video_540ss manifest cannot be used ({err}): every video is cut "
                                       "from full scale (ego4d.json's s3_path)")
            report.fallbacks.clear()
    chosen_plans = []
    for plan in plans:
        uid = plan.ids.video_uid
        report.variants[uid] = VIDEO_540SS if uid in chosen else FULL_SCALE
        update = {"source_url": chosen[uid]} if uid in chosen else {}
        chosen_plans.append(dataclasses.replace(plan, video_variant=report.variants[uid], **update))
    return chosen_plans, report
