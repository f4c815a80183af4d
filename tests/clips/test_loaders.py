"""Exact windows for every consumer: training loaders read exactly the window's frames from a clip of the default
cut, whatever the source's GOP and B-frames, whether the window starts on a keyframe or not.

Sources number every frame (tests/support/numbered_video.py), so each loader's frames say which source frames they
are: the reported count, every decoded frame, and LLaVA-NeXT's 32 uniform samples must all be the window's."""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest

from evud.clips.video import WindowJob, cut_windows, open_source
from evud.core.params import ClipParams
from evud.clips.prepare import cut_settings
from tests.support.fixtures import made_once
from tests.support.loaders import SAMPLES, decord_view, opencv_view, pyav_view
from tests.support.numbered_video import make_numbered_video

FPS = 30
SOURCES = {  # name -> (GOP in frames, B-frames)
    "gop2s-bframes": (2 * FPS, None),  # x264's own B-frames (3, pyramid)
    "gop2s-no-bframes": (2 * FPS, 0),
    "gop8s-bframes": (8 * FPS, None),  # x264's default keyint at 30 fps is ~8 s: canonical Ego4D-like
    "gop8s-no-bframes": (8 * FPS, 0),
}
WINDOWS = {  # name -> (start, end) in seconds
    "exact-off-keyframe": (3.37, 6.93),  # data.window_rounding=exact: neither end on a frame boundary
    "evud-across-a-keyframe": (7.0, 10.0),  # evud rounding (whole seconds), over the 8 s keyframe
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Path]:
    def draw(folder: Path) -> None:
        folder.mkdir()
        for name, (gop, bframes) in SOURCES.items():
            make_numbered_video(folder / f"{name}.mp4", 14, fps=FPS, gop=gop, bframes=bframes, with_audio=True)

    root = made_once(tmp_path_factory, worker_id, "loader-sources", draw)
    return {name: root / f"{name}.mp4" for name in SOURCES}


def window_frames(start: float, end: float) -> list[int]:
    """The source frames presented in [start, end): frame i is shown at i / FPS."""
    return list(range(math.ceil(start * FPS - 1e-6), math.ceil(end * FPS - 1e-6)))


def default_cut(source: Path, dest: Path, start: float, end: float) -> Path:
    settings = cut_settings(ClipParams())  # the default of conf/: what the dataset's clips are
    with open_source(str(source)) as raw:
        (result,) = cut_windows(raw, str(source), [WindowJob(dest, start, end)], settings)
    assert not isinstance(result, Exception), result
    return dest


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("source", SOURCES)
def test_every_loader_reads_exactly_the_windows_frames_from_a_default_clip(sources, source: str, window: str,
                                                                          tmp_path: Path):
    start, end = WINDOWS[window]
    clip = default_cut(sources[source], tmp_path / f"{source}-{window}.mp4", start, end)
    expected = window_frames(start, end)
    views = {"pyav": pyav_view(clip), "opencv": opencv_view(clip), "decord": decord_view(clip, tmp_path)}
    for loader, view in views.items():
        said = f"{loader} on {source}, window {start}-{end} s"
        assert view.reported == len(expected), f"{said}: reports {view.reported} frames, the window has {len(expected)}"
        assert view.decoded == expected, f"{said}: decoded {view.decoded[:3]}...{view.decoded[-3:]}"
        assert all(expected[0] <= n <= expected[-1] for n in view.sampled), f"{said}: samples {view.sampled}"
        assert len(view.sampled) == SAMPLES and all(b > a for a, b in zip(view.sampled, view.sampled[1:])), \
            f"{said}: duplicated or backward samples {view.sampled}"
    with av.open(str(clip)) as container:  # the header says the window's length, audio included
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert float(video.duration * video.time_base) == pytest.approx(len(expected) / FPS, abs=0.5 / FPS)
        assert float(audio.duration * audio.time_base) == pytest.approx(end - start, abs=1 / FPS)
