"""Cutting a time window out of a video into an mp4 clip with PyAV (FFmpeg), without decoding (stream copy)."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import av
import fsspec

# The mp4 muxer writes no library version strings with bitexact: the same cut gives the same bytes
# on every machine and FFmpeg build, so clip sha256s (and the Gemini cache keyed on them) stay valid.
_BITEXACT = av.container.Flags.bitexact.value
_READ_BLOCK = 1 << 20  # ~1 MiB ranged reads: measured to fetch little more than a cut needs


class CutError(Exception):
    """A window could not be cut; the message starts with a short reason code."""


@dataclass(frozen=True)
class CutResult:
    file_start: float  # source time of the first frame physically in the file (a keyframe <= window start)
    file_end: float  # source time where the last frame physically in the file ends
    sha256: str
    size_bytes: int


@contextmanager
def open_source(url: str) -> Iterator[str | IO[bytes]]:
    """A local path as is; anything else (s3://, gs://, http://) as a seekable fsspec file: never a download."""
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
        if not os.path.exists(path):
            raise CutError(f"source_missing: {url} does not exist")
        yield path
        return
    try:
        with fsspec.open(url, "rb", block_size=_READ_BLOCK) as f:
            yield f
    except FileNotFoundError:
        raise CutError(f"source_missing: {url} does not exist") from None
    except PermissionError as err:
        raise CutError(f"source_denied: {url}: {err}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cut_window(source_url: str, dest: Path, start: float, end: float, keep_audio: bool = True) -> CutResult:
    """Cut [start, end) (seconds) of the source into dest by stream copy; dest appears only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        with open_source(source_url) as source:
            file_start, file_end = _remux_window(source, partial, start, end, keep_audio)
    except CutError:
        partial.unlink(missing_ok=True)
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as err:
        partial.unlink(missing_ok=True)
        raise CutError(f"unreadable_video: {source_url}: {type(err).__name__}: {err}") from None
    os.replace(partial, dest)
    return CutResult(file_start=file_start, file_end=file_end, sha256=sha256_file(dest), size_bytes=dest.stat().st_size)


def _remux_window(source: str | IO[bytes], dest: Path, start: float, end: float, keep_audio: bool) -> tuple[float, float]:
    with av.open(source, "r") as inp:
        if not inp.streams.video:
            raise CutError("no_video_stream: the source has no video stream")
        video_in = inp.streams.video[0]
        audio_in = inp.streams.audio[0] if keep_audio and inp.streams.audio else None
        with av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            out.flags |= _BITEXACT
            video_out = out.add_stream_from_template(video_in)
            audio_out = out.add_stream_from_template(audio_in) if audio_in is not None else None
            # backward=True lands on the keyframe at or before the window start.
            inp.seek(int(start / video_in.time_base), stream=video_in, backward=True)
            span = _copy_packets(inp, video_in, video_out, audio_in, audio_out, start, end, out)
    if span is None:
        raise CutError(f"no_frames_in_window: no video frames between {start} and {end} s")
    return span


def _copy_packets(inp, video_in, video_out, audio_in, audio_out, start, end, out) -> tuple[float, float] | None:
    """Copy video packets from the keyframe at or before `start` up to the first keyframe at or after `end`.

    Whole GOPs keep every frame decodable without re-encoding. Timestamps are shifted so the window start
    is 0: frames before it get negative times and the mp4 muxer writes an edit list, so an edit-list-aware
    player starts exactly at the window; the tail past `end` is recorded (file_end) so that consumers
    can stop at the window end (Gemini's videoMetadata.endOffset).
    """
    video_shift = int(start / video_in.time_base)
    audio_shift = int(start / audio_in.time_base) if audio_in is not None else 0
    first_pts = last_end = None
    video_done, audio_done = False, audio_in is None
    streams = [s for s in (video_in, audio_in) if s is not None]
    for packet in inp.demux(*streams):
        if packet.dts is None or packet.pts is None:
            continue  # demuxer flush packets carry no data
        if packet.stream is video_in and not video_done:
            if first_pts is None and not packet.is_keyframe:
                continue
            if packet.is_keyframe and packet.pts * video_in.time_base >= end:
                video_done = True
                continue
            first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
            packet_end = packet.pts + (packet.duration or 0)
            last_end = packet_end if last_end is None else max(last_end, packet_end)
            _shift_and_mux(packet, video_shift, video_out, out)
        elif packet.stream is audio_in and not audio_done:
            packet_start = packet.pts * audio_in.time_base
            if packet_start >= end:
                audio_done = True
                continue
            if packet_start + (packet.duration or 0) * audio_in.time_base <= start:
                continue
            _shift_and_mux(packet, audio_shift, audio_out, out)
        if video_done and audio_done:
            break
    if first_pts is None:
        return None
    return float(first_pts * video_in.time_base), float(last_end * video_in.time_base)


def _shift_and_mux(packet, shift: int, stream_out, out) -> None:
    packet.pts -= shift
    packet.dts -= shift
    packet.stream = stream_out
    out.mux(packet)
