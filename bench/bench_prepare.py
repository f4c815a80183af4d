"""Benchmark: cutting NLQ windows out of long 720p videos held in S3 (a local moto server), one source per GOP length.

    python -m bench.bench_prepare [--minutes 2] [--windows 12] [--gops 1,2,8]

Side by side, in one run, each approach in its own process (so peak RSS is its own), on sources with a keyframe every
1, 2 and 8 s (x264's default keyint at 30 fps is ~8 s) and B-frames:
  naive     the published way: download the whole object, then decode and re-encode each window (libx264)
  copy      ours, clip.mode=copy (players only): ranged reads, remux without decoding
  exact     ours, the default: the window's frames re-encoded at 384p (superfast), lead-in B-frames skipped
  reencode  ours, clip.mode=exact at the former reencode settings: 540p, preset medium
  smartcut  the work a smart cut cannot avoid (decode from the keyframe, re-encode at full size with ultrafast the
            spans before the first and after the last keyframe inside the window); a measured lower bound, no file
Figures: wall time, CPU seconds per second of clip, bytes fetched from S3 / bytes of the windows in the source, peak
memory of the process tree (PSS: shared pages counted once). Targets: exact <= 5x the CPU of copy, fetched <= 1.3x the
windows, peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import boto3
import numpy as np
import psutil

from tests.support.cloud import moto_s3  # the same local S3 stand-in the tests use

ROOT = Path(__file__).resolve().parents[1]

BUCKET, KEY = "ego4d-bench", "full_scale/0b1e2c3d-0000-4000-8000-00000000beef.mp4"
VIDEO_UID = "0b1e2c3d-0000-4000-8000-00000000beef"
CACHE = ROOT / "bench" / ".cache"


def make_source(path: Path, minutes: float, gop_s: float = 1.0) -> None:
    """A 720p/30 H.264 video at ~4 Mbps, a keyframe every gop_s seconds, B-frames, moving texture and AAC audio."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fps, width, height = 30, 1280, 720
    texture = np.random.default_rng(0).integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 4_000_000
        video.options = {"preset": "ultrafast", "g": str(int(gop_s * fps)), "keyint_min": str(int(gop_s * fps)),
                         "sc_threshold": "0", "bf": "3"}
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(int(minutes * 60 * fps)):
            shift = (i * 7) % width
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, shift:shift + width]), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
            if i % fps == 0:
                tone = np.zeros((2, 48000), dtype=np.float32)
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, (i // fps) * 48000, Fraction(1, 48000)
                out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    partial.rename(path)


def pick_windows(duration: float, count: int) -> list[tuple[float, float]]:
    """NLQ-like windows: 4 to 20 s, spread over the video, seeded."""
    rng = random.Random(7)
    windows = []
    for i in range(count):
        length = rng.uniform(4, 20)
        start = rng.uniform(i * duration / count, (i + 1) * duration / count - length)
        windows.append((round(max(start, 0.0), 2), round(max(start, 0.0) + length, 2)))
    return windows


def window_bytes(path: Path, windows: list[tuple[float, float]]) -> int:
    """Bytes of the source's packets whose timestamps fall in each window, summed over the windows (two
    overlapping windows each need their common part): what cutting them truly needs."""
    total = 0
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None:
                continue
            t = float(packet.pts * packet.stream.time_base)
            total += packet.size * sum(start <= t < end for start, end in windows)
    return total


def naive_cut(endpoint: str, windows: list[tuple[float, float]], out_dir: Path) -> None:
    """The published way: fetch the whole object, then decode and re-encode each window at full size."""
    local = out_dir / "full.mp4"
    boto3.client("s3", endpoint_url=endpoint).download_file(BUCKET, KEY, str(local))
    for n, (start, end) in enumerate(windows):
        with av.open(str(local)) as inp, av.open(str(out_dir / f"{n}.mp4"), "w") as out:
            vin, ain = inp.streams.video[0], inp.streams.audio[0]
            vout = out.add_stream("libx264", rate=vin.average_rate)
            vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
            aout = out.add_stream("aac", rate=ain.codec_context.sample_rate, layout="stereo")
            inp.seek(int(start / vin.time_base), stream=vin, backward=True)
            for frame in inp.decode(vin, ain):
                if frame.time is None or frame.time < start:
                    continue
                if frame.time >= end:
                    break
                if isinstance(frame, av.VideoFrame):
                    frame.pts, frame.time_base = round((frame.time - start) / vin.time_base), vin.time_base
                    out.mux(vout.encode(frame))
                else:
                    frame.pts = round((frame.time - start) * frame.sample_rate)
                    frame.time_base = Fraction(1, frame.sample_rate)
                    out.mux(aout.encode(frame))
            out.mux(vout.encode(None))
            out.mux(aout.encode(None))


def ours_cut(endpoint: str, windows: list[tuple[float, float]], out_dir: Path, mode: str) -> None:
    from evud.clips import prepare
    from evud.core.params import ClipParams, DataParams, GcsParams

    meta = out_dir / "meta"
    meta.mkdir()
    (meta / "ego4d.json").write_text(json.dumps({"videos": [
        {"video_uid": VIDEO_UID, "duration_sec": 1e6, "s3_path": f"s3://{BUCKET}/{KEY}"}]}))
    queries = [{"video_start_sec": s, "video_end_sec": e, "query": "q"} for s, e in windows]
    (meta / "nlq_train.json").write_text(json.dumps({"videos": [{"video_uid": VIDEO_UID, "clips": [
        {"clip_uid": "c", "annotations": [{"annotation_uid": "a", "language_queries": queries}]}]}]}))
    data = DataParams(root=str(meta), ego4d_json=str(meta / "ego4d.json"),
                      nlq_json=str(meta / "nlq_train.json"), window_rounding="exact", s3_endpoint_url=endpoint)
    # A clip store of its own: every measured run cuts every window (none is reused from an earlier run).
    os.environ["EVUD_STORE"] = str(out_dir / "store")
    clip = {"copy": ClipParams(mode="copy"), "exact": ClipParams(),
            "reencode": ClipParams(mode="exact", height=540, preset="medium")}[mode]
    prepare.run(data, clip, GcsParams(), out_dir / "clips", out_dir / "clips.jsonl", out_dir / "metrics.json",
                int(os.environ.get("EVUD_WORKERS", "2")))


def smartcut_work(endpoint: str, windows: list[tuple[float, float]], out_dir: Path) -> None:
    """What a smart cut must re-encode, at the source's size (to join stream-copied GOPs): from the window start to
    the first keyframe inside it, and from the last keyframe inside it to its end (all of it without one)."""
    from evud.clips.video import open_source

    url = f"s3://{BUCKET}/{KEY}"
    with open_source(url, {"endpoint_url": endpoint}) as raw, av.open(raw) as inp:
        video = inp.streams.video[0]
        keyframes = [float(p.pts * video.time_base) for p in inp.demux(video) if p.is_keyframe and p.pts is not None]
        for n, (start, end) in enumerate(windows):
            inside = [k for k in keyframes if start < k < end]
            spans = [(start, end)] if not inside else [(start, inside[0]), (inside[-1], end)]
            with av.open(str(out_dir / f"{n}.mp4"), "w") as out:
                vout = out.add_stream("libx264", rate=video.average_rate)
                vout.width, vout.height, vout.pix_fmt = video.codec_context.width, video.codec_context.height, "yuv420p"
                vout.options = {"preset": "ultrafast"}
                for span_start, span_end in spans:
                    inp.seek(int(span_start / video.time_base), stream=video, backward=True)
                    for frame in inp.decode(video):
                        if frame.time is None or frame.time < span_start:
                            continue
                        if frame.time >= span_end:
                            break
                        frame.pts, frame.time_base = round((frame.time - start) / video.time_base), video.time_base
                        out.mux(vout.encode(frame))
                out.mux(vout.encode(None))


def measure(approach: str, endpoint: str, windows: list[tuple[float, float]], server) -> dict:
    """Run one approach in a child process; sample its process tree's RSS; read its CPU time."""
    server.reset_count()
    with tempfile.TemporaryDirectory() as work:
        cmd = [sys.executable, "-m", "bench.bench_prepare", "--child", approach, "--endpoint", endpoint, "--work", work,
               "--windows-json", json.dumps(windows)]
        started = time.monotonic()
        child = psutil.Popen(cmd, env={**os.environ, "EVUD_PROGRESS": "0"}, stderr=open(Path(work) / "stderr.txt", "w"))
        peak = 0
        while child.poll() is None:
            pss = 0
            for proc in [child] + child.children(recursive=True):
                try:
                    # PSS: shared pages (the forked workers' libraries) are counted once, not once per process.
                    pss += proc.memory_full_info().pss
                except psutil.Error:
                    pass
            peak = max(peak, pss)
            time.sleep(0.05)
        wall = time.monotonic() - started
        if child.returncode != 0:
            raise RuntimeError(f"{approach} failed ({child.returncode}): {(Path(work) / 'stderr.txt').read_text()[-2000:]}")
        result = json.loads((Path(work) / "result.json").read_text())
    return {"approach": approach, "wall_s": wall, "cpu_s": result["cpu_s"], "peak_pss_mb": peak / 2**20,
            "bytes_fetched": server.bytes_sent}


def child_main(args: argparse.Namespace) -> None:
    import resource

    windows = [tuple(w) for w in json.loads(args.windows_json)]
    work = Path(args.work)
    if args.child == "naive":
        naive_cut(args.endpoint, windows, work)
    elif args.child == "smartcut":
        smartcut_work(args.endpoint, windows, work)
    else:
        ours_cut(args.endpoint, windows, work, args.child)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    (work / "result.json").write_text(json.dumps({"cpu_s": sum(u.ru_utime + u.ru_stime for u in usage)}))


APPROACHES = "naive,copy,exact,reencode,smartcut"


def bench_source(args: argparse.Namespace, gop_s: float) -> list[dict]:
    """Every approach on one source; prints its table and returns its rows."""
    source = CACHE / f"source_{args.minutes:g}min_720p_gop{gop_s:g}s.mp4"
    print(f"\nmaking the source video ({args.minutes:g} min, 720p, a keyframe every {gop_s:g} s) if not cached ...",
          flush=True)
    make_source(source, args.minutes, gop_s)
    with av.open(str(source)) as c:
        duration = float(c.duration / 1e6)
    windows = pick_windows(duration, args.windows)
    need = window_bytes(source, windows)
    clip_seconds = sum(e - s for s, e in windows)
    print(f"source: {source.stat().st_size / 1e6:.1f} MB, {duration:.0f} s; {len(windows)} windows, {clip_seconds:.1f} s "
          f"of clips, {need / 1e6:.1f} MB of window packets")
    with moto_s3() as (server, endpoint):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        boto3.client("s3", endpoint_url=endpoint).upload_file(str(source), BUCKET, KEY)
        rows = [measure(a, endpoint, windows, server) for a in args.approaches.split(",")]
    by_name = {row["approach"]: row for row in rows}
    copy_cpu = by_name["copy"]["cpu_s"] if "copy" in by_name else None
    print(f"\nGOP {gop_s:g} s")
    print(f"{'approach':<10}{'wall s':>9}{'CPU s/clip-s':>14}{'x copy':>8}{'fetched MB':>12}{'fetched/need':>14}"
          f"{'peak PSS MB':>13}")
    for row in rows:
        times_copy = f"{row['cpu_s'] / copy_cpu:>8.1f}" if copy_cpu else f"{'':>8}"
        print(f"{row['approach']:<10}{row['wall_s']:>9.2f}{row['cpu_s'] / clip_seconds:>14.4f}{times_copy}"
              f"{row['bytes_fetched'] / 1e6:>12.1f}{row['bytes_fetched'] / need:>14.2f}{row['peak_pss_mb']:>13.0f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--gops", default="1,2,8", help="seconds between keyframes, one source each")
    parser.add_argument("--approaches", default=APPROACHES)
    parser.add_argument("--child")
    parser.add_argument("--endpoint")
    parser.add_argument("--work")
    parser.add_argument("--windows-json")
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    for gop_s in (float(g) for g in args.gops.split(",")):
        bench_source(args, gop_s)
    print("\nCPU includes a run's fixed cost (interpreter, imports, an S3 session per worker), which 13,789 windows "
          "amortise.")


if __name__ == "__main__":
    main()
