"""The prepare stage's work: select the source's windows (data.source), cut each into an mp4 clip, upload it, write
the manifest.

Clips are cut into the clip store (evud.clips.clip_store; outside every DVC out), each recorded there the
moment it is complete, then linked into the clips directory: whatever DVC does to data/clips, a clip
already cut from the same source with the same cut key is never cut again, and a crash, Ctrl-C or
kill -9 loses at most the clips in flight. Clips that fail for a reason a re-run can fix (a store or
network error) make the stage exit 1 after writing the manifest, so the next `dvc repro` cuts them again;
EVUD_ALLOW_FAILED=1 carries on without them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evud.clips.clip_store import Checked, ClipStore, StoredClip, link_file
from evud.clips.ego4d import ClipPlan
from evud.clips.ego4d_videos import choose_ego4d_videos
from evud.clips.redaction import count_redacted, redaction_summary
from evud.clips.selection import plan_clips
from evud.clips.sources import SourceLookup, storage_options
from evud.clips.video import (
    CUTTER_VERSION,
    CutError,
    CutResult,
    CutSettings,
    WindowJob,
    cut_windows,
    open_source,
    source_timeout_s,
)
from evud.clips.engines import Engine, check_reachable, engine_from_environment
from evud.clips.remote_clips import RemoteClips, remote_clip_store, scratch_destination
from evud.core.checksums import file_digests
from evud.core.gcs import UploadError, blob_matches, blob_name, upload_clip
from evud.core.jsonl import read_jsonl, write_json, write_jsonl
from evud.core.params import ClipParams, DataParams, GcsParams, ParamsError
from evud.core.progress import check_complete, progress_bar, summarise_failures, write_run_report
from evud.core.records import ClipRecord, ClipStatus
from evud.core.store import ClaimWaits, claim_wait_s, dvc_cache_file, locked_directory, locked_file, store_root

WINDOWS_PER_TASK = 8  # a task opens its source once; each clip is recorded as soon as it is cut
FETCH_THREADS = 8  # clips fetched at once from a remote clip store (one task's worth)


@dataclass(frozen=True)
class Destination:
    """Where clips go and how they are cut: the same for every task of a run."""

    clips_dir: str | None  # None in tasks that may run on another host: the stage links what it needs
    store_dir: str
    settings: CutSettings
    keep_local: bool
    bucket: str | None
    prefix: str
    s3_endpoint_url: str | None

    @property
    def store(self) -> ClipStore:
        return ClipStore(Path(self.store_dir))

    def storage_options(self, url: str) -> dict[str, Any]:
        return storage_options(url, self.s3_endpoint_url)

    def uri(self, clip_path: str) -> str | None:
        return f"gs://{self.bucket}/{blob_name(self.prefix, clip_path)}" if self.bucket else None


@dataclass
class ClipOutcome:
    """What became of one planned window: a stored clip (cut now or reused), or an error."""

    clip_path: str
    stored: StoredClip | None = None
    clip_uri: str | None = None
    error: CutError | None = None
    cut_now: bool = False
    bytes_read: int = 0


def cut_key(plan: ClipPlan, fingerprint: str, settings: CutSettings) -> str:
    """Everything that decides a clip's bytes; a clip whose key is unchanged is never cut again."""
    cut = {k: v for k, v in settings.__dict__.items() if k != "md5"}  # md5 is a checksum, not a cut setting
    material = {"source": fingerprint, "start": plan.window_start, "end": plan.window_end, "cut": cut,
                "cutter": CUTTER_VERSION}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def cut_settings(clip: ClipParams) -> CutSettings:
    if clip.mode == "copy":  # the re-encoding knobs do not change a copy: keep them out of its cut key
        return CutSettings(mode="copy", keep_audio=clip.keep_audio)
    # `reencode` is the older name of `exact`: the same cut, so the same cut key.
    return CutSettings(mode="exact", keep_audio=clip.keep_audio, height=clip.height, crf=clip.crf, preset=clip.preset)


def finish_clip(plan: ClipPlan, stored: StoredClip, dest: Destination, cut_now: bool) -> ClipOutcome | None:
    """Upload a stored clip when asked (skipped if GCS holds the same bytes), drop or link its local copy.

    None when the clip has no local file and its GCS copy is gone: it must be cut again.
    """
    store, outcome = dest.store, ClipOutcome(plan.clip_path, cut_now=cut_now)
    try:
        if dest.bucket:
            if stored.has_file and not stored.md5_b64:  # cut by a run that did not upload
                stored = store.commit(stored.model_copy(update={"md5_b64": file_digests(store.clip_file(stored.cut_key))[1]}))
            name = blob_name(dest.prefix, plan.clip_path)
            if stored.has_file:
                outcome.clip_uri, _ = upload_clip(dest.bucket, name, str(store.clip_file(stored.cut_key)), stored.md5_b64)
            elif blob_matches(dest.bucket, name, stored.md5_b64 or ""):
                outcome.clip_uri = dest.uri(plan.clip_path)
            else:
                return None
            if not dest.keep_local and stored.has_file:
                stored = store.drop_file(stored)
        if dest.keep_local and dest.clips_dir is not None:
            link_file(store.clip_file(stored.cut_key), Path(dest.clips_dir) / plan.clip_path)
            stored = store.refresh(stored)
    except UploadError as err:
        outcome.error = CutError(str(err))
        return outcome
    outcome.stored = stored
    return outcome


def cut_and_store(plans: list[ClipPlan], keys: dict[str, str], dest: Destination) -> list[ClipOutcome]:
    """Cut windows of one source (opened once) into the store, recording each clip as soon as it is complete."""
    store, outcomes = dest.store, []
    source_url = plans[0].source_url
    jobs = [WindowJob(store.clip_file(keys[p.clip_path]), p.window_start, p.window_end,
                      partial=store.partial_file(keys[p.clip_path])) for p in plans]
    try:
        with open_source(source_url, dest.storage_options(source_url)) as source:
            for plan, result in zip(plans, cut_windows(source, source_url, jobs, dest.settings)):
                if isinstance(result, CutError):
                    outcomes.append(ClipOutcome(plan.clip_path, error=result))
                    continue
                stored = store.commit(stored_clip(keys[plan.clip_path], result))
                outcomes.append(finish_clip(plan, stored, dest, cut_now=True))
            if outcomes:
                outcomes[0].bytes_read = source.fetched_bytes
    except CutError as err:
        outcomes += [ClipOutcome(p.clip_path, error=err) for p in plans[len(outcomes):]]
    except Exception as err:  # noqa: BLE001  a worker must report its windows, whatever the store raised
        failure = CutError(f"source_unreadable: {source_url}: {type(err).__name__}: {err}")
        outcomes += [ClipOutcome(p.clip_path, error=failure) for p in plans[len(outcomes):]]
    return outcomes


def stored_clip(key: str, result: CutResult) -> StoredClip:
    return StoredClip(cut_key=key, sha256=result.sha256, md5_b64=result.md5_b64, size_bytes=result.size_bytes,
                      file_start=result.file_start, file_end=result.file_end)


_CLAIM_POLL_S = 0.2  # how often to look for a clip another run is cutting


def finished_from_store(plan: ClipPlan, key: str, dest: Destination) -> ClipOutcome | None:
    """The clip of this window as the store holds it, finished (linked, uploaded); None when it must be cut."""
    stored = dest.store.verified(key)
    return finish_clip(plan, stored, dest, cut_now=False) if stored is not None else None


def finish_stored(plans: list[ClipPlan], keys: dict[str, str], dest: Destination) -> tuple[list[ClipOutcome],
                                                                                        list[ClipPlan]]:
    """The windows whose clips the store holds, finished; and the others, still to cut."""
    finished, missing = [], []
    for plan in plans:
        outcome = finished_from_store(plan, keys[plan.clip_path], dest)
        if outcome is None:
            missing.append(plan)  # never cut, being cut elsewhere, or its only copy (in GCS) is gone
        else:
            finished.append(outcome)
    return finished, missing


def clip_task(plans: list[ClipPlan], keys: dict[str, str], dest: Destination) -> list[ClipOutcome]:
    """Worker task: finish the windows of one source already in the store, cut the others. Never raises.

    A clip another live run is cutting right now (its claim in the store) is waited for and linked, not cut twice;
    the wait is said on stderr and given up after EVUD_CLAIM_WAIT_S (the window is then `failed`: a re-run cuts it).
    """
    waits = ClaimWaits(dest.store.claims, "prepare")
    outcomes, pending = finish_stored(plans, keys, dest)
    while pending:
        claimed = claim_clips(pending, keys, dest.store)
        # Another run may have stored a clip between this worker's look and its claim: no second cut.
        finished, mine = finish_stored(claimed, keys, dest)
        for outcome in finished:
            dest.store.claims.release(keys[outcome.clip_path])
        outcomes += finished
        if mine:
            try:
                outcomes += cut_and_store(mine, keys, dest)
            finally:
                for plan in mine:
                    dest.store.claims.release(keys[plan.clip_path])
        handled = {o.clip_path for o in outcomes}
        finished, pending = finish_stored([p for p in pending if p.clip_path not in handled], keys, dest)
        outcomes += finished
        if pending and not mine:
            given_up = waited_too_long(pending, keys, waits)
            outcomes += given_up
            pending = [p for p in pending if p.clip_path not in {o.clip_path for o in given_up}]
            if pending:
                time.sleep(_CLAIM_POLL_S)  # another run is cutting these: its clips appear in the store
    return outcomes


def waited_too_long(pending: list[ClipPlan], keys: dict[str, str], waits: ClaimWaits) -> list[ClipOutcome]:
    """The windows whose clips another run has been cutting for longer than the cap: failed, with who holds them."""
    given_up = []
    for plan in pending:
        reason = waits.give_up(keys[plan.clip_path], f"clip {plan.clip_path}")
        if reason is not None:
            given_up.append(ClipOutcome(plan.clip_path, error=CutError(reason)))
    return given_up


def publish_task(plans: list[ClipPlan], keys: dict[str, str], dest: Destination,
                 remote: RemoteClips) -> list[ClipOutcome]:
    """Worker task with a remote clip store (evud.clips.remote_clips): the clips it holds are reused, the others cut
    on this node and published. Never raises."""
    outcomes, missing = [], []
    for plan in plans:
        try:
            entry = remote.entry(keys[plan.clip_path])
        except Exception as err:  # noqa: BLE001  a worker must report its windows, whatever the store raised
            outcomes.append(ClipOutcome(plan.clip_path, error=CutError(f"store_failed: {remote.url}: {err}")))
            continue
        if entry is None:
            missing.append(plan)
        else:
            outcomes.append(ClipOutcome(plan.clip_path, stored=entry))
    with tempfile.TemporaryDirectory(prefix="evud-clip-scratch-") as scratch_dir:
        scratch = scratch_destination(dest, scratch_dir)
        for outcome in clip_task(missing, keys, scratch) if missing else []:
            if outcome.stored is not None:
                try:
                    outcome.stored = remote.publish(scratch.store.clip_file(outcome.stored.cut_key), outcome.stored)
                except Exception as err:  # noqa: BLE001
                    outcome.stored, outcome.error = None, CutError(f"store_failed: {remote.url}: {err}")
            outcomes.append(outcome)
    return outcomes


def fetch_outcome(outcome: ClipOutcome, plan: ClipPlan, dest: Destination, remote: RemoteClips) -> ClipOutcome:
    """A clip a task published, fetched into this workspace's store (unless there already) and finished here."""
    if outcome.stored is None:
        return outcome
    try:
        stored = dest.store.verified(outcome.stored.cut_key) or remote.fetch_into(dest.store, outcome.stored)
    except Exception as err:  # noqa: BLE001  the window fails with why; a re-run fetches it again
        return ClipOutcome(outcome.clip_path, error=CutError(f"store_failed: {remote.url}: {err}"))
    finished = finish_clip(plan, stored, dest, outcome.cut_now)
    if finished is not None:
        finished.bytes_read = outcome.bytes_read
    return finished or ClipOutcome(outcome.clip_path, error=CutError(f"store_failed: {remote.url}: clip lost"))


def claim_clips(plans: list[ClipPlan], keys: dict[str, str], store: ClipStore) -> list[ClipPlan]:
    """The plans this worker may cut now: their clips claimed here (one plan per clip: queries with the same window
    of the same source share it). A store that cannot take a claim is cut without one (the clip is still whole)."""
    mine, claimed = [], set()
    for plan in plans:
        key = keys[plan.clip_path]
        if key in claimed:
            continue
        try:
            taken = store.claims.claim(key)
        except OSError:
            taken = True  # the write of the clip itself will say what is wrong with the store
        if taken:
            mine.append(plan)
            claimed.add(key)
    return mine


# --- the run ---------------------------------------------------------------------------------------


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


def run_tasks(tasks: list[list[ClipPlan]], keys: dict[str, str], dest: Destination, engine: Engine,
              total: int, remote: RemoteClips | None = None) -> list[ClipOutcome]:
    """Run clip tasks on the engine (evud.clips.engines), with progress. Tasks on another host cannot reach this
    workspace: this process links their clips from the shared store (or fetches them from the remote one) into the
    clips directory."""
    outcomes: list[ClipOutcome] = []
    failures = bytes_read = 0
    task_dest = dest if engine.shares_workspace and remote is None else dataclasses.replace(dest, clips_dir=None)
    work = clip_task if remote is None else functools.partial(publish_task, remote=remote)
    plans = {p.clip_path: p for t in tasks for p in t}
    bar = progress_bar(total, "prepare: cutting")

    fetcher = ThreadPoolExecutor(FETCH_THREADS) if remote is not None else None

    def record(task_outcomes: list[ClipOutcome]) -> None:
        nonlocal failures, bytes_read
        if fetcher is not None:  # a round trip per clip: several at once
            task_outcomes = list(fetcher.map(lambda o: fetch_outcome(o, plans[o.clip_path], dest, remote),
                                             task_outcomes))
        elif task_dest.clips_dir is None:
            link_outcomes(task_outcomes, dest)
        outcomes.extend(task_outcomes)
        failures += sum(o.error is not None for o in task_outcomes)
        bytes_read += sum(o.bytes_read for o in task_outcomes)
        bar.update(len(task_outcomes))
        bar.set_postfix(failed=failures, read=f"{bytes_read / 1e6:.1f}MB")

    def lost(call: tuple, reason: str) -> None:  # every attempt's worker or node died: a re-run cuts these
        record([ClipOutcome(p.clip_path, error=CutError(f"worker_lost: {reason}")) for p in call[0]])

    calls = [(task, {p.clip_path: keys[p.clip_path] for p in task}, task_dest) for task in tasks]
    try:
        engine.run(work, calls, record, lost)
    except BaseException:
        dest.store.sweep_partials()  # the clips in flight: half-written by workers that are gone now
        raise
    finally:
        bar.close()
        if fetcher is not None:
            fetcher.shutdown()
    return outcomes


def link_outcomes(outcomes: list[ClipOutcome], dest: Destination) -> None:
    """Link clips a task stored (on any node, in the shared store) into this workspace's clips directory."""
    for outcome in outcomes:
        if dest.keep_local and outcome.stored is not None and outcome.stored.has_file:
            link_file(dest.store.clip_file(outcome.stored.cut_key), Path(dest.clips_dir) / outcome.clip_path)


def link_reused(plans: list[ClipPlan], verified: dict[str, StoredClip], dest: Destination) -> list[ClipOutcome]:
    """Clips already in the store, with no upload to check: link them into the clips directory (main process)."""
    outcomes = []
    for plan in plans:
        stored = verified[plan.clip_path]
        link_file(dest.store.clip_file(stored.cut_key), Path(dest.clips_dir) / plan.clip_path)
        outcomes.append(ClipOutcome(plan.clip_path, stored=dest.store.refresh(stored)))
    return outcomes


def check_store(keys: dict[str, str], store: ClipStore) -> tuple[dict[str, StoredClip | None], dict[str, Checked]]:
    """Each window's stored clip, checked against its file (entry or None); and the windows whose clip was found
    edited in place, each said on stderr (it is cut again, into a new file)."""
    checks = {key: store.check(key) for key in sorted(set(keys.values()))}
    edited = {path: checks[key] for path, key in sorted(keys.items()) if checks[key].edited_inode is not None}
    for path in edited:
        print(f"prepare: clip {path} was edited in place: the clip store's file {store.clip_file(keys[path])} no "
              "longer holds the bytes cut for it (its other names, in data/clips or DVC's cache, hold the same "
              "edited file); cutting it again into a new file", file=sys.stderr)
    return {path: checks[key].entry for path, key in keys.items()}, edited


def evict_edited_cache_objects(edited: dict[str, Checked], outcomes: dict[str, ClipOutcome], store: ClipStore) -> None:
    """Remove from DVC's cache the objects that are the edited files (hard links share the inode): DVC never
    re-checks an object it has, so it would link the edited bytes back over the clip cut now at its next commit
    or checkout. The next commit stores the clip cut now in its place."""
    for path, checked in edited.items():
        stored = outcomes[path].stored
        if stored is None or not stored.has_file:
            continue
        with open(store.clip_file(stored.cut_key), "rb") as f:
            md5 = hashlib.file_digest(f, "md5").hexdigest()
        cached = dvc_cache_file(md5)
        if cached is None:
            continue
        found = cached.stat()
        if (found.st_dev, found.st_ino) == checked.edited_inode:
            cached.unlink()
            print(f"prepare: removed {cached} from DVC's cache: it was the edited file of clip {path} (DVC stores "
                  "the clip cut now in its place at the stage's commit)", file=sys.stderr)


def split_reused(plans: list[ClipPlan], keys: dict[str, str], verified: dict[str, StoredClip | None],
                 upload: bool) -> tuple[list[ClipPlan], list[ClipPlan]]:
    """The windows whose stored clips only need a link (done here), and those left to workers (to cut, or to finish:
    upload); windows without a key (unreachable source) are in neither. One pass: a re-run of 14,000 windows must not
    compare every window with every other."""
    linkable, others = [], []
    for plan in plans:
        if plan.clip_path not in keys:
            continue
        entry = verified.get(plan.clip_path)
        (linkable if not upload and entry is not None and entry.has_file else others).append(plan)
    return linkable, others


def reuse_locked_clips(plans: list[ClipPlan], keys: dict[str, str], store: ClipStore, clips_dir: Path,
                       manifest: Path) -> int:
    """Copy into the store the clips dvc.lock last recorded (e.g. pulled from a remote) that it lacks."""
    wanted = {keys[p.clip_path] for p in plans if p.clip_path in keys and store.get(keys[p.clip_path]) is None}
    locked_manifest = locked_file("prepare", manifest.as_posix()) if wanted else None
    if locked_manifest is None:
        return 0
    files = locked_directory("prepare", clips_dir.as_posix())
    added = 0
    for record in (ClipRecord.model_validate(r) for r in read_jsonl(locked_manifest)):
        cached = files.get(record.clip_path or "")
        if record.cut_key not in wanted or cached is None or record.sha256 is None:
            continue
        partial = store.partial_file(record.cut_key)
        link_file(cached, partial)
        if file_digests(partial, with_md5=False)[0] != record.sha256:
            partial.unlink()
            continue
        os.replace(partial, store.clip_file(record.cut_key))
        store.commit(StoredClip(cut_key=record.cut_key, sha256=record.sha256, size_bytes=record.size_bytes or 0,
                                file_start=record.file_start or 0.0, file_end=record.file_end or 0.0))
        wanted.discard(record.cut_key)
        added += 1
    return added


def manifest_record(plan: ClipPlan, key: str | None, outcome: ClipOutcome, cut_mode: str) -> ClipRecord:
    if outcome.error is not None:
        status = ClipStatus.skipped if outcome.error.permanent else ClipStatus.failed
        return plan.record(status=status, reason=str(outcome.error))
    stored = outcome.stored
    return plan.record(status=ClipStatus.ok, clip_path=plan.clip_path, clip_uri=outcome.clip_uri, cut_key=key,
                       cut_mode=cut_mode,
                       sha256=stored.sha256, size_bytes=stored.size_bytes, file_start=stored.file_start,
                       file_end=stored.file_end)


def prune_clips_dir(clips_dir: Path, keep: set[str]) -> None:
    """Remove clips no longer selected and leftovers (DVC empties the out before a run; a direct run may not)."""
    for path in sorted(clips_dir.rglob("*"), reverse=True):
        relative = path.relative_to(clips_dir).as_posix()
        if path.is_file() and relative not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def prepare_metrics(records: list[ClipRecord]) -> dict[str, Any]:
    """Facts of the manifest (tracked): the same manifest gives the same figures."""
    ok = [r for r in records if r.status is ClipStatus.ok]
    return {
        "queries": len(records),
        "clips_ok": len(ok),
        "by_status": dict(sorted(Counter(r.status.value for r in records).items())),
        "not_ok_by_reason": dict(sorted(Counter(r.reason.split(":", 1)[0] for r in records if r.reason).items())),
        "clip_seconds": round(sum(r.duration or 0 for r in ok), 3),
        "clip_bytes": sum(r.size_bytes or 0 for r in ok),
    }


def check_clips_kept(clip: ClipParams, gcs: GcsParams) -> None:
    """Refuse, before any cut, clips that would be kept nowhere (no local file, no upload)."""
    if not clip.keep_local and not gcs.bucket:
        raise ParamsError("clip.keep_local=false keeps clips only in gcs.bucket, and gcs.bucket is not set: set "
                          "gcs.bucket, or clip.keep_local=true")


@dataclass(frozen=True)
class PrepareRun:
    records: list[ClipRecord]  # what the manifest holds
    facts: dict[str, Any]  # facts of this run (the run report)


def run(data: DataParams, clip: ClipParams, gcs: GcsParams, clips_dir: Path, manifest: Path, metrics: Path,
        workers: int, store_dir: Path | None = None) -> PrepareRun:
    engine = engine_from_environment(workers, "prepare")
    try:
        return run_on(engine, data, clip, gcs, clips_dir, manifest, metrics, store_dir)
    finally:
        engine.close()


def run_on(engine: Engine, data: DataParams, clip: ClipParams, gcs: GcsParams, clips_dir: Path, manifest: Path,
           metrics: Path, store_dir: Path | None = None) -> PrepareRun:
    started = time.monotonic()
    source_timeout_s(), claim_wait_s()  # a bad setting stops the run here, in one line, not in every worker
    check_clips_kept(clip, gcs)
    clips_dir.mkdir(parents=True, exist_ok=True)
    store = ClipStore(store_dir or store_root() / "clips")
    store.sweep_partials()
    sources = SourceLookup(data.s3_endpoint_url)
    plans, records = plan_clips(data, sources)
    plans, variants = choose_ego4d_videos(plans, data, clip, sources)
    settings = dataclasses.replace(cut_settings(clip), md5=gcs.bucket is not None)
    dest = Destination(str(clips_dir), str(store.root), settings, clip.keep_local, gcs.bucket, gcs.prefix,
                       data.s3_endpoint_url)
    fingerprints = sources.fingerprints(sorted({p.source_url for p in plans}))
    outcomes = {p.clip_path: ClipOutcome(p.clip_path, error=fingerprints[p.source_url].error)
                for p in plans if fingerprints[p.source_url].error is not None}
    keys = {p.clip_path: cut_key(p, fingerprints[p.source_url].fingerprint, dest.settings)
            for p in plans if p.clip_path not in outcomes}
    from_lock = reuse_locked_clips(plans, keys, store, clips_dir, manifest)
    verified, edited = check_store(keys, store)
    stored = {path for path, entry in verified.items() if entry is not None}
    linkable, others = split_reused(plans, keys, verified, upload=bool(gcs.bucket))
    print(f"prepare: {len(plans)} windows selected, {len(records)} skipped, {len(stored)} already done"
          f"{f' ({from_lock} from the last locked clips)' if from_lock else ''}, {len(outcomes)} with unreachable "
          f"sources, {len(keys) - len(stored)} to cut; clip store {store.root}", file=sys.stderr)
    done, ran_on = link_reused(linkable, verified, dest), None
    if others:
        ran_on = engine.describe()
        remote = remote_clip_store(data.s3_endpoint_url)
        if remote is None:
            check_reachable(engine, store.root, "prepare", "clip store")
        print(f"prepare: cutting on {ran_on}{f'; clips stored in {remote.url}' if remote else ''}", file=sys.stderr)
        done += run_tasks(make_tasks(others), keys, dest, engine, len(others), remote)
    outcomes.update({o.clip_path: o for o in done})
    evict_edited_cache_objects(edited, outcomes, store)
    records += [manifest_record(p, keys.get(p.clip_path), outcomes[p.clip_path], settings.mode) for p in plans]
    records.sort(key=lambda r: r.order)
    prune_clips_dir(clips_dir, {r.clip_path for r in records if r.clip_path and clip.keep_local})
    write_jsonl(manifest, records)
    write_json(metrics, {**prepare_metrics(records), "engine": engine.name, "nodes": engine.node_count()})
    cut_now = sum(o.cut_now for o in outcomes.values())
    bytes_read = sum(o.bytes_read for o in outcomes.values())
    facts = {"windows": len(plans), "reused": sum(o.stored is not None and not o.cut_now for o in outcomes.values()),
             "cut": cut_now, "from_lock": from_lock, "source_bytes_read": bytes_read,
             "engine": engine.name, "nodes": engine.node_count(), "ran_on": ran_on,
             "elapsed_s": round(time.monotonic() - started, 3),
             "redacted_skipped": count_redacted(r.reason for r in records)}
    if variants.variants:
        facts.update(video_variants=variants.counts(), video_variant_fallbacks=variants.fallbacks)
    report = write_run_report("prepare", facts)
    for line in filter(None, [variants.manifest_problem, *variants.summary(),
                              redaction_summary(facts["redacted_skipped"], data.max_redacted_sec)]):
        print(line, file=sys.stderr)
    print(summarise_failures("prepare", [(r.key, r.reason) for r in records if r.status is not ClipStatus.ok]), file=sys.stderr)
    by_status = Counter(r.status.value for r in records)
    print(f"prepare: {dict(sorted(by_status.items()))} of {len(records)} queries; {cut_now} cut now, "
          f"read {bytes_read / 1e6:.1f} MB from sources in {time.monotonic() - started:.1f} s on "
          f"{engine.name} ({engine.node_count()} node(s)); run report {report}",
          file=sys.stderr)
    check_complete("prepare", [(r.key, r.reason or "") for r in records if r.status is ClipStatus.failed],
                   by_status.get(ClipStatus.ok.value, 0), len(plans), "clip", "cuts")
    return PrepareRun(records, facts)
