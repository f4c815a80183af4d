"""Benchmark: browse's frame strips on EVUD-shaped clips, the code before and after a change side by side in one run.

    python -m bench.bench_strips [--windows 240] [--clips 24] [--workers 2] [--before REV]

Clips as prepare makes them (exact cut, 384p, x264 superfast, ~9.5 s windows of a 540p/30 fps source with B-frames and
a keyframe every 2 s), each drawn into a strip (8 frames, 96 px, the browse defaults) `windows / clips` times, by a pool
of `workers` processes as the browse stage does. `before`: the git revision whose evud/browse/frames.py is measured
against this worktree's (default: the version before the last change to that file). Prints seconds per window (wall,
the pool; rounds alternate before and after, so a machine's changing load weighs on both alike), CPU seconds per strip
(the figure a busy machine disturbs least), and whether every strip is byte-identical between the two.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av

from bench.video_sources import make_source
from evud.browse.strips import StripSettings, sample_times
from evud.clips.video import CutSettings, WindowJob, cut_windows, open_source

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "strips"
FRAMES_PY = "evud/browse/frames.py"
WINDOW_S = 9.5  # EVUD's windows: ~9.5 s on average
ROUNDS = 4


def previous_revision() -> str:
    """The commit before the last one that changed frames.py (or the last one, when the worktree changes it)."""
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", FRAMES_PY], cwd=ROOT).returncode != 0
    revisions = subprocess.run(["git", "log", "-2", "--format=%H", "--", FRAMES_PY], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
    return revisions[0] if dirty else revisions[-1]


@functools.lru_cache(maxsize=None)
def load_frames(revision: str | None):
    """evud/browse/frames.py of a git revision (None: this worktree's) as a module."""
    if revision is None:
        from evud.browse import frames
        return frames
    source = subprocess.run(["git", "show", f"{revision}:{FRAMES_PY}"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    path = CACHE / f"frames_{revision[:12]}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"frames_{revision[:12]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_clips(count: int) -> list[Path]:
    """`count` exact clips of ~9.5 s cut by prepare's own cutter from a 540p source (made once, kept in the cache)."""
    seconds = count * 6 + WINDOW_S + 2
    source = make_source(CACHE / f"source-540p-{seconds:g}s.mp4", seconds, 960, 540)
    clips = [CACHE / f"clip-{n:03d}.mp4" for n in range(count)]
    jobs = [WindowJob(clip, 1.0 + 6.0 * n + 0.1, 1.0 + 6.0 * n + 0.1 + WINDOW_S) for n, clip in enumerate(clips)
            if not clip.exists()]
    if jobs:
        with open_source(str(source)) as raw:
            for result in cut_windows(raw, str(source), jobs, CutSettings(height=384)):
                if isinstance(result, Exception):
                    raise result
    return clips


def warm_up(revision: str | None) -> None:
    load_frames(revision)


def draw(revision: str | None, clip: str, duration: float) -> tuple[bytes, float]:
    """One strip as render_strip draws it, with the frames.py of `revision`; (JPEG bytes, CPU seconds)."""
    frames = load_frames(revision)
    settings = StripSettings()
    started = time.process_time()
    with av.open(clip) as container:
        images = frames.pick_frames(container, sample_times(duration, settings.frames))
    strip = frames.encode_jpeg(frames.compose_strip(images, settings.height), settings.jpeg_quality)
    return strip, time.process_time() - started


def measure(revision: str | None, clips: list[Path], windows: int, workers: int,
            duration: float) -> tuple[float, float, list[bytes]]:
    """(wall seconds per window, median CPU seconds per strip, the strips of the clips in order)."""
    order = [str(clips[n % len(clips)]) for n in range(windows)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(warm_up, [revision] * workers))  # import FFmpeg/OpenCV in every worker before the clock
        started = time.monotonic()
        results = list(pool.map(draw, [revision] * windows, order, [duration] * windows, chunksize=4))
        wall = time.monotonic() - started
    return wall / windows, statistics.median(cpu for _, cpu in results), [strip for strip, _ in results[:len(clips)]]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=240)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--before", default=None, help="git revision of the frames.py to compare against")
    parser.add_argument("--hd", action="store_true", help="bench_browse's clip instead: 20 s of 1280x720, 30 fps, "
                        "a keyframe every 2 s (one clip)")
    args = parser.parse_args()
    before = args.before or previous_revision()
    started = time.monotonic()
    if args.hd:
        from bench.bench_browse import HD_SECONDS, make_hd_clip

        clips, duration = [CACHE / "hd.mp4"], float(HD_SECONDS)
        if not clips[0].exists():
            make_hd_clip(clips[0], HD_SECONDS)
    else:
        clips, duration = make_clips(args.clips), WINDOW_S
    print(f"{len(clips)} clip(s) of {duration} s ready in {time.monotonic() - started:.1f} s; drawing "
          f"{args.windows} strips with {args.workers} worker(s), before = {before[:12]}, after = this worktree",
          flush=True)
    # Rounds alternate before/after: a load that comes and goes on a shared machine weighs on both alike.
    walls: dict[str, float] = {"before": 0.0, "after": 0.0}
    cpus: dict[str, list[float]] = {"before": [], "after": []}
    strips: dict[str, list[bytes]] = {}
    for round_ in range(ROUNDS):
        order = (("before", before), ("after", None)) if round_ % 2 == 0 else (("after", None), ("before", before))
        for name, revision in order:
            wall, cpu, drawn = measure(revision, clips, args.windows // ROUNDS, args.workers, duration)
            walls[name] += wall / ROUNDS
            cpus[name].append(cpu)
            strips.setdefault(name, drawn)
    rows = {name: (walls[name], statistics.median(cpus[name]), strips[name]) for name in walls}
    for name in ("before", "after"):
        print(f"{name:>7}: {rows[name][0]:.3f} s per window (wall, {args.workers} workers), "
              f"{rows[name][1]:.3f} CPU-s per strip", flush=True)
    same = sum(a == b for a, b in zip(rows["before"][2], rows["after"][2]))
    print(f"CPU per strip {rows['before'][1] / rows['after'][1]:.2f}x less, wall per window "
          f"{rows['before'][0] / rows['after'][0]:.2f}x less; strips byte-identical: {same} of {len(clips)}")
    if same != len(clips):
        sys.exit("bench_strips: some strips differ between before and after")


if __name__ == "__main__":
    main()
