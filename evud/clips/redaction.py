"""Footage Ego4D redacted for privacy (ego4d.json's `redacted_intervals`): a window overlapping it is not cut, so it
is never sent to Gemini nor paid for, and no answer about it enters the training data."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

REASON = "redacted_footage"


class RedactedInterval(BaseModel):
    """One stretch of a video's footage redacted for privacy, seconds in the video (the frames are not read)."""

    model_config = ConfigDict(extra="ignore")
    start_sec: float
    end_sec: float


def redacted_overlap(intervals: Iterable[RedactedInterval], start: float, end: float) -> float:
    """Seconds of the window [start, end] inside redacted footage; a window only touching an interval overlaps 0."""
    return sum(max(min(end, r.end_sec) - max(start, r.start_sec), 0.0) for r in intervals)


def redaction_problem(video_uid: str, intervals: list[RedactedInterval], start: float, end: float,
                      max_redacted_sec: float) -> str | None:
    """Why the window cannot be cut (`redacted_footage: ...`), or None when it overlaps at most the allowed seconds."""
    overlap = redacted_overlap(intervals, start, end)
    if overlap <= max_redacted_sec or overlap <= 0.0:
        return None
    touched = ", ".join(f"[{r.start_sec}, {r.end_sec}]" for r in intervals
                        if min(end, r.end_sec) > max(start, r.start_sec))
    return (f"{REASON}: window [{start}, {end}] s overlaps {overlap:.3f} s of footage redacted for privacy in video "
            f"{video_uid} ({touched} s in ego4d.json's redacted_intervals); data.max_redacted_sec={max_redacted_sec} "
            "allows a small overlap")


def count_redacted(reasons: Iterable[str | None]) -> int:
    """How many records were not cut for redacted footage (for the run's summary)."""
    return sum(1 for reason in reasons if reason and reason.startswith(f"{REASON}:"))


def redaction_summary(count: int, max_redacted_sec: float) -> str | None:
    """The end-of-run line about windows not cut for redacted footage (None when there were none)."""
    if not count:
        return None
    windows = "1 window overlaps" if count == 1 else f"{count} windows overlap"
    return (f"prepare: {windows} footage redacted for privacy by more than data.max_redacted_sec={max_redacted_sec} s: "
            "not cut, never asked (reason redacted_footage in the manifest)")
