"""Stage `prepare`: select NLQ queries, cut each window into an mp4 clip, upload it, write the manifest.

    python -m stages.prepare --clips-dir data/clips --manifest data/clips.jsonl --metrics metrics/prepare.json

The clips directory is a persisted DVC out holding an index of finished cuts (`_cut_index.jsonl`), to
which each worker appends a line the moment a clip is done (and uploaded): a crash or Ctrl-C keeps every
finished clip, and a re-run cuts only what is missing or whose source or cut params changed.
Workers: EVUD_WORKERS (default: CPU count); not a param, since it changes no output.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from .ego4d import ClipPlan, MetadataError, plan_clips
from .gcs import UploadError, blob_name, upload_clip
from .jsonl import read_jsonl, write_json, write_jsonl
from .params import ClipParams, DataParams, GcsParams, load_section, runtime_int
from .progress import progress_bar, summarise_failures
from .records import ClipRecord, ClipStatus
from .video import CutError, CutResult, CutSettings, WindowJob, cut_windows, file_digests, open_source

CUT_INDEX = "_cut_index.jsonl"
WINDOWS_PER_TASK = 8  # a task opens its source once; small tasks keep progress and crash loss fine-grained


@dataclass(frozen=True)
class Destination:
    """Where clips go and how they are cut: the same for every task of a run."""

    clips_dir: str
    settings: CutSettings
    keep_local: bool
    bucket: str | None
    prefix: str
    s3_endpoint_url: str | None

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec options for a source URL; credentials are never here (standard chains only)."""
        if url.startswith("s3://") and self.s3_endpoint_url:
            return {"endpoint_url": self.s3_endpoint_url}
        return {}

    def uri(self, clip_path: str) -> str | None:
        return f"gs://{self.bucket}/{blob_name(self.prefix, clip_path)}" if self.bucket else None


def source_fingerprint(url: str, storage_options: dict[str, Any]) -> str:
    """What identifies a source's content without reading it: the store's checksum, or local size + edges."""
    if "://" in url and not url.startswith("file://"):
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        info = fs.info(path)
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


def fingerprint_sources(urls: list[str], dest: Destination) -> dict[str, str]:
    """url -> fingerprint, or `!reason` when the source cannot be reached; one HEAD per video, in parallel."""

    def one(url: str) -> str:
        try:
            return source_fingerprint(url, dest.storage_options(url))
        except FileNotFoundError:
            return f"!source_missing: {url} does not exist (404)"
        except PermissionError as err:
            return f"!source_denied: {url}: access denied ({err}); check your credentials"
        except Exception as err:  # noqa: BLE001  one unreachable video (bad credentials, odd store) must not stop the run
            return f"!source_unreadable: {url}: {type(err).__name__}: {err}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(urls, pool.map(one, urls)))


def cut_key(plan: ClipPlan, fingerprint: str, settings: CutSettings) -> str:
    """Everything that decides a clip's bytes; a clip whose key is unchanged is never cut again."""
    cut = {k: v for k, v in settings.__dict__.items() if k != "md5"}  # md5 is a checksum, not a cut setting
    material = {"source": fingerprint, "start": plan.window_start, "end": plan.window_end, "cut": cut}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def cut_settings(clip: ClipParams) -> CutSettings:
    if clip.mode == "copy":  # the reencode knobs do not change a copy: keep them out of its cut key
        return CutSettings(mode="copy", keep_audio=clip.keep_audio)
    return CutSettings(mode="reencode", keep_audio=clip.keep_audio, height=clip.height, crf=clip.crf, preset=clip.preset)


def append_index_line(clips_dir: str, entry: dict[str, Any]) -> None:
    """One O_APPEND write + fsync per finished clip: safe from several processes, survives kill -9."""
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(os.path.join(clips_dir, CUT_INDEX), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_task(plans: list[ClipPlan], keys: dict[str, str], existing: dict[str, dict[str, Any]],
             dest: Destination) -> list[dict[str, Any]]:
    """Worker task: cut (or only upload) some windows of one source (sorted by start), opened once. Never raises."""
    already_cut = {p.clip_path: dict(existing[p.clip_path]) for p in plans
                   if p.clip_path in existing and existing[p.clip_path].get("cut_key") == keys[p.clip_path]
                   and (Path(dest.clips_dir) / p.clip_path).is_file()}
    to_cut = [p for p in plans if p.clip_path not in already_cut]
    cut_entries: dict[str, dict[str, Any]] = {}
    read = 0
    if to_cut:
        try:
            with open_source(to_cut[0].source_url, dest.storage_options(to_cut[0].source_url)) as source:
                jobs = [WindowJob(Path(dest.clips_dir) / p.clip_path, p.window_start, p.window_end) for p in to_cut]
                results = cut_windows(source, to_cut[0].source_url, jobs, dest.settings)
                read = source.fetched_bytes
        except CutError as err:
            results = [err for _ in to_cut]
        except Exception as err:  # noqa: BLE001  a worker must report its windows, whatever the store raised
            results = [CutError(f"source_unreadable: {to_cut[0].source_url}: {type(err).__name__}: {err}")
                       for _ in to_cut]
        cut_entries = {p.clip_path: cut_entry(p, keys[p.clip_path], r) for p, r in zip(to_cut, results)}
    outcomes = [finish_clip(plan, already_cut.get(plan.clip_path) or cut_entries[plan.clip_path], dest)
                for plan in plans]
    if outcomes:
        outcomes[0]["bytes_read"] = read
    return outcomes


def cut_entry(plan: ClipPlan, key: str, result: CutResult | CutError) -> dict[str, Any]:
    if isinstance(result, CutError):
        return {"clip_path": plan.clip_path, "error": str(result)}
    return {"clip_path": plan.clip_path, "cut_key": key, "sha256": result.sha256, "md5_b64": result.md5_b64,
            "size_bytes": result.size_bytes, "file_start": result.file_start, "file_end": result.file_end}


def finish_clip(plan: ClipPlan, entry: dict[str, Any], dest: Destination) -> dict[str, Any]:
    """Upload a cut clip when asked, drop its local copy if not kept, and index it durably."""
    if "error" in entry:
        return entry
    local = Path(dest.clips_dir) / plan.clip_path
    entry["clip_uri"] = None
    if dest.bucket:
        if not entry.get("md5_b64"):  # cut by an earlier run that did not upload
            entry["md5_b64"] = file_digests(local)[1]
        try:
            entry["clip_uri"], _ = upload_clip(dest.bucket, blob_name(dest.prefix, plan.clip_path), str(local),
                                               entry["md5_b64"])
        except UploadError as err:
            return {"clip_path": plan.clip_path, "error": str(err)}
        if not dest.keep_local:
            local.unlink()
    append_index_line(dest.clips_dir, entry)
    return entry


def load_cut_index(clips_dir: Path) -> dict[str, dict[str, Any]]:
    """clip_path -> the latest finished cut recorded for it."""
    return {entry["clip_path"]: entry for entry in read_jsonl(clips_dir / CUT_INDEX)}


def is_done(entry: dict[str, Any] | None, key: str, dest: Destination) -> bool:
    """Cut with the same key, and present where this run wants it (local file, GCS blob, or both)."""
    if entry is None or entry.get("cut_key") != key:
        return False
    local_ok = (Path(dest.clips_dir) / entry["clip_path"]).is_file()
    uploaded = dest.bucket is None or entry.get("clip_uri") == dest.uri(entry["clip_path"])
    return uploaded and (local_ok or (not dest.keep_local and dest.bucket is not None))


def manifest_record(plan: ClipPlan, outcome: dict[str, Any]) -> ClipRecord:
    if "error" in outcome:
        # A window the file does not have is an input problem: a re-run cannot fix it, unlike an I/O failure.
        status = ClipStatus.skipped if outcome["error"].startswith("no_frames_in_window") else ClipStatus.failed
        return plan.record(status=status, reason=outcome["error"])
    return plan.record(status=ClipStatus.ok, clip_path=plan.clip_path, clip_uri=outcome.get("clip_uri"),
                       sha256=outcome["sha256"], size_bytes=outcome["size_bytes"],
                       file_start=outcome["file_start"], file_end=outcome["file_end"])


def make_tasks(pending: list[ClipPlan]) -> list[list[ClipPlan]]:
    """Pending plans grouped by source, in chunks: each task opens its video once."""
    by_source: dict[str, list[ClipPlan]] = defaultdict(list)
    for plan in pending:
        by_source[plan.source_url].append(plan)
    tasks = []
    for plans in by_source.values():
        plans.sort(key=lambda p: (p.window_start, p.clip_path))
        tasks += [plans[i:i + WINDOWS_PER_TASK] for i in range(0, len(plans), WINDOWS_PER_TASK)]
    return tasks


def run_tasks(tasks: list[list[ClipPlan]], keys: dict[str, str], index: dict[str, dict[str, Any]],
              dest: Destination, workers: int, total: int) -> tuple[dict[str, dict[str, Any]], int]:
    """Run cut tasks in a process pool with progress; returns outcomes by clip path and bytes read."""
    outcomes: dict[str, dict[str, Any]] = {}
    failures = bytes_read = 0
    bar = progress_bar(total, "prepare: cutting")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(cut_task, task, {p.clip_path: keys[p.clip_path] for p in task},
                               {p.clip_path: index[p.clip_path] for p in task if p.clip_path in index}, dest)
                   for task in tasks}
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                task_outcomes = future.result()
                for outcome in task_outcomes:
                    outcomes[outcome["clip_path"]] = outcome
                    failures += "error" in outcome
                    bytes_read += outcome.pop("bytes_read", 0)
                bar.update(len(task_outcomes))
                bar.set_postfix(failed=failures, read=f"{bytes_read / 1e6:.1f}MB")
    bar.close()
    return outcomes, bytes_read


def prune_clips_dir(clips_dir: Path, keep: dict[str, dict[str, Any]]) -> None:
    """Remove clips no longer selected (and partial files) and rewrite the index compactly and sorted."""
    for path in sorted(clips_dir.rglob("*"), reverse=True):
        relative = path.relative_to(clips_dir).as_posix()
        if path.is_file() and relative != CUT_INDEX and relative not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    write_jsonl(clips_dir / CUT_INDEX, [keep[k] for k in sorted(keep)])


def prepare_metrics(records: list[ClipRecord], reused: int, cut: int, bytes_read: int) -> dict[str, Any]:
    ok = [r for r in records if r.status is ClipStatus.ok]
    return {
        "queries": len(records),
        "clips_ok": len(ok),
        "clips_reused": reused,
        "clips_cut": cut,
        "by_status": dict(sorted(Counter(r.status.value for r in records).items())),
        "not_done_by_reason": dict(sorted(Counter(r.reason.split(":", 1)[0] for r in records if r.reason).items())),
        "clip_seconds": round(sum(r.duration or 0 for r in ok), 3),
        "clip_bytes": sum(r.size_bytes or 0 for r in ok),
        "source_bytes_read": bytes_read,
    }


def run(data: DataParams, clip: ClipParams, gcs: GcsParams, clips_dir: Path, manifest: Path, metrics: Path,
        workers: int) -> list[ClipRecord]:
    started = time.monotonic()
    clips_dir.mkdir(parents=True, exist_ok=True)
    plans, records = plan_clips(data)
    settings = dataclasses.replace(cut_settings(clip), md5=gcs.bucket is not None)
    dest = Destination(str(clips_dir), settings, clip.keep_local, gcs.bucket, gcs.prefix, data.s3_endpoint_url)
    fingerprints = fingerprint_sources(sorted({p.source_url for p in plans}), dest)
    index = load_cut_index(clips_dir)
    unreachable = {p.clip_path: {"clip_path": p.clip_path, "error": fingerprints[p.source_url][1:]}
                   for p in plans if fingerprints[p.source_url].startswith("!")}
    keys = {p.clip_path: cut_key(p, fingerprints[p.source_url], dest.settings) for p in plans if p.clip_path not in unreachable}
    done = {path: index[path] for path, key in keys.items() if is_done(index.get(path), key, dest)}
    pending = [p for p in plans if p.clip_path in keys and p.clip_path not in done]
    print(f"prepare: {len(plans)} windows selected, {len(records)} skipped, {len(done)} already done, "
          f"{len(unreachable)} with unreachable sources, {len(pending)} to cut with {workers} worker(s)", file=sys.stderr)
    outcomes, bytes_read = run_tasks(make_tasks(pending), keys, index, dest, workers, len(pending)) if pending else ({}, 0)
    outcomes = {**unreachable, **done, **outcomes}
    records += [manifest_record(p, outcomes[p.clip_path]) for p in plans]
    records.sort(key=lambda r: (r.video_uid, r.clip_uid, r.annotation_uid, r.language_query_index))
    prune_clips_dir(clips_dir, {k: v for k, v in outcomes.items() if "error" not in v})
    write_jsonl(manifest, records)
    write_json(metrics, prepare_metrics(records, len(done), len(pending), bytes_read))
    print(summarise_failures("prepare", [(r.key, r.reason) for r in records if r.status is not ClipStatus.ok]), file=sys.stderr)
    by_status = Counter(r.status.value for r in records)
    print(f"prepare: {dict(sorted(by_status.items()))} of {len(records)} queries; read {bytes_read / 1e6:.1f} MB "
          f"from sources in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-dir", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    try:
        run(load_section("data", args.params), load_section("clip", args.params), load_section("gcs", args.params),
            args.clips_dir, args.manifest, args.metrics, runtime_int("EVUD_WORKERS", os.cpu_count() or 1))
    except MetadataError as err:
        sys.exit(f"prepare: bad metadata: {err}")


if __name__ == "__main__":
    main()
