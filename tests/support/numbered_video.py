"""Test videos whose every frame shows its own number, so a decoded clip says exactly which frames it holds."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS, CELL = 12, 16  # 12 black/white cells of 16x16 px across the top: frame numbers up to 4095
SOURCE_SIZE = (256, 144)  # every numbered video is made at this size; decode_number scales from it


def numbered_frame(index: int, width: int, height: int, noise: bool = False) -> np.ndarray:
    frame = np.full((height, width, 3), 128, dtype=np.uint8)
    if noise:  # incompressible content: a realistic bitrate, so byte counts of ranged reads mean something
        frame[CELL * 2 :, :] = np.random.default_rng(index).integers(0, 255, (height - CELL * 2, width, 3), dtype=np.uint8)
    else:
        frame[CELL * 2 :, :] = (index * 7) % 255
    for bit in range(BITS):
        frame[:CELL, bit * CELL : (bit + 1) * CELL] = 255 if (index >> bit) & 1 else 0
    return frame


def make_numbered_video(path: Path, seconds: int, fps: int = 10, gop: int = 20, with_audio: bool = False,
                        crf: int = 18, noise: bool = False, first_number: int = 0, faststart: bool = False,
                        bframes: int | None = None) -> None:
    """An H.264 mp4 (keyframe every `gop` frames) whose frame i shows the number first_number + i.

    `faststart` puts the header first, as streaming servers do: a file cut short then still opens. `bframes`: how
    many B-frames x264 may put between references (None: the preset's own, 3; 0: none).
    """
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        video = out.add_stream("libx264", rate=fps)
        width, height = SOURCE_SIZE
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf), "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                         "preset": "veryfast", **({"bf": str(bframes)} if bframes is not None else {})}
        audio = out.add_stream("aac", rate=16000, layout="mono") if with_audio else None
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(numbered_frame(first_number + i, width, height, noise), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
            if audio is not None and i % fps == 0:
                samples = np.zeros((1, 16000), dtype=np.float32)
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 16000, (i // fps) * 16000, Fraction(1, 16000)
                out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        if audio is not None:
            out.mux(audio.encode(None))


def presented_frame_numbers(path: Path, until: float | None = None) -> list[int]:
    """The numbers of the frames a player presents (edit list applied), optionally only before `until` s."""
    numbers = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if until is not None and frame.time >= until - 1e-6:
                break
            numbers.append(decode_number(frame))
    return numbers


def decode_number(frame: av.VideoFrame) -> int:
    """Read the cells back, wherever the frame was scaled to."""
    gray = frame.to_ndarray(format="gray").astype(int)
    height, width = gray.shape
    # Cells were drawn on the source's pixel grid; a scaled frame keeps their positions in proportion.
    sx = width / SOURCE_SIZE[0]
    sy = height / SOURCE_SIZE[1]
    y = int(CELL / 2 * sy)
    return sum(1 << bit for bit in range(BITS) if gray[y, int((bit * CELL + CELL / 2) * sx)] > 128)



def make_vfr_numbered_video(path: Path, times: list[float], rate: int = 30) -> None:
    """An H.264 mp4 whose frame i shows the number i at times[i] seconds (timestamps in ms, B-frames): a
    variable-frame-rate source, as phones and screen recorders write them, with holds wherever the gaps are long."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        width, height = SOURCE_SIZE
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"g": "20", "keyint_min": "20", "sc_threshold": "0", "preset": "veryfast"}
        for i, seconds in enumerate(times):
            frame = av.VideoFrame.from_ndarray(numbered_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = round(seconds * 1000), Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


# A picture whose orientation a reader can check: grey, with a white square in its top-left corner when upright.
MARKER = 24


def upright_picture(width: int, height: int) -> np.ndarray:
    picture = np.full((height, width, 3), 96, dtype=np.uint8)
    picture[:MARKER, :MARKER] = 255
    return picture


def make_rotated_video(path: Path, rotation: int, seconds: int = 4, fps: int = 10) -> None:
    """A video recorded 'sideways', as phones record portrait: its stored pixels are the upright picture turned by
    -rotation, and its display matrix says to turn them by `rotation` degrees counterclockwise (PyAV's
    VideoFrame.rotation) to show it. Upright it is portrait for +-90 (144x256), landscape for 180 (256x144)."""
    turns = (rotation // 90) % 4
    upright = upright_picture(*(SOURCE_SIZE[::-1] if turns % 2 else SOURCE_SIZE))
    stored = np.ascontiguousarray(np.rot90(upright, k=-turns))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
        video.set_display_rotation(rotation)
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


def marker_corner(picture: np.ndarray) -> str:
    """Which corner of a picture (height x width [x channels]) holds the white marker: top-left when it is upright."""
    gray = picture if picture.ndim == 2 else picture.mean(axis=2)
    height, width = gray.shape[:2]
    size = max(MARKER * min(height, width) // min(SOURCE_SIZE) // 2, 2)  # the marker's half, wherever it was scaled to
    corners = {"top-left": gray[:size, :size], "top-right": gray[:size, -size:],
               "bottom-left": gray[-size:, :size], "bottom-right": gray[-size:, -size:]}
    return max(corners, key=lambda name: corners[name].mean())
