"""Benchmark: prepare's re-run of a large selection, every clip already in the clip store (nothing to cut).

    python -m bench.bench_rerun [--windows 14000] [--per-video 14]

A re-run (after a params change that keeps the clips, or `dvc exp run` of another stage's param) must cost what its
windows cost, linearly: plan the windows, look each clip up in the store, link it, write the manifest. Side by side, in
one run, on the same store: `naive`, the former way of splitting the windows to link from those to finish in workers
(a list membership test per window: quadratic), and `ours`. Figures: wall seconds of the whole re-run, and of the
split alone.

Measured 2026-12-03 on the 2-core helper machine (shared with other work, under `nice`), `python -m
bench.bench_rerun --windows 14000`: the whole re-run 542.3 s naive, 11.6 s ours; the split alone 572.8 s naive,
0.009 s ours.

The store is primed without cutting: every window's entry points at one small real clip (hard links), recorded as the
cut would record it, so the re-run finds every clip done.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.synthetic import uid
from evud.clips import prepare
from evud.clips.clip_store import ClipStore, StoredClip
from evud.clips.selection import plan_clips
from evud.clips.sources import SourceLookup
from evud.core.checksums import file_digests
from evud.core.params import ClipParams, DataParams, GcsParams
from tests.support.numbered_video import make_numbered_video


def write_metadata(folder: Path, windows: int, per_video: int, video_file: Path) -> DataParams:
    """NLQ-shaped metadata: `windows` 2-s queries, `per_video` to a video (each video a hard link of one small file)."""
    import random

    rng = random.Random(3)
    videos, nlq_videos = [], []
    for v in range((windows + per_video - 1) // per_video):
        video_uid = uid(rng)
        path = folder / "videos" / f"{video_uid}.mp4"
        os.link(video_file, path)
        videos.append({"video_uid": video_uid, "duration_sec": 3600.0, "s3_path": str(path)})
        count = min(per_video, windows - v * per_video)
        queries = [{"video_start_sec": 10.0 * q, "video_end_sec": 10.0 * q + 2.0, "query": "where is the cup?"}
                   for q in range(count)]
        nlq_videos.append({"video_uid": video_uid, "clips": [{"clip_uid": uid(rng), "annotations": [
            {"annotation_uid": uid(rng), "language_queries": queries}]}]})
    (folder / "ego4d.json").write_text(json.dumps({"videos": videos}))
    (folder / "nlq_train.json").write_text(json.dumps({"videos": nlq_videos}))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=None, window_rounding="exact")


def prime_store(data: DataParams, clip: ClipParams, store: ClipStore, clip_file: Path) -> int:
    """Record every window's clip in the store as a finished cut (a hard link of one real clip): nothing left to cut."""
    plans, _ = plan_clips(data, SourceLookup())
    fingerprints = SourceLookup().fingerprints(sorted({p.source_url for p in plans}))
    settings = prepare.cut_settings(clip)
    sha256, _ = file_digests(clip_file, with_md5=False)
    for plan in plans:
        key = prepare.cut_key(plan, fingerprints[plan.source_url].fingerprint, settings)
        store.clip_file(key).parent.mkdir(parents=True, exist_ok=True)
        if not store.clip_file(key).exists():
            os.link(clip_file, store.clip_file(key))
        store.commit(StoredClip(cut_key=key, sha256=sha256, size_bytes=clip_file.stat().st_size,
                                file_start=plan.window_start, file_end=plan.window_end))
    return len(plans)


def naive_split(plans, keys, verified, upload):
    """The former split (evud/clips/prepare.py before issue 25): `p not in linkable`, a scan of a list and a dataclass
    comparison per window."""
    linkable = [p for p in plans if not upload and verified.get(p.clip_path) and verified[p.clip_path].has_file]
    return linkable, [p for p in plans if p.clip_path in keys and p not in linkable]


def timed_rerun(data: DataParams, clip: ClipParams, work: Path, store: ClipStore) -> tuple[float, dict]:
    started = time.perf_counter()
    outcome = prepare.run(data, clip, GcsParams(), work / "clips", work / "clips.jsonl", work / "metrics.json", 1,
                          store_dir=store.root)
    return time.perf_counter() - started, outcome.facts


def time_split(split, data: DataParams, clip: ClipParams, store: ClipStore) -> float:
    """The split alone, on the re-run's own plans, keys and store entries."""
    plans, _ = plan_clips(data, SourceLookup())
    fingerprints = SourceLookup().fingerprints(sorted({p.source_url for p in plans}))
    settings = prepare.cut_settings(clip)
    keys = {p.clip_path: prepare.cut_key(p, fingerprints[p.source_url].fingerprint, settings) for p in plans}
    verified = {path: store.verified(key) for path, key in keys.items()}
    started = time.perf_counter()
    split(plans, keys, verified, False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=14000)
    parser.add_argument("--per-video", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        work = Path(tmp)
        os.environ["EVUD_STORE"] = str(work / "evud-store")
        (work / "videos").mkdir()
        make_numbered_video(work / "source.mp4", 2, fps=10)
        data = write_metadata(work, args.windows, args.per_video, work / "source.mp4")
        clip = ClipParams()
        store = ClipStore(work / "store")
        primed = prime_store(data, clip, store, work / "source.mp4")
        figures = {"windows": primed}
        ours = prepare.split_reused
        timed_rerun(data, clip, work, store)  # the first re-run also links data/clips: not what is compared
        for name, split in (("naive", naive_split), ("ours", ours)):
            prepare.split_reused = split
            try:
                wall, facts = timed_rerun(data, clip, work, store)
            finally:
                prepare.split_reused = ours
            assert facts["cut"] == 0 and facts["reused"] == primed, facts
            figures[f"rerun_s_{name}"] = round(wall, 2)
            figures[f"split_s_{name}"] = round(time_split(split, data, clip, store), 3)
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(main())
