"""Benchmark: reading a full-size ego4d.json (hundreds of MB) for the videos NLQ uses.

    python -m bench.bench_metadata [--videos 9600] [--wanted 1300]

Side by side, each in its own process: the naive way (`json.load` of the whole file, as the published
scripts did) and ours (`stages.ego4d.load_videos`: streamed with ijson, only the wanted videos and only
the fields read). Figures: wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CACHE = ROOT / "bench" / ".cache"


def make_ego4d_json(path: Path, videos: int) -> None:
    """An ego4d.json shaped like Ego4D's: ~35 KB per video, mostly the per-clip lists pipelines ignore."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".part"), "w") as f:
        f.write('{"version": "v2", "videos": [')
        for i in range(videos):
            video = {"video_uid": f"{i:08d}-0000-4000-8000-000000000000", "duration_sec": 480.0 + i % 300,
                     "s3_path": f"s3://ego4d-consortium-sharing/public/v2/full_scale/{i:08d}.mp4",
                     "video_metadata": {"fps": 30.0, "num_frames": 14400, "display_resolution_width": 1920,
                                        "display_resolution_height": 1080},
                     "scenarios": ["Cooking", "Cleaning"],
                     "clips": [{"clip_uid": f"{i}-{j}", "frames": list(range(j * 100, j * 100 + 300))}
                               for j in range(12)]}
            f.write(("," if i else "") + json.dumps(video))
        f.write("]}")
    path.with_suffix(".part").rename(path)


def child(mode: str, path: str, wanted: int) -> None:
    started = time.monotonic()
    uids = {f"{i:08d}-0000-4000-8000-000000000000" for i in range(0, wanted * 7, 7)}
    if mode == "naive":
        with open(path) as f:
            videos = {v["video_uid"]: v for v in json.load(f)["videos"]}
        found = len(uids & videos.keys())
    else:
        from evud.clips.ego4d import load_videos

        found = len(load_videos(path, uids))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": time.monotonic() - started, "peak_mb": peak, "found": found}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=9600)
    parser.add_argument("--wanted", type=int, default=1300)
    parser.add_argument("--child")
    parser.add_argument("--path")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.wanted)
        return
    path = CACHE / f"ego4d_{args.videos}.json"
    make_ego4d_json(path, args.videos)
    print(f"ego4d.json: {path.stat().st_size / 1e6:.0f} MB, {args.videos} videos; {args.wanted} wanted")
    print(f"{'approach':<10}{'wall s':>8}{'peak RSS MB':>13}{'videos found':>14}")
    for mode in ("naive", "ours"):
        out = subprocess.run([sys.executable, "-m", "bench.bench_metadata", "--child", mode, "--path", str(path), "--wanted",
                              str(args.wanted)], capture_output=True, text=True, check=True).stdout
        row = json.loads(out)
        print(f"{mode:<10}{row['wall_s']:>8.1f}{row['peak_mb']:>13.0f}{row['found']:>14}")


if __name__ == "__main__":
    main()
