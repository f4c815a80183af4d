"""A clip as N still images, for servers of image-only models (gemini.video_mode=frames on the openai backend).

The window is cut into N equal spans and each span's middle instant is shown as the frame a player presents there
(the last frame starting at or before it), encoded as JPEG. What decides the images (N, the sampling rule, the
encoding) is in FRAME_SAMPLING, which goes into the request key: a change of any of them asks again.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2

JPEG_QUALITY = 90
# Held in every frames-mode request key: changing the rule or the encoding changes the images the model sees.
FRAME_SAMPLING = {"sampling": "uniform_span_centres", "image": "jpeg", "jpeg_quality": JPEG_QUALITY}
_EDGE_S = 1e-6


class UnreadableClip(Exception):
    """The clip file cannot be decoded into frames."""


def sample_times(n: int, seconds: float) -> list[float]:
    """The middle instant of each of n equal spans of [0, seconds]."""
    return [(i + 0.5) * seconds / n for i in range(n)]


def _window_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    window_s: float | None) -> float:
    if window_s is not None and window_s > 0:
        return window_s
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / av.time_base


def sample_frames(path: Path, n: int, window_s: float | None = None) -> list[bytes]:
    """n JPEG images of the clip at `path`, sampled uniformly over its first `window_s` seconds as presented (an
    mp4 edit list's lead-in is not shown; None: the whole stream)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            targets = sample_times(n, _window_seconds(container, stream, window_s))
            chosen: list[av.VideoFrame] = []
            shown: av.VideoFrame | None = None
            for frame in container.decode(stream):
                if frame.time is None or frame.time < -_EDGE_S:  # the lead-in before the window: never shown
                    continue
                while len(chosen) < n and frame.time > targets[len(chosen)] + _EDGE_S:
                    chosen.append(shown if shown is not None else frame)  # the frame on screen at that instant
                if len(chosen) == n:
                    break
                shown = frame
            if shown is None:
                raise UnreadableClip(f"{path.name} holds no video frame")
            chosen += [shown] * (n - len(chosen))  # instants after the last frame: it stays on screen
            return [jpeg(frame) for frame in chosen]
    except (av.FFmpegError, IndexError, OSError) as err:
        raise UnreadableClip(f"{path.name}: {err}") from None


def jpeg(frame: av.VideoFrame) -> bytes:
    ok, data = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise UnreadableClip("a frame could not be encoded as JPEG")
    return data.tobytes()
