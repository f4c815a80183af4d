"""Synthetic camera-like sources for the video benchmarks: H.264 with B-frames, a keyframe every `gop_s` seconds,
moving texture (so bit rates and decode costs are those of real footage, not of flat colour)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_source(path: Path, seconds: float, width: int, height: int, fps: int = 30, gop_s: float = 2.0,
                bit_rate: int | None = None, preset: str = "ultrafast") -> Path:
    """An mp4 of `seconds` at width x height (made once: kept while the file exists). `preset` decides what decoding
    it costs: ultrafast has no CABAC and no deblocking (cheap to decode); veryfast is what cameras' encoders do."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    texture = np.random.default_rng(0).integers(0, 255, (height // 8, width // 4, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)  # blocks: detail a camera sees, not pure noise
    partial = path.with_suffix(".part.mp4")
    gop = str(int(gop_s * fps))
    with av.open(str(partial), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = bit_rate or int(width * height * fps * 0.1)  # ~0.1 bit per pixel: 6 Mbps at 1080p
        video.options = {"preset": preset, "g": gop, "keyint_min": gop, "sc_threshold": "0", "bf": "3"}
        for i in range(int(seconds * fps)):
            shift = (i * 5) % width
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:height, shift:shift + width]),
                                               format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    partial.rename(path)
    return path
