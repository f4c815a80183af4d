"""Drawing a strip: the frames at given times decoded with PyAV (seeking for far ones, so a long clip costs a few
GOPs, not every frame), scaled and laid side by side with OpenCV, encoded as JPEG."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

# Targets closer than this to the last decoded frame are reached by decoding on; farther ones by a seek
# (a seek lands on the keyframe before the target, so it only pays off past a GOP or so).
SEEK_GAP_S = 3.0


class FrameError(Exception):
    """No frame to draw, or a strip OpenCV cannot encode."""


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
            raise FrameError("no decodable video frame")
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
        raise FrameError("OpenCV could not encode the strip as JPEG")
    return buffer.tobytes()


