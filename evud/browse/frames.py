"""Drawing a strip: the frames at given times decoded with PyAV, scaled and laid side by side with OpenCV, encoded as
JPEG.

Only what a strip shows is decoded. The packets are read first (no decoding): their timestamps say which frame each
time shows (the first presented at or after it). The decoder then starts at the keyframe before a shown frame (jumping
over the stretches nothing shown depends on), skips every frame that is neither shown nor referenced by another
(x264's non-reference B-frames: about half of a clip's frames) and stops at the last shown one. The frames drawn are
those a full decode picks, pixel for pixel (tests/browse/test_strips.py); measured on EVUD-shaped clips in
bench/bench_strips.py."""

from __future__ import annotations

import bisect
from typing import Any

import cv2
import numpy as np

_EPSILON_S = 1e-6  # a frame this close before a time is at it (float times of rational timestamps)


class FrameError(Exception):
    """No frame to draw, or a strip OpenCV cannot encode."""


def _video_packets(container: Any, stream: Any) -> list[Any]:
    """The video packets in decode order, without the demuxer's empty flush packets."""
    return [packet for packet in container.demux(stream) if packet.pts is not None and packet.size]


def _seconds(pts: int, time_base: Any) -> float:
    return float(pts) * time_base.numerator / time_base.denominator  # as PyAV's frame.time computes it


def shown_pts(pts_sorted: list[int], time_base: Any, times: list[float]) -> list[int]:
    """For each time, the pts of the first frame presented at or after it; the last frame's past the end."""
    shown = []
    for target in times:
        index = bisect.bisect_left(pts_sorted, target - _EPSILON_S, key=lambda pts: _seconds(pts, time_base))
        shown.append(pts_sorted[min(index, len(pts_sorted) - 1)])
    return shown


def _gop_start(packets: list[Any], keyframes: list[int], index: int) -> int:
    """Where decoding must start for packets[index]: the keyframe before it, or the one before that when the frame is
    presented before that keyframe (an open GOP's leading frame references the GOP before)."""
    k = bisect.bisect_right(keyframes, index) - 1
    if k < 0:
        return 0
    if k > 0 and packets[index].pts < packets[keyframes[k]].pts:
        k -= 1
    return keyframes[k]


def decode_plan(packets: list[Any], wanted: set[int]) -> list[int]:
    """Indices of the packets to feed the decoder, in decode order: from the GOP start of each wanted frame (or on from
    the previous wanted one, when that is later) up to it; nothing after the last wanted frame."""
    keyframes = [i for i, packet in enumerate(packets) if packet.is_keyframe]
    feed: list[int] = []
    position = 0
    for index in (i for i, packet in enumerate(packets) if packet.pts in wanted):
        if index < position:
            continue
        feed += range(max(_gop_start(packets, keyframes, index), position), index + 1)
        position = index + 1
    return feed


def _keep_wanted(frames: list[Any], wanted: set[int], images: dict[int, np.ndarray]) -> None:
    for frame in frames:
        if frame.pts in wanted and frame.pts not in images:
            images[frame.pts] = frame.to_ndarray(format="bgr24")


def decode_wanted(stream: Any, packets: list[Any], wanted: set[int]) -> dict[int, np.ndarray]:
    """pts -> BGR image of each wanted frame, decoding only the wanted frames and what they reference."""
    context = stream.codec_context
    images: dict[int, np.ndarray] = {}
    previous = None
    try:
        for index in decode_plan(packets, wanted):
            if previous is not None and index != previous + 1:
                _keep_wanted(context.decode(None), wanted, images)  # a jump: what the decoder holds first
                context.flush_buffers()
            packet = packets[index]
            # Not shown: the decoder drops it when no other frame references it (referenced frames are decoded).
            context.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            _keep_wanted(context.decode(packet), wanted, images)
            previous = index
            if len(images) == len(wanted):
                return images
        _keep_wanted(context.decode(None), wanted, images)
    finally:
        context.skip_frame = "DEFAULT"
    return images


def pick_frames(container: Any, times: list[float]) -> list[np.ndarray]:
    """For each time (ascending), the first frame shown at or after it, as BGR; the last frame past the end."""
    stream = container.streams.video[0]
    packets = _video_packets(container, stream)
    if not packets:
        raise FrameError("no decodable video frame")
    shown = shown_pts(sorted(packet.pts for packet in packets), stream.time_base, times)
    images = decode_wanted(stream, packets, set(shown))
    missing = sorted(set(shown) - set(images))
    if missing:
        raise FrameError(f"the frames at pts {missing} did not decode")
    return [images[pts] for pts in shown]


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


