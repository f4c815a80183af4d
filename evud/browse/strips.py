"""Frame strips: a few frames spread over a clip's window, side by side in one small JPEG.

PyAV decodes the frames (seeking for far ones, so a long clip costs a few GOPs, not every frame);
OpenCV scales them and encodes the strip. Strips are cached in the local store by the clip's sha256
and the strip settings, so a re-run, an experiment or a rebuilt site makes only the strips it lacks,
and a clip that lives only in GCS (`clip.keep_local=false`) is read once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from evud.clips.video import CutError, open_source
from evud.clips.workers import process_pool
from evud.core.progress import progress_bar
from evud.core.store import write_atomic

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Targets closer than this to the last decoded frame are reached by decoding on; farther ones by a seek
# (a seek lands on the keyframe before the target, so it only pays off past a GOP or so).
SEEK_GAP_S = 3.0


class StripError(Exception):
    """A clip whose strip cannot be made (unreadable file, no decodable frame in its window)."""


@dataclass(frozen=True)
class StripSettings:
    """What decides a strip's bytes besides the clip: part of its cache name."""

    frames: int = 8
    height: int = 96
    jpeg_quality: int = 75

    @property
    def tag(self) -> str:
        return f"{self.frames}f-{self.height}h-q{self.jpeg_quality}"


@dataclass(frozen=True)
class StripJob:
    """One clip to draw: its key (for messages), content hash, where to read it and its window length."""

    key: str
    sha256: str
    source: str  # a local path, or a URI (gs://, s3://, ...) when the clip is not kept locally
    duration: float


@dataclass
class StripReport:
    made: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # clip sha256 -> why (with the clip key)


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.match(value) is not None


def check_sha256(sha256: str) -> str:
    """A clip hash becomes a file name: only a plain 64-hex-digit sha256 may."""
    if not is_sha256(sha256):
        raise StripError(f"clip sha256 {sha256!r} is not 64 lowercase hex digits; refusing to use it in a path")
    return sha256


def sample_times(duration: float, frames: int) -> list[float]:
    """The centres of `frames` equal slices of [0, duration]: spread over the window, never its very edges."""
    return [duration * (i + 0.5) / frames for i in range(frames)]


def _decoded(container: Any, stream: Any, seek_to: float | None) -> Iterator[Any]:
    if seek_to is not None:
        container.seek(max(int(seek_to / stream.time_base), 0), stream=stream, backward=True)
    for frame in container.decode(stream):
        if frame.time is not None:
            yield frame


def pick_frames(container: Any, times: list[float]) -> list[np.ndarray]:
    """For each time (ascending), the first frame shown at or after it, as BGR; the last frame past the end."""
    stream = container.streams.video[0]
    picked: list[np.ndarray] = []
    frames: Iterator[Any] | None = None
    last: Any = None
    for target in times:
        position = last.time if last is not None else 0.0
        if frames is None or target - position > SEEK_GAP_S:
            frames = _decoded(container, stream, target if target > SEEK_GAP_S else None)
        for frame in frames:
            last = frame
            if frame.time >= target - 1e-6:
                break
        if last is None:
            raise StripError("no decodable video frame")
        picked.append(last.to_ndarray(format="bgr24"))
    return picked


GAP_PX = 2  # a dark line between frames, so that similar neighbours still read as separate frames


def compose_strip(images: list[np.ndarray], height: int) -> np.ndarray:
    """Frames scaled to one height (aspect kept) and laid side by side, a thin gap between them."""
    gap = np.full((height, GAP_PX, 3), 24, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for image in images:
        h, w = image.shape[:2]
        width = max(round(w * height / h), 1)
        if parts:
            parts.append(gap)
        parts.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    return cv2.hconcat(parts)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StripError("OpenCV could not encode the strip as JPEG")
    return buffer.tobytes()


def render_strip(source: str, duration: float, settings: StripSettings) -> bytes:
    """The JPEG strip of a clip file (local path or URI)."""
    times = sample_times(duration, settings.frames)
    try:
        if "://" in source and not source.startswith("file://"):
            with open_source(source) as raw, av.open(raw) as container:
                images = pick_frames(container, times)
        else:
            with av.open(source.removeprefix("file://")) as container:
                images = pick_frames(container, times)
    except (av.error.FFmpegError, CutError, OSError, IndexError) as err:
        raise StripError(f"cannot decode {source}: {err}") from None
    return encode_jpeg(compose_strip(images, settings.height), settings.jpeg_quality)


class StripCache:
    """Strips by clip content and settings: <root>/<sha256[:2]>/<sha256>-<settings>.jpg."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, sha256: str, settings: StripSettings) -> Path:
        sha256 = check_sha256(sha256)
        return self.root / sha256[:2] / f"{sha256}-{settings.tag}.jpg"

    def has(self, sha256: str, settings: StripSettings) -> bool:
        return self.path(sha256, settings).is_file()


def _make_one(job: StripJob, cache_root: str, settings: StripSettings) -> tuple[str, str | None]:
    """Worker: draw and store one strip; (clip sha256, error naming the clip, or None). Never raises."""
    try:
        data = render_strip(job.source, job.duration, settings)
        write_atomic(StripCache(Path(cache_root)).path(job.sha256, settings), data)
        return job.sha256, None
    except StripError as err:
        return job.sha256, f"clip {job.key}: {err}"


def make_strips(jobs: list[StripJob], cache: StripCache, settings: StripSettings, workers: int = 1) -> StripReport:
    """Make the strips the cache lacks (in `workers` processes), with progress; failures are reported, not raised."""
    pending = [job for job in jobs if not cache.has(job.sha256, settings)]
    report = StripReport(reused=len(jobs) - len(pending))
    todo: dict[str, StripJob] = {}
    for job in pending:
        todo.setdefault(job.sha256, job)  # queries cut to identical bytes share one strip
    bar = progress_bar(len(todo), "browse: frame strips")
    results: Iterator[tuple[str, str | None]]
    if workers > 1 and len(todo) > 1:
        pool = process_pool(workers)  # workers die with the stage, as prepare's do
        results = pool.map(_make_one, todo.values(), [str(cache.root)] * len(todo), [settings] * len(todo),
                           chunksize=8)
    else:
        pool = None
        results = (_make_one(job, str(cache.root), settings) for job in todo.values())
    try:
        for sha256, error in results:
            if error is None:
                report.made += 1
            else:
                report.failed[sha256] = error
            bar.update(1)
            bar.set_postfix(failed=len(report.failed))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    return report
