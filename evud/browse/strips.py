"""Frame strips: a few frames spread over a clip's window, side by side in one small JPEG.

Strips are cached in the local store by the clip's sha256 and the strip settings, so a re-run, an experiment
or a rebuilt site makes only the strips it lacks, and a clip that lives only in GCS (`clip.keep_local=false`)
is read once. Drawing one (PyAV and OpenCV) is evud.browse.frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evud.clips.workers import process_pool
from evud.core.progress import progress_bar
from evud.core.store import write_atomic

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


def render_strip(source: str, duration: float, settings: StripSettings) -> bytes:
    """The JPEG strip of a clip file (local path or URI)."""
    # Loaded here, not at the top: a re-run whose strips are all cached never starts FFmpeg or OpenCV.
    import av

    from evud.browse.frames import FrameError, compose_strip, encode_jpeg, pick_frames
    from evud.clips.video import CutError, open_source

    times = sample_times(duration, settings.frames)
    try:
        if "://" in source and not source.startswith("file://"):
            with open_source(source) as raw, av.open(raw) as container:
                images = pick_frames(container, times)
        else:
            with av.open(source.removeprefix("file://")) as container:
                images = pick_frames(container, times)
    except (av.error.FFmpegError, CutError, OSError, IndexError, FrameError) as err:
        raise StripError(f"cannot decode {source}: {err}") from None
    try:
        return encode_jpeg(compose_strip(images, settings.height), settings.jpeg_quality)
    except FrameError as err:
        raise StripError(str(err)) from None


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
