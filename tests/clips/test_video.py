"""Cutting windows with PyAV: exact presentation window, recorded physical span, clear errors."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from evud.clips.video import CutError, CutSettings, WindowJob, cut_window, cut_windows, open_source
from tests.support.repo import PROJECT_ROOT

WITH_AUDIO = PROJECT_ROOT / "data/sample/videos/3c0dffd0-e38e-4643-bc48-d513943dc20b.mp4"
VIDEO_ONLY = PROJECT_ROOT / "data/sample/videos/9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102.mp4"


def presented_frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


@pytest.mark.parametrize("source", [WITH_AUDIO, VIDEO_ONLY])
def test_copy_cut_presents_the_window_from_zero_and_records_the_padding(source: Path, tmp_path: Path):
    clip = tmp_path / "clip.mp4"
    result = cut_window(str(source), clip, 5.0, 13.0)
    assert result.file_start == pytest.approx(4.0)  # keyframes every 2 s: the GOP before the window
    assert result.file_end >= 13.0
    times = presented_frame_times(clip)
    assert times[0] == pytest.approx(0.0)  # the edit list hides the frames before the window
    assert times[int(8.0 * 10) - 1] == pytest.approx(7.9)  # 10 fps: the window's frames are all there


def test_audio_is_kept_unless_asked_not_to(tmp_path: Path):
    cut_window(str(WITH_AUDIO), tmp_path / "a.mp4", 5.0, 9.0, keep_audio=True)
    cut_window(str(WITH_AUDIO), tmp_path / "b.mp4", 5.0, 9.0, keep_audio=False)
    with av.open(str(tmp_path / "a.mp4")) as a, av.open(str(tmp_path / "b.mp4")) as b:
        assert len(a.streams.audio) == 1 and len(b.streams.audio) == 0


@pytest.mark.parametrize("mode", ["copy", "exact"])
def test_same_cut_gives_the_same_bytes(tmp_path: Path, mode: str):
    settings = CutSettings(mode=mode, height=120)
    digests = []
    for name in ("a", "b"):
        with open_source(str(WITH_AUDIO)) as source:
            (result,) = cut_windows(source, str(WITH_AUDIO), [WindowJob(tmp_path / f"{name}.mp4", 20.0, 28.0)], settings)
        digests.append(result.sha256)
    assert digests[0] == digests[1]


def test_missing_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CutError, match="source_missing"):
        cut_window(str(tmp_path / "nope.mp4"), tmp_path / "c.mp4", 0.0, 1.0)
    assert not (tmp_path / "c.mp4").exists()


def test_corrupt_source_is_a_clear_error_and_leaves_no_partial_clip(tmp_path: Path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(CutError, match="unreadable_video"):
        cut_window(str(corrupt), tmp_path / "c.mp4", 0.0, 1.0)
    assert list(tmp_path.iterdir()) == [corrupt]


def test_truncated_source_fails_or_cuts_only_what_exists(tmp_path: Path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(WITH_AUDIO.read_bytes()[: WITH_AUDIO.stat().st_size // 3])
    with pytest.raises(CutError):
        cut_window(str(truncated), tmp_path / "c.mp4", 30.0, 38.0)


def _cut(source: Path, dest: Path, start: float, end: float, settings: CutSettings):
    with open_source(str(source)) as opened:
        (result,) = cut_windows(opened, str(source), [WindowJob(dest, start, end)], settings)
    return result


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_an_exact_clip_of_a_rotated_source_is_upright_for_every_loader(tmp_path: Path, rotation: int):
    """A phone's portrait video stores landscape pixels and a display matrix: the exact cut turns the pixels, so
    PyAV (which ignores the matrix) and OpenCV (which applies it) both see the picture upright, marker top-left."""
    import cv2

    from tests.support.numbered_video import make_rotated_video, marker_corner

    source = tmp_path / "phone.mp4"
    make_rotated_video(source, rotation)
    clips = [tmp_path / "first.mp4", tmp_path / "second.mp4"]  # two windows of one open source: both upright
    with open_source(str(source)) as opened:
        results = list(cut_windows(opened, str(source), [WindowJob(clips[0], 1.0, 2.0), WindowJob(clips[1], 2.5, 3.5)],
                                   CutSettings(mode="exact", height=128)))
    assert not any(isinstance(result, CutError) for result in results), results
    portrait = rotation in (90, -90)
    for clip_file in clips:
        with av.open(str(clip_file)) as clip:
            frame = next(clip.decode(video=0))
            assert frame.rotation == 0  # no matrix left to apply twice
            assert (frame.width < frame.height) == portrait and frame.height == 128
            assert marker_corner(frame.to_ndarray(format="rgb24")) == "top-left"
        capture = cv2.VideoCapture(str(clip_file))
        ok, image = capture.read()
        capture.release()
        assert ok and (image.shape[1] < image.shape[0]) == portrait and marker_corner(image) == "top-left"


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_copied_clip_of_a_rotated_source_carries_its_display_matrix(tmp_path: Path, rotation: int):
    import cv2

    from tests.support.numbered_video import make_rotated_video, marker_corner

    source = tmp_path / "phone.mp4"
    make_rotated_video(source, rotation)
    result = _cut(source, tmp_path / "clip.mp4", 1.0, 3.0, CutSettings(mode="copy"))
    assert not isinstance(result, CutError), result
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        assert next(clip.decode(video=0)).rotation % 360 == rotation % 360  # 180 reads back as -180
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    ok, image = capture.read()
    capture.release()
    assert ok and marker_corner(image) == "top-left"


# A variable-frame-rate source: 30 fps, but the frame at 6.9 s holds until 7.2 s, then 10 fps (18 frames from 7.2 to
# 8.9 s), and the frame at 8.9 s holds until 9.6 s: every instant of [7, 9] shows a frame.
VFR_TIMES = ([i / 30 for i in range(207)] + [6.9] + [round(7.2 + i / 10, 3) for i in range(18)]
             + [round(9.6 + i / 30, 4) for i in range(60)])


@pytest.mark.parametrize("mode", ["exact", "copy"])
def test_a_window_of_a_variable_frame_rate_source_with_holds_is_a_clip(tmp_path: Path, mode: str):
    from tests.support.numbered_video import make_vfr_numbered_video, presented_frame_numbers

    source = tmp_path / "vfr.mp4"
    make_vfr_numbered_video(source, VFR_TIMES)
    result = _cut(source, tmp_path / "clip.mp4", 7.0, 9.0, CutSettings(mode=mode, height=144))
    assert not isinstance(result, CutError), result
    held, in_window = 207, list(range(208, 226))  # the frame on screen at 7.0 s, then the 18 frames inside
    shown = presented_frame_numbers(tmp_path / "clip.mp4", until=2.0)
    if mode == "exact":  # the file holds the window: the held frame first, at 0
        assert shown == [held, *in_window]
    else:  # a player shows every frame of the window (the edit list hides the lead-in)
        assert [n for n in shown if n >= held + 1] == in_window
    assert result.file_start <= 7.0 and result.file_end >= 9.0
