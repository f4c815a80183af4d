"""Cutting time windows out of a video into mp4 clips with PyAV (FFmpeg).

A source is opened once, as a seekable file (local, s3://, gs://, http(s):// through fsspec), and the
demuxer seeks to each window: only the bytes a window needs are read, never the whole video.

Two modes:
- `exact` (the default): decode from the keyframe at or before the window start (skipping the frames before it
  that nothing references) and encode the window's frames with libx264 at a target height, its audio trimmed to
  it: the file holds the window and nothing else, so every training loader (decord, OpenCV, PyAV), which counts and
  samples frames by index, and Gemini see exactly the window. A source whose display matrix rotates it (a phone's
  portrait video) has its pixels turned upright: loaders that ignore the matrix (PyAV, decord) see it as players do.
- `copy` (for players only): remux packets without decoding, from the keyframe at or before the window start up to
  the first packet decoded at or after its end. Timestamps are shifted so that the window starts at 0; earlier
  frames get negative times and the mp4 muxer writes an edit list, so an edit-list-aware player starts at the
  window, but loaders count the lead-in frames and sample across it. The physical span is returned so Gemini's
  videoMetadata offsets can trim it. The display matrix is copied with the stream.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import fsspec
import numpy as np

from evud.core.checksums import file_digests
from evud.core.params import runtime_seconds

# Part of every cut key: bump it whenever a change to this module changes the bytes of a clip, so clips
# cut by older code are cut again (tests/pipeline/test_reproducible.py pins the sample's clip hashes to it).
# 2: short clips are refused; reencode records the span its frames really cover.
# 3: `exact` is the default (the window's frames re-encoded, audio trimmed to the sample, lead-in B-frames skipped).
# 4: `exact` turns the pixels of a source with a display rotation upright (phones' portrait video), and starts with
#    the frame held into the window (variable-rate sources); other clips keep their bytes, but every key changes.
CUTTER_VERSION = 4

# bitexact: the mp4 muxer writes no library version strings, so the same cut gives the same bytes and
# clip sha256s (and the Gemini cache keyed on them) stay valid.
_BITEXACT = av.container.Flags.bitexact.value
# Remote reads: after a jump, fetch a small block; while reading on, grow it (see CountingReader).
_MIN_READAHEAD = 256 * 1024
_MAX_READAHEAD = 8 * 1024 * 1024
_DEMUX_BUFFER = 128 * 1024  # bytes per Python read call from the demuxer: fewer calls, little overshoot


class CutError(Exception):
    """A window could not be cut; the message starts with a short reason code.

    `permanent`: the input itself is the problem (no such object, a corrupt file, no video stream, a window
    the file does not hold), so a re-run cannot help and the query is `skipped`; otherwise (a network or
    store error, access denied) it is `failed` and cut again next run.
    """

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class CutSettings:
    mode: str = "exact"  # exact | copy
    keep_audio: bool = True
    height: int = 384  # exact: target height (never upscaled)
    crf: int = 23
    preset: str = "superfast"
    md5: bool = False  # also compute the clip's MD5 (to verify GCS uploads)


@dataclass(frozen=True)
class CutResult:
    file_start: float  # source time of the first frame physically in the file
    file_end: float  # source time where the last frame physically in the file ends
    sha256: str
    md5_b64: str | None  # what GCS reports as md5Hash, to verify uploads (only computed for them)
    size_bytes: int


class CountingReader(io.RawIOBase):
    """A seekable reader that counts the bytes it hands out, and adapts remote readahead to the access pattern.

    Over a remote file, each jump of the demuxer (to the header, to a window) fetches only a small block;
    while it then reads sequentially, the block grows with what it has read since the jump (a sixteenth of
    it, up to a cap), like an operating system's readahead. Few requests for long windows, little
    overshoot at a window's end: measured 0.56 s CPU and 17 s wall to stream 125 MB from a local S3 with
    fixed 512 KiB blocks, against 0.22 s and 4.7 s with 2 MiB blocks.

    A cut also announces each window's expected size (container bit rate x duration), so the jump to it
    fetches most of the window in one request (fewer requests: less CPU and latency).
    """

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self.bytes_read = 0
        self._cache = getattr(raw, "cache", None) if hasattr(getattr(raw, "cache", None), "blocksize") else None
        self._expected = 0
        self._since_jump = 0
        self._hint = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._cache is not None:
            self._adapt_readahead()
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        self._since_jump += len(data)
        self._expected = self._raw.tell()
        return len(data)

    @property
    def fetched_bytes(self) -> int:
        """Bytes fetched from the store (fsspec's readahead cache counts them); for a local file, bytes read."""
        return self._cache.total_requested_bytes if self._cache is not None else self.bytes_read

    def expect_window(self, size_bytes: int) -> None:
        """The next jump starts a window of about this many bytes: fetch most of it in one request."""
        self._hint = max(size_bytes, 0)

    def _adapt_readahead(self) -> None:
        if self._raw.tell() != self._expected:
            self._since_jump = 0
            if self._hint:
                self._cache.blocksize, self._hint = min(self._hint, 4 * _MAX_READAHEAD), 0
                return
        self._cache.blocksize = min(max(self._since_jump // 16, _MIN_READAHEAD), _MAX_READAHEAD)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


# What an HTTP status says about a source: not there (skipped: a re-run cannot help), not allowed, or a failure a
# re-run may fix (5xx, 429, a proxy's hiccup).
_GONE_STATUS = {404, 410}
_DENIED_STATUS = {401, 403}


SOURCE_TIMEOUT_ENV = "EVUD_SOURCE_TIMEOUT_S"
_DEFAULT_SOURCE_TIMEOUT_S = 60.0  # a store or CDN that sends nothing for a minute is not going to
_CONNECT_TIMEOUT_S = 10.0


def source_timeout_s() -> float:
    """How long a source read waits for its next bytes before it fails (EVUD_SOURCE_TIMEOUT_S)."""
    return runtime_seconds(SOURCE_TIMEOUT_ENV, _DEFAULT_SOURCE_TIMEOUT_S, least=0.001)


def with_timeouts(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """fsspec options with connect and read timeouts on every request to the source (http(s), S3, GCS): a server
    that accepts the connection and never answers fails the read instead of hanging the run."""
    read = source_timeout_s()
    connect = min(_CONNECT_TIMEOUT_S, read)
    if url.startswith(("http://", "https://", "gs://", "gcs://")):
        import aiohttp  # fsspec's and gcsfs's HTTP client

        # sock_read bounds each wait for bytes (headers included), not a whole long read.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        if url.startswith(("gs://", "gcs://")):
            return {"requests_timeout": timeout, **options}
        return {**options, "client_kwargs": {**options.get("client_kwargs", {}), "timeout": timeout}}
    if url.startswith("s3://"):
        # s3fs retries a failed request 5 times itself: botocore's own retries under each would multiply the wait.
        limits = {"connect_timeout": connect, "read_timeout": read, "retries": {"total_max_attempts": 1}}
        return {**options, "config_kwargs": {**limits, **options.get("config_kwargs", {})}}
    return options


def _timed_out(err: BaseException | None) -> bool:
    """Whether a timeout is anywhere in the error's chain (aiohttp's and asyncio's are TimeoutErrors, botocore's are
    named so)."""
    while err is not None:
        if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:
            return True
        err = err.__cause__ or err.__context__
    return False


def timeout_failure(url: str, err: BaseException) -> CutError:
    cause = err.__cause__ or err.__context__ or err
    return CutError(f"source_unreadable: {url}: no answer within {source_timeout_s():g} s ({type(cause).__name__}); "
                    f"a re-run asks it again ({SOURCE_TIMEOUT_ENV} sets the wait)")


def source_failure(url: str, err: BaseException) -> CutError:
    """The reason a source could not be opened. fsspec reports any HTTP failure as FileNotFoundError; the response or
    connection error it wraps says which it was: only 404 and 410 mean the video is not there."""
    if _timed_out(err):
        return timeout_failure(url, err)
    cause = err.__cause__ or err.__context__
    status = getattr(cause, "status", None)
    if isinstance(err, FileNotFoundError) and isinstance(status, int):
        said = f"HTTP {status}" + (f" {cause.message}" if getattr(cause, "message", None) else "")
        if status in _GONE_STATUS:
            return CutError(f"source_missing: {url} does not exist (HTTP {status})", permanent=True)
        if status in _DENIED_STATUS:
            return CutError(f"source_denied: {url}: {said}; check your credentials or the URL")
        return CutError(f"source_unreadable: {url}: {said}; a re-run asks it again")
    if isinstance(err, FileNotFoundError) and cause is not None and "://" in url and not url.startswith(("s3://", "gs://")):
        # No HTTP answer at all: refused, reset, timed out, name not resolved.
        return CutError(f"source_unreadable: {url}: cannot connect ({type(cause).__name__}: {cause}); a re-run asks it "
                        "again")
    if isinstance(err, FileNotFoundError):
        return CutError(f"source_missing: {url} does not exist (404)", permanent=True)
    if isinstance(err, PermissionError):
        return CutError(f"source_denied: {url}: access denied ({err}); check your credentials")
    return CutError(f"source_unreadable: {url}: {type(err).__name__}: {err}")


@contextmanager
def open_source(url: str, storage_options: dict[str, Any] | None = None) -> Iterator[CountingReader]:
    """A source video as a seekable, byte-counting file: never a download."""
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
        if not os.path.isfile(path):
            raise CutError(f"source_missing: {url} does not exist", permanent=True)
        with open(path, "rb", buffering=0) as raw:
            yield CountingReader(raw)
        return
    try:
        fs, path = fsspec.core.url_to_fs(url, **with_timeouts(url, storage_options or {}))
        raw = fs.open(path, "rb", block_size=_MIN_READAHEAD, cache_type="readahead")
    except (FileNotFoundError, PermissionError, TimeoutError) as err:
        raise source_failure(url, err) from None
    try:
        yield CountingReader(raw)
    finally:
        raw.close()


@dataclass(frozen=True)
class WindowJob:
    dest: Path
    start: float
    end: float
    partial: Path | None = None  # where to write while cutting (default: beside dest); renamed to dest when done


def cut_window(source_url: str, dest: Path, start: float, end: float, keep_audio: bool = True) -> CutResult:
    """Cut one window by stream copy (convenience for a single cut)."""
    with open_source(source_url) as source:
        (result,) = cut_windows(source, source_url, [WindowJob(dest, start, end)],
                                CutSettings(mode="copy", keep_audio=keep_audio))
    if isinstance(result, CutError):
        raise result
    return result


def cut_windows(source: CountingReader, source_url: str, jobs: list[WindowJob],
                settings: CutSettings) -> Iterator[CutResult | CutError]:
    """Cut several windows of one open source, demuxing its header once; yields one result or error per job,
    each as soon as its clip is complete (so the caller can record it before the next window is cut).

    Each clip appears at its dest only when complete. A source that cannot be opened fails every job with
    the same reason; a window that cannot be cut fails only itself.
    """
    try:
        inp = av.open(source, "r", buffer_size=_DEMUX_BUFFER)
    except Exception as err:  # noqa: BLE001  classified: a corrupt file, or the store failing under it
        failure = _read_error(source_url, err)
        yield from (failure for _ in jobs)
        return
    with inp:
        if not inp.streams.video:
            yield from (CutError(f"no_video_stream: {source_url} has no video stream (audio only?)", permanent=True)
                        for _ in jobs)
            return
        known: dict[str, int] = {}  # facts of this source one window found for the next (its display rotation)
        for job in jobs:
            if inp.bit_rate:
                # 90 %: an estimate from the average bit rate; the rest streams in growing blocks.
                source.expect_window(int(0.9 * (job.end - job.start) * inp.bit_rate / 8))
            yield _cut_one(inp, source_url, job, settings, known)


def _read_error(source_url: str, err: Exception) -> CutError:
    """FFmpeg rejecting the bytes is a corrupt file (permanent); anything else is the store failing (retry)."""
    if _timed_out(err):
        return timeout_failure(source_url, err)
    if isinstance(err, (av.error.FFmpegError, ValueError, IndexError, EOFError)):
        return CutError(f"unreadable_video: {source_url}: {type(err).__name__}: {err}", permanent=True)
    return CutError(f"source_unreadable: {source_url}: {type(err).__name__}: {err}")


def _cut_one(inp: Any, source_url: str, job: WindowJob, settings: CutSettings,
             known: dict[str, int]) -> CutResult | CutError:
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    partial = job.partial or job.dest.with_name(job.dest.name + ".part")
    cut = _copy_window if settings.mode == "copy" else _exact_window
    try:
        file_start, file_end = cut(inp, partial, job.start, job.end, settings, known)
    except CutError as err:
        partial.unlink(missing_ok=True)
        return err
    except Exception as err:  # noqa: BLE001  classified by _read_error; a worker must report every window
        partial.unlink(missing_ok=True)
        return _read_error(source_url, err)
    os.replace(partial, job.dest)
    sha256, md5_b64 = file_digests(job.dest, settings.md5)
    return CutResult(file_start=file_start, file_end=file_end, sha256=sha256, md5_b64=md5_b64,
                     size_bytes=job.dest.stat().st_size)


def _open_output(dest: Path) -> Any:
    out = av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"})
    out.flags |= _BITEXACT
    return out


def _copy_window(inp: Any, dest: Path, start: float, end: float, settings: CutSettings,
                 known: dict[str, int]) -> tuple[float, float]:
    video_in = inp.streams.video[0]
    audio_in = inp.streams.audio[0] if settings.keep_audio and inp.streams.audio else None
    with _open_output(dest) as out:
        video_out = out.add_stream_from_template(video_in)
        audio_out = out.add_stream_from_template(audio_in) if audio_in is not None else None
        # backward=True lands on the keyframe at or before the window start.
        inp.seek(_ticks(start, video_in), stream=video_in, backward=True)
        span = _copy_packets(inp, (video_in, video_out), (audio_in, audio_out), start, end, out)
    if span is None:
        raise CutError(f"no_frames_in_window: no video frames between {start} and {end} s", permanent=True)
    check_span(inp, video_in, start, end, *span)
    return span


def _copy_packets(inp: Any, video: tuple, audio: tuple, start: float, end: float, out: Any) -> tuple[float, float] | None:
    """Copy video from the keyframe before the window (every frame decodable) and the audio overlapping it."""
    (video_in, video_out), (audio_in, audio_out) = video, audio
    # Compare integer timestamps in each stream's time base: no Fraction arithmetic per packet.
    video_start, video_end = _ticks(start, video_in), _ticks(end, video_in)
    audio_start, audio_end = (_ticks(start, audio_in), _ticks(end, audio_in)) if audio_in is not None else (0, 0)
    first_pts = last_end = None
    video_done, audio_done = False, audio_in is None
    for packet in inp.demux(*[s for s in (video_in, audio_in) if s is not None]):
        if packet.dts is None or packet.pts is None:
            continue  # demuxer flush packets carry no data
        if packet.stream is video_in and not video_done:
            if first_pts is None and not packet.is_keyframe:
                continue
            if packet.dts >= video_end:
                # Every frame presented before `end` has a decode time before it, and so do the frames it
                # references: stopping here keeps the window decodable without the rest of the GOP.
                video_done = True
                continue
            first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
            packet_end = packet.pts + (packet.duration or 0)
            last_end = packet_end if last_end is None else max(last_end, packet_end)
            _shift_and_mux(packet, video_start, video_out, out)
        elif packet.stream is audio_in and not audio_done:
            if packet.pts >= audio_end:
                audio_done = True
                continue
            if packet.pts + (packet.duration or 0) > audio_start:
                _shift_and_mux(packet, audio_start, audio_out, out)
        if video_done and audio_done:
            break
    if first_pts is None or last_end <= video_start:
        return None  # nothing, or only frames before the window (the file ends before it starts)
    return float(first_pts * video_in.time_base), float(last_end * video_in.time_base)


def frame_period_s(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or 30
    return float(1 / rate)


def declared_end(inp: Any, stream: Any) -> float | None:
    """Where the container says the video stream ends (seconds), or None if it does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    return inp.duration / av.time_base if inp.duration else None


def video_duration(url: str, storage_options: dict[str, Any] | None = None) -> float | None:
    """Where a video's video stream ends, as its container says (seconds), reading only its header; None when it does
    not say or has no video stream. For sources whose metadata gives no duration (a windows file, EPIC-KITCHENS)."""
    with open_source(url, storage_options) as source, av.open(source, "r", buffer_size=_DEMUX_BUFFER) as inp:
        return declared_end(inp, inp.streams.video[0]) if inp.streams.video else None


def check_span(inp: Any, stream: Any, start: float, end: float, file_start: float, file_end: float) -> None:
    """Refuse a clip that holds less than its window, beyond one frame period at each end; say why."""
    tolerance = frame_period_s(stream) + 1e-6
    if file_start <= start + tolerance and file_end >= end - tolerance:
        return
    holds = f"the file holds [{file_start:.3f}, {file_end:.3f}] s of the window [{start}, {end}] s"
    source_end = declared_end(inp, stream)
    if source_end is not None and source_end < end - tolerance:
        raise CutError(f"source_shorter_than_metadata: the video ends at {source_end:.1f} s, before the window "
                       f"[{start}, {end}] s that ego4d.json's duration allows; {holds}", permanent=True)
    raise CutError(f"short_clip: {holds}: the source is truncated or corrupt there", permanent=True)


def _ticks(seconds: float, stream: Any) -> int:
    """A time in seconds as an integer timestamp of the stream (its time base)."""
    return int(seconds / stream.time_base)


def _shift_and_mux(packet: Any, shift: int, stream_out: Any, out: Any) -> None:
    packet.pts -= shift
    packet.dts -= shift
    packet.stream = stream_out
    out.mux(packet)


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def _exact_window(inp: Any, dest: Path, start: float, end: float, settings: CutSettings,
                  known: dict[str, int]) -> tuple[float, float]:
    """Decode the window and encode it with libx264 (and AAC audio): the file holds exactly the window, upright."""
    video_in = inp.streams.video[0]
    audio_in = inp.streams.audio[0] if settings.keep_audio and inp.streams.audio else None
    if "rotation" not in known:  # a stream's display matrix is the same for every window: read it once
        known["rotation"] = display_rotation(inp, video_in, start)
    turns = known["rotation"] // 90
    coded = (video_in.codec_context.width, video_in.codec_context.height)
    upright_width, upright_height = coded[::-1] if turns % 2 else coded
    height = min(settings.height, upright_height)  # the height of the picture as shown, never upscaled
    width = _even(upright_width * height / upright_height)
    rate = video_in.average_rate or Fraction(30)
    with _open_output(dest) as out:
        video_out = out.add_stream("libx264", rate=rate)
        video_out.width, video_out.height, video_out.pix_fmt = width, _even(height), "yuv420p"
        # mbtree off: measured here, x264's macroblock-tree ratecontrol gave different bytes from run to
        # run (even on one thread), and a clip's sha256 keys the Gemini cache. One thread, so the output
        # does not depend on the machine's core count either.
        video_out.options = {"crf": str(settings.crf), "preset": settings.preset, "x264-params": "mbtree=0"}
        video_out.codec_context.thread_count = 1
        audio_out = None
        if audio_in is not None:
            audio_out = out.add_stream("aac", rate=audio_in.codec_context.sample_rate,
                                       layout=audio_in.codec_context.layout.name)
        inp.seek(_ticks(start, video_in), stream=video_in, backward=True)
        span = _encode_window_frames(inp, video_in, video_out, audio_in, audio_out, start, end, out, turns)
        out.mux(video_out.encode(None))
        if audio_out is not None:
            out.mux(audio_out.encode(None))
    if span is None:
        raise CutError(f"no_frames_in_window: no video frames between {start} and {end} s", permanent=True)
    check_span(inp, video_in, start, end, *span)
    return span


def display_rotation(inp: Any, stream: Any, start: float) -> int:
    """How far the source's display matrix turns its pictures (degrees counterclockwise: 0, 90, 180 or 270), as phones
    record portrait. PyAV exposes the matrix on decoded frames only: decode the first frame from the keyframe before
    `start` (the cut seeks there again; the bytes are in the read cache)."""
    inp.seek(_ticks(start, stream), stream=stream, backward=True)
    try:
        for packet in inp.demux(stream):
            for frame in packet.decode():
                return round(frame.rotation / 90) * 90 % 360
    except (av.error.InvalidDataError, EOFError):
        pass  # a broken file: the cut itself says what is wrong
    return 0


def upright_picture(frame: Any, width: int, height: int, turns: int) -> Any:
    """The frame scaled to width x height as it is shown: turned by `turns` quarter turns counterclockwise (its display
    matrix), so every loader sees it upright whether or not it applies a matrix (the clip carries none)."""
    if not turns:
        return frame.reformat(width=width, height=height, format="yuv420p")
    stored = (height, width) if turns % 2 else (width, height)
    pixels = frame.reformat(width=stored[0], height=stored[1], format="rgb24").to_ndarray()
    turned = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(pixels, k=turns)), format="rgb24")
    return turned.reformat(format="yuv420p")


# Before the window start, frames nothing references are skipped, except in its last second: the frame on screen at
# the start (a variable-rate source may hold one for long) must be decoded.
_HOLD_MARGIN_S = 1.0


def _decoded_until_broken(inp: Any, video: Any, audio: Any | None, start: float, skipped: list[int]) -> Iterator[Any]:
    """Decoded frames from where the demuxer was sought to, ending where the data breaks (a file cut short: what came
    before is still good, and check_span then says the clip is short, as the copy mode does).

    Before the window start the decoder skips the frames nothing references (B-frames but the pyramid's middle one):
    they are never shown, and the lead-in from the keyframe is up to a whole GOP (8 s on x264's defaults). The pts of
    the packets it may have skipped go to `skipped`."""
    skip_before = _ticks(start - _HOLD_MARGIN_S, video)
    context = video.codec_context
    try:
        for packet in inp.demux(*[s for s in (video, audio) if s is not None]):
            if packet.stream is video:
                ends_before = packet.pts is not None and packet.pts + (packet.duration or 0) <= skip_before
                context.skip_frame = "NONREF" if ends_before else "DEFAULT"
                if ends_before:
                    skipped.append(packet.pts)
            yield from packet.decode()
    except (av.error.InvalidDataError, EOFError):
        return
    finally:
        context.skip_frame = "DEFAULT"


def _trimmed_audio(frame: Any, start: float, end: float) -> Any | None:
    """The part of an audio frame inside [start, end), to the sample (None when nothing of it is): the clip's audio
    starts and ends with its video, not with the encoder's frames around them."""
    rate = frame.sample_rate
    first = max(int(round((start - frame.time) * rate)), 0)
    last = min(int(round((end - frame.time) * rate)), frame.samples)
    if last <= first:
        return None
    if first == 0 and last == frame.samples:
        return frame
    samples = frame.to_ndarray()
    planar = frame.format.is_planar
    channels = len(frame.layout.channels)
    part = samples[:, first:last] if planar else samples[:, first * channels:last * channels]
    trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name, layout=frame.layout.name)
    trimmed.sample_rate = rate
    trimmed.pts, trimmed.time_base = frame.pts, frame.time_base  # the caller rewrites them
    return trimmed


def _encode_window_frames(inp, video_in, video_out, audio_in, audio_out, start, end, out,
                          turns=0) -> tuple[float, float] | None:
    """Encode the window's frames; returns the source span they cover, by time: from the window start when the frame
    on screen there began before it (a hold), else from the first frame; to the time the next frame replaces the last
    one (a variable-rate source's holds are as long as they are), else to one frame period after it."""
    frames, last_pts = 0, -1
    first_time = last_time = next_time = None
    held = None  # the last video frame before the window start: it is on screen at the start
    skipped: list[int] = []
    frame_period = Fraction(1) / video_out.average_rate
    video_done, audio_done = False, audio_in is None

    def encode_video(frame: Any, pts: int) -> None:
        nonlocal frames, last_pts
        # Before its timestamps are rewritten (reformat may return this very frame).
        picture = upright_picture(frame, video_out.width, video_out.height, turns)
        # Timestamps in frame periods (the encoder's own time base): measured, x264 output was not repeatable when
        # frames came in the source's finer time base. Strictly increasing, even for a variable-rate source whose
        # frames round to the same period.
        last_pts = max(pts, last_pts + 1)
        picture.pts, picture.time_base = last_pts, frame_period
        # The source's frame types are not ours to keep: x264 chooses its own (and FFmpeg would otherwise pass the
        # decoder's I/P/B marks on as forced types).
        picture.pict_type = av.video.frame.PictureType.NONE
        out.mux(video_out.encode(picture))
        frames += 1

    def show_held(next_shown: float) -> None:
        """Before the first frame of the window: the frame held into it, at 0, when the next one comes a whole frame
        period or more after the start (a hold). At a constant rate the window's frames are those starting in it."""
        nonlocal first_time
        if frames or held is None or next_shown - start < float(frame_period) - 1e-6:
            return
        if any(pts > held.pts for pts in skipped):
            return  # a later frame before the start was skipped undecoded: `held` is not the one on screen
        encode_video(held, 0)
        first_time = start

    for frame in _decoded_until_broken(inp, video_in, audio_in, start, skipped):
        if frame.time is None:
            continue
        is_video = isinstance(frame, av.VideoFrame)
        if frame.time >= end:
            if is_video and not video_done:
                show_held(end)
                next_time = frame.time
            video_done, audio_done = (True, audio_done) if is_video else (video_done, True)
        elif not is_video and not audio_done and frame.time + frame.samples / frame.sample_rate > start:
            part = _trimmed_audio(frame, start, end)
            if part is not None:
                part_time = max(float(frame.time), start)
                part.pts = int(round((part_time - start) * part.sample_rate))
                part.time_base = Fraction(1, part.sample_rate)
                out.mux(audio_out.encode(part))
        elif is_video and frame.time < start:
            held = frame
        elif is_video and not video_done:
            show_held(frame.time)
            first_time = frame.time if first_time is None else first_time
            last_time = frame.time
            encode_video(frame, int(round((frame.time - start) / frame_period)))
        if video_done and audio_done:
            break
    if not frames:
        return None
    if last_time is None:  # only the held frame: it fills the window
        last_time = start
    file_end = next_time if next_time is not None else float(last_time) + frame_period_s(video_in)
    return round(float(first_time), 6), round(float(file_end), 6)
