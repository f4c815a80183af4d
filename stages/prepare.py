"""Stage `prepare`: select NLQ queries, cut each window into an mp4 clip, write the clip manifest.

    python -m stages.prepare --clips-dir data/clips --manifest data/clips.jsonl --metrics metrics/prepare.json

The clips directory is a persisted DVC out holding an index of finished cuts, appended as each cut
completes: a crash or Ctrl-C keeps every finished clip and a re-run cuts only what is missing or stale.
Workers: EVUD_WORKERS (default: CPU count); not a param, since it changes no output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import fsspec

from .ego4d import ClipPlan, plan_clips
from .jsonl import DurableAppender, read_jsonl, write_json, write_jsonl
from .params import ClipParams, DataParams, load_section, runtime_int
from .progress import progress_bar, summarise_failures
from .records import ClipRecord, ClipStatus
from .video import CutError, cut_window

CUT_INDEX = "_cut_index.jsonl"


def source_fingerprint(url: str) -> str:
    """What identifies a source's content without reading it all: store checksums, or local size + edges."""
    if "://" in url and not url.startswith("file://"):
        info = fsspec.core.url_to_fs(url)[0].info(url)
        for field in ("ETag", "etag", "md5Hash", "crc32c", "checksum"):
            if info.get(field):
                return f"{field}:{str(info[field]).strip(chr(34))}:{info.get('size')}"
        return f"size:{info.get('size')}"
    path = url.removeprefix("file://")
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(size - (1 << 20), 0))
        digest.update(f.read(1 << 20))
    return f"local:{size}:{digest.hexdigest()}"


def cut_key(plan: ClipPlan, fingerprint: str, clip: ClipParams) -> str:
    """Everything that decides a clip's bytes; a clip whose key is unchanged is never cut again."""
    material = {"source": fingerprint, "start": plan.window_start, "end": plan.window_end,
                "clip": clip.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def cut_video_plans(plans: list[ClipPlan], clips_dir: str, clip: ClipParams) -> list[dict[str, Any]]:
    """Worker task: cut every pending window of one video. Returns one index entry or failure per plan."""
    results = []
    for plan in plans:
        try:
            fingerprint = source_fingerprint(plan.source_url)
            cut = cut_window(plan.source_url, Path(clips_dir) / plan.clip_path, plan.window_start,
                             plan.window_end, keep_audio=clip.keep_audio)
        except CutError as err:
            results.append({"clip_path": plan.clip_path, "error": str(err)})
            continue
        except (OSError, ValueError) as err:
            results.append({"clip_path": plan.clip_path, "error": f"source_unreadable: {plan.source_url}: {err}"})
            continue
        results.append({"clip_path": plan.clip_path, "cut_key": cut_key(plan, fingerprint, clip),
                        "sha256": cut.sha256, "size_bytes": cut.size_bytes,
                        "file_start": cut.file_start, "file_end": cut.file_end})
    return results


def load_cut_index(clips_dir: Path) -> dict[str, dict[str, Any]]:
    """clip_path -> the latest finished cut whose file is still there."""
    index: dict[str, dict[str, Any]] = {}
    for entry in read_jsonl(clips_dir / CUT_INDEX):
        if (clips_dir / entry["clip_path"]).is_file():
            index[entry["clip_path"]] = entry
    return index


def reusable_cut(plan: ClipPlan, index: dict[str, dict[str, Any]], clip: ClipParams) -> dict[str, Any] | None:
    entry = index.get(plan.clip_path)
    if entry is None:
        return None
    try:
        return entry if entry["cut_key"] == cut_key(plan, source_fingerprint(plan.source_url), clip) else None
    except (OSError, ValueError):
        return None  # the source cannot be checked now: let the cut report why


def manifest_record(plan: ClipPlan, outcome: dict[str, Any]) -> ClipRecord:
    if "error" in outcome:
        return plan.record(status=ClipStatus.failed, reason=outcome["error"])
    return plan.record(status=ClipStatus.ok, clip_path=plan.clip_path, sha256=outcome["sha256"],
                       size_bytes=outcome["size_bytes"], file_start=outcome["file_start"], file_end=outcome["file_end"])


def cut_pending(pending: list[ClipPlan], clips_dir: Path, clip: ClipParams, workers: int) -> dict[str, dict[str, Any]]:
    """Cut pending plans in a process pool, one task per source video; each finished cut is indexed at once."""
    by_video: dict[str, list[ClipPlan]] = defaultdict(list)
    for plan in pending:
        by_video[plan.source_url].append(plan)
    outcomes: dict[str, dict[str, Any]] = {}
    failures = 0
    bar = progress_bar(len(pending), "prepare: cutting")
    with DurableAppender(clips_dir / CUT_INDEX) as index, ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(cut_video_plans, plans, str(clips_dir), clip) for plans in by_video.values()}
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                for outcome in future.result():
                    outcomes[outcome["clip_path"]] = outcome
                    if "error" in outcome:
                        failures += 1
                    else:
                        index.append(outcome)
                    bar.update(1)
                    bar.set_postfix(failed=failures)
    bar.close()
    return outcomes


def prune_clips_dir(clips_dir: Path, keep: dict[str, dict[str, Any]]) -> None:
    """Remove clips no longer selected and rewrite the index compactly, so the out is deterministic."""
    for path in sorted(clips_dir.rglob("*"), reverse=True):
        relative = path.relative_to(clips_dir).as_posix()
        if path.is_file() and relative != CUT_INDEX and relative not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    write_jsonl(clips_dir / CUT_INDEX, [keep[k] for k in sorted(keep)])


def prepare_metrics(records: list[ClipRecord], reused: int, cut: int) -> dict[str, Any]:
    ok = [r for r in records if r.status is ClipStatus.ok]
    return {
        "queries": len(records),
        "clips_ok": len(ok),
        "clips_reused": reused,
        "clips_cut": cut,
        "not_done_by_reason": dict(sorted(Counter(r.reason.split(":", 1)[0] for r in records if r.reason).items())),
        "clip_seconds": round(sum(r.duration or 0 for r in ok), 3),
        "clip_bytes": sum(r.size_bytes or 0 for r in ok),
    }


def run(data: DataParams, clip: ClipParams, clips_dir: Path, manifest: Path, metrics: Path, workers: int) -> list[ClipRecord]:
    started = time.monotonic()
    clips_dir.mkdir(parents=True, exist_ok=True)
    plans, records = plan_clips(data)
    index = load_cut_index(clips_dir)
    reused = {p.clip_path: index[p.clip_path] for p in plans if reusable_cut(p, index, clip)}
    pending = [p for p in plans if p.clip_path not in reused]
    print(f"prepare: {len(plans)} windows selected, {len(records)} skipped, {len(reused)} already cut, "
          f"{len(pending)} to cut with {workers} worker(s)", file=sys.stderr)
    outcomes = {**reused, **cut_pending(pending, clips_dir, clip, workers)} if pending else dict(reused)
    records += [manifest_record(p, outcomes[p.clip_path]) for p in plans]
    records.sort(key=lambda r: (r.video_uid, r.clip_uid, r.annotation_uid, r.language_query_index))
    prune_clips_dir(clips_dir, {k: v for k, v in outcomes.items() if "error" not in v})
    write_jsonl(manifest, records)
    write_json(metrics, prepare_metrics(records, len(reused), len(pending)))
    print(summarise_failures("prepare", [(r.key, r.reason) for r in records if r.status is not ClipStatus.ok]), file=sys.stderr)
    print(f"prepare: {sum(r.status is ClipStatus.ok for r in records)} clips ok of {len(records)} queries "
          f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run(load_section("data", args.params), load_section("clip", args.params), args.clips_dir, args.manifest,
        args.metrics, runtime_int("EVUD_WORKERS", os.cpu_count() or 1))


if __name__ == "__main__":
    main()
