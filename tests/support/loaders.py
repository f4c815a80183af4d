"""How video training loaders read a clip, with their own libraries: which frames they count, decode and sample.

Each returns the frame numbers a numbered test video shows (tests/support/numbered_video.py), so a test can say
exactly which source frames a loader got. decord runs in a child process with a timeout: on a stream-copied clip
with an edit list it has hung forever (FIELD_NOTES)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from tests.support.numbered_video import decode_number

SAMPLES = 32  # LLaVA-NeXT's np.linspace(0, len(vr) - 1, 32)


@dataclass(frozen=True)
class LoaderView:
    """What one loader reports and returns for a clip."""

    reported: int  # the frame count it reports before decoding (decord len, CAP_PROP_FRAME_COUNT, stream.frames)
    decoded: list[int]  # every frame, in order, by its number
    sampled: list[int]  # 32 frames at uniform indices over the reported count


def number_of(image_bgr: np.ndarray) -> int:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr[:, :, ::-1]), format="rgb24")
    return decode_number(frame)


def uniform_indices(count: int) -> list[int]:
    return [int(i) for i in np.linspace(0, count - 1, SAMPLES).astype(int)]


def pyav_view(path: Path) -> LoaderView:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [decode_number(frame) for frame in container.decode(stream)]
        reported = stream.frames
    indices = uniform_indices(len(decoded))
    return LoaderView(reported, decoded, [decoded[i] for i in indices])


def opencv_view(path: Path) -> LoaderView:
    """The read loop, and seeks by frame index (CAP_PROP_POS_FRAMES) as index-sampling loaders do."""
    capture = cv2.VideoCapture(str(path))
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(number_of(image))
    sampled = []
    for index in uniform_indices(reported):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = capture.read()
        sampled.append(number_of(image) if ok else -1)  # -1: a seek the loader could not serve
    capture.release()
    return LoaderView(reported, decoded, sampled)


_DECORD = """
import json, sys
import decord
import numpy as np
vr = decord.VideoReader(sys.argv[1])
count = len(vr)
every = vr.get_batch(list(range(count))).asnumpy()
indices = np.linspace(0, count - 1, 32).astype(int).tolist()
sampled = vr.get_batch(indices).asnumpy()
np.save(sys.argv[2], every)
np.save(sys.argv[3], sampled)
print(json.dumps({"count": count}))
"""


def decord_view(path: Path, work: Path, timeout: float = 60) -> LoaderView:
    """decord as LLaVA-NeXT and qwen-vl-utils call it (VideoReader, len, get_batch), in a child process."""
    every, sampled = work / f"{path.stem}-every.npy", work / f"{path.stem}-sampled.npy"
    result = subprocess.run([sys.executable, "-c", _DECORD, str(path), str(every), str(sampled)], capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"decord could not read {path}: {result.stderr[-2000:]}")
    count = json.loads(result.stdout.strip().splitlines()[-1])["count"]
    return LoaderView(count, [number_of(image[:, :, ::-1]) for image in np.load(every)],
                      [number_of(image[:, :, ::-1]) for image in np.load(sampled)])
