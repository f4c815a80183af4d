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

