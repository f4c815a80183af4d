"""Benchmark: exact cutting from 1080p, 720p and 540p sources, with the decode-only floor beside it, in one run.

    python -m bench.bench_resolutions [--windows 8] [--seconds 90]

The same windows (4-10 s, seeded) of three sources that differ only in size and bit rate (30 fps H.264 as x264
veryfast makes it: CABAC, deblocking, B-frames; a keyframe every 2 s, the same moving texture; bench/video_sources.py),
cut by prepare's own cutter to 384p clips (clip.mode=exact, superfast, crf 23: evud.clips.video.cut_windows), against the decode-only floor: the same seek to the keyframe before
each window and the same decode up to its end (non-reference frames before the window skipped, as the cutter does),
with no scaling and no encoding. Figures: CPU seconds (all threads of this process) per second of clip. Ego4D
publishes video_540ss (short side 540) beside full_scale: this is why cutting from it pays (evud.clips.ego4d_videos).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import av

from bench.video_sources import make_source
from evud.clips.video import CutSettings, WindowJob, cut_windows, open_source

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "resolutions"
# Bit rates of Ego4D's files: full_scale ~7 TB and video_540ss ~4 TB over ~3,670 h average ~4.2 and ~2.4 Mbps.
SIZES = {"1080p": (1920, 1080, 6_000_000), "720p": (1280, 720, 3_500_000), "540p": (960, 540, 2_400_000)}


def pick_windows(seconds: float, count: int) -> list[tuple[float, float]]:
    """`count` windows of 4-10 s spread over the source, seeded: the same windows for every size."""
    rng = random.Random(8)
    span = (seconds - 1) / count
    windows = []
    for n in range(count):
        length = rng.uniform(4, 10)
        start = n * span + rng.uniform(0.2, max(span - length, 0.3))
        windows.append((round(start, 2), round(start + length, 2)))
    return windows


def exact_cpu(source: Path, windows: list[tuple[float, float]], out: Path) -> float:
    """CPU seconds to cut the windows as prepare does (one open source, clips written)."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [WindowJob(out / f"{n}.mp4", start, end) for n, (start, end) in enumerate(windows)]
    started = time.process_time()
    with open_source(str(source)) as raw:
        for result in cut_windows(raw, str(source), jobs, CutSettings(height=384)):
            if isinstance(result, Exception):
                raise result
    return time.process_time() - started


def decode_floor_cpu(source: Path, windows: list[tuple[float, float]]) -> float:
    """CPU seconds to decode what the cut must decode: from the keyframe before each window to its end."""
    started = time.process_time()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        for start, end in windows:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
            first, last = int(start / stream.time_base), int(end / stream.time_base)
            for packet in container.demux(stream):
                if packet.pts is not None and packet.pts >= last:
                    break
                before = packet.pts is not None and packet.pts + (packet.duration or 0) <= first
                context.skip_frame = "NONREF" if before else "DEFAULT"
                packet.decode()
            context.skip_frame = "DEFAULT"
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    windows = pick_windows(args.seconds, args.windows)
    clip_seconds = sum(end - start for start, end in windows)
    started = time.monotonic()
    sources = {name: make_source(CACHE / f"{name}-{args.seconds:g}s-veryfast.mp4", args.seconds, width, height,
                                 bit_rate=bit_rate, preset="veryfast")
               for name, (width, height, bit_rate) in SIZES.items()}
    print(f"sources ready in {time.monotonic() - started:.0f} s; {len(windows)} windows, {clip_seconds:.1f} s of clips "
          f"(4-10 s each), cut to 384p", flush=True)
    print(f"{'source':>7} {'Mbps':>6} {'exact CPU-s/clip-s':>19} {'decode floor':>13} {'floor share':>12}")
    for name, source in sources.items():
        with av.open(str(source)) as container:
            mbps = container.bit_rate / 1e6
        exact = exact_cpu(source, windows, CACHE / f"clips-{name}") / clip_seconds
        floor = decode_floor_cpu(source, windows) / clip_seconds
        print(f"{name:>7} {mbps:>6.1f} {exact:>19.3f} {floor:>13.3f} {floor / exact:>11.0%}", flush=True)


if __name__ == "__main__":
    main()
