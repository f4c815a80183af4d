"""Frame strips: the right frames, spread over the window, cached by clip content in the local store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import cv2
import fsspec
import numpy as np
import pytest

from evud.browse.frames import GAP_PX, pick_frames
from evud.browse.strips import (
    StripCache,
    StripError,
    StripJob,
    StripSettings,
    make_strips,
    render_strip,
    sample_times,
)
from evud.clips.video import cut_window
from tests.support.fixtures import made_once
from tests.support.numbered_video import SOURCE_SIZE, decode_number, make_numbered_video

FPS = 10


def numbers(images: list[np.ndarray]) -> list[int]:
    return [decode_number(av.VideoFrame.from_ndarray(image, format="bgr24")) for image in images]


def picked_numbers(path: Path, times: list[float]) -> list[int]:
    with av.open(str(path)) as container:
        return numbers(pick_frames(container, times))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


LENGTHS = {"short": 10, "long": 60, "other": 4}  # seconds


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Path]:
    def draw(folder: Path) -> None:
        folder.mkdir()
        for name, seconds in LENGTHS.items():
            make_numbered_video(folder / f"{name}.mp4", seconds=seconds, fps=FPS)

    root = made_once(tmp_path_factory, worker_id, "strip-videos", draw)
    return {name: root / f"{name}.mp4" for name in LENGTHS}


def test_sample_times_are_the_centres_of_equal_slices():
    assert sample_times(8.0, 4) == [1.0, 3.0, 5.0, 7.0]
    assert sample_times(1.0, 1) == [0.5]


def test_frames_are_picked_at_their_times_decoding_on_or_seeking(videos):
    assert picked_numbers(videos["short"], sample_times(10.0, 5)) == [10, 30, 50, 70, 90]
    # 20 s apart: each frame is reached by a seek, not by decoding the whole minute.
    assert picked_numbers(videos["long"], [5.0, 25.0, 45.0]) == [50, 250, 450]
    # Past the last frame: the last frame, rather than nothing.
    assert picked_numbers(videos["short"], [9.95, 30.0]) == [99, 99]


def test_a_stream_copied_clip_shows_its_window_not_the_gop_before_it(videos, tmp_path: Path):
    clip = tmp_path / "clip.mp4"
    cut_window(str(videos["short"]), clip, 5.0, 9.0)  # keyframes every 2 s: the file starts at 4 s (edit list)
    assert picked_numbers(clip, sample_times(4.0, 4)) == [55, 65, 75, 85]


def test_a_strip_is_one_jpeg_of_the_frames_side_by_side(videos):
    settings = StripSettings(frames=5, height=48, jpeg_quality=80)
    image = cv2.imdecode(np.frombuffer(render_strip(str(videos["short"]), 10.0, settings), np.uint8),
                         cv2.IMREAD_COLOR)
    frame_width = round(SOURCE_SIZE[0] * 48 / SOURCE_SIZE[1])
    assert image.shape == (48, 5 * frame_width + 4 * GAP_PX, 3)
    assert render_strip(str(videos["short"]), 10.0, settings) == render_strip(str(videos["short"]), 10.0, settings)


def test_the_cache_makes_only_missing_strips_and_leaves_no_partial_file(videos, tmp_path: Path):
    cache, settings = StripCache(tmp_path / "strips"), StripSettings(frames=4, height=32)
    jobs = [StripJob(key=name, sha256=sha256_of(videos[name]), source=str(videos[name]), duration=4.0)
            for name in ("short", "long")]
    first = make_strips(jobs, cache, settings)
    assert (first.made, first.reused, first.failed) == (2, 0, {})
    sha = jobs[0].sha256
    assert cache.path(sha, settings) == tmp_path / "strips" / sha[:2] / f"{sha}-4f-32h-q75.jpg"
    added = StripJob(key="other", sha256=sha256_of(videos["other"]), source=str(videos["other"]), duration=4.0)
    second = make_strips(jobs + [added], cache, settings, workers=2)
    assert (second.made, second.reused) == (1, 2)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "strips").rglob("*") if p.is_file()) == \
        sorted(j.sha256 for j in jobs + [added])
    # Other strip settings are other strips: a param change never serves a stale strip.
    assert make_strips(jobs, cache, StripSettings(frames=2, height=32)).made == 2


def test_a_clip_kept_only_in_the_cloud_is_read_from_its_uri(videos, tmp_path: Path):
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/clip.mp4", videos["other"].read_bytes())
    job = StripJob(key="v-c-a-0", sha256=sha256_of(videos["other"]), source="memory://bucket/clip.mp4", duration=4.0)
    cache = StripCache(tmp_path / "strips")
    assert make_strips([job], cache, StripSettings()).made == 1
    assert cache.has(job.sha256, StripSettings())


def test_an_unreadable_clip_is_reported_with_its_key_and_others_go_on(videos, tmp_path: Path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    jobs = [StripJob(key="v-c-a-7", sha256="ab" * 32, source=str(broken), duration=2.0),
            StripJob(key="v-c-a-8", sha256=sha256_of(videos["other"]), source=str(videos["other"]), duration=4.0)]
    report = make_strips(jobs, StripCache(tmp_path / "strips"), StripSettings())
    assert report.made == 1 and list(report.failed) == ["ab" * 32]
    assert "v-c-a-7" in report.failed["ab" * 32] and "broken.mp4" in report.failed["ab" * 32]


def test_a_hash_that_is_not_a_sha256_never_becomes_a_path(tmp_path: Path):
    cache = StripCache(tmp_path / "strips")
    for bad in ("../../etc/passwd", "A" * 64, "ab" * 31, ""):
        with pytest.raises(StripError, match="not 64 lowercase hex"):
            cache.path(bad, StripSettings())
    assert not (tmp_path / "strips").exists()


def every_frame_picked(path: Path, times: list[float]) -> list[np.ndarray]:
    """What a strip must show, by definition: every frame decoded, for each time the first shown at or after it
    (the last frame past the end)."""
    with av.open(str(path)) as container:
        frames = [(frame.time, frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)
                  if frame.time is not None]
    return [next((image for time, image in frames if time >= target - 1e-6), frames[-1][1]) for target in times]


@pytest.fixture(scope="module")
def cut_clips(videos, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    """Clips as prepare makes them: exact (x264 with B-frames, one keyframe) and copy (an edit list), and a long one."""
    from evud.clips.video import CutSettings, WindowJob, cut_windows, open_source

    folder = tmp_path_factory.mktemp("cut-clips")
    jobs = {"exact": WindowJob(folder / "exact.mp4", 12.3, 21.8),
            "exact-short": WindowJob(folder / "short.mp4", 3.0, 4.2)}
    with open_source(str(videos["long"])) as source:
        for result in cut_windows(source, str(videos["long"]), list(jobs.values()), CutSettings(height=72)):
            assert not isinstance(result, Exception), result
    cut_window(str(videos["long"]), folder / "copy.mp4", 33.3, 41.0)
    return {"exact": (folder / "exact.mp4", 9.5), "exact-short": (folder / "short.mp4", 1.2),
            "copy": (folder / "copy.mp4", 7.7), "long": (videos["long"], 60.0)}


@pytest.mark.parametrize("clip", ["exact", "exact-short", "copy", "long"])
@pytest.mark.parametrize("frames", [1, 8, 13, 64])
def test_a_strip_shows_exactly_the_frames_a_full_decode_picks_pixel_for_pixel(cut_clips, clip: str, frames: int):
    path, duration = cut_clips[clip]
    times = sample_times(duration, frames)
    with av.open(str(path)) as container:
        picked = pick_frames(container, times)
    expected = every_frame_picked(path, times)
    assert len(picked) == len(expected)
    for n, (image, wanted) in enumerate(zip(picked, expected)):
        assert np.array_equal(image, wanted), f"frame {n} of {clip} at {times[n]:.3f} s differs"


def test_times_past_the_end_show_the_last_frame_pixel_for_pixel(cut_clips):
    path, duration = cut_clips["exact"]
    times = [duration - 0.01, duration + 1.0, duration + 5.0]
    with av.open(str(path)) as container:
        picked = pick_frames(container, times)
    assert all(np.array_equal(a, b) for a, b in zip(picked, every_frame_picked(path, times)))
