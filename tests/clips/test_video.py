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
