"""Benchmark: prepare's engines on the same windows, the local pool against Ray tasks on a 2-node cluster on this
machine (same cores: the difference is Ray's overhead).

    python -m bench.bench_engine [--sources 3] [--minutes 1] [--windows 10] [--rounds 2]

Sources: 720p/30 H.264 videos (bench_prepare's, a keyframe every 1, 2, 4 ... s so that no two share a clip), read in
place from local files (a path every node reaches, as a shared file system is). The default cut (exact, 384p).
Runs, each a fresh clip store (every window cut):
  local     EVUD_WORKERS=2 on this machine's pool
  ray-cold  RAY_ADDRESS = a new `ray.cluster_utils.Cluster` (head 1 CPU + a node of 1 CPU): Ray starts its workers
  ray-warm  the same cluster again (workers started): what a long run costs per window
Figures: windows per second of the stage (wall, planning included), CPU seconds, peak memory (PSS) of the stage's
process tree (the driver, and the local pool's workers) and of the cluster's worker processes, the nodes that cut,
and the bytes each clip costs Ray: its share of the tasks' arguments and results as Ray serialises them (inlined in
the task messages under 100 KB; nothing larger goes through the object store) and the object store's own count.
Target: Ray's warm rate within 10 % of the local pool's; under 10 KB per clip.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import psutil

from bench.bench_prepare import CACHE, make_source, pick_windows

UIDS = [f"0b1e2c3d-0000-4000-8000-0000000e{i:04d}" for i in range(64)]


def sources(count: int, minutes: float) -> list[Path]:
    """Distinct 720p sources (a different keyframe interval each), cached in bench/.cache."""
    paths = []
    for i in range(count):
        path = CACHE / f"source_{minutes:g}min_720p_gop{i + 1}s.mp4"
        print(f"source {i + 1}/{count}: {path.name} (made if not cached)", flush=True)
        make_source(path, minutes, gop_s=float(i + 1))
        paths.append(path)
    return paths


def write_inputs(work: Path, paths: list[Path], windows_per_source: int) -> int:
    """Ego4D NLQ metadata over the sources (linked as <video_uid>.mp4); returns the number of windows."""
    videos, nlq, total = [], [], 0
    (work / "videos").mkdir(parents=True)
    for uid, path in zip(UIDS, paths):
        (work / "videos" / f"{uid}.mp4").symlink_to(path)
        with av.open(str(path)) as container:
            duration = float(container.duration / 1e6)
        windows = pick_windows(duration, windows_per_source)
        total += len(windows)
        videos.append({"video_uid": uid, "duration_sec": duration})
        queries = [{"video_start_sec": s, "video_end_sec": e, "query": "q"} for s, e in windows]
        nlq.append({"video_uid": uid, "clips": [{"clip_uid": f"c{uid[-4:]}", "annotations": [
            {"annotation_uid": f"a{uid[-4:]}", "language_queries": queries}]}]})
    (work / "ego4d.json").write_text(json.dumps({"videos": videos}))
    (work / "nlq_train.json").write_text(json.dumps({"videos": nlq}))
    return total


# --- the stage, in a child process (its own process tree, its own peak memory) -----------------------------------


def child_main(work: Path, out: Path) -> None:
    import resource

    from evud.clips import prepare
    from evud.core.params import ClipParams, DataParams, GcsParams

    data = DataParams(root=str(work), ego4d_json=str(work / "ego4d.json"),
                      nlq_json=str(work / "nlq_train.json"), video_url=f"{work}/videos/{{video_uid}}.mp4",
                      window_rounding="exact")
    run = prepare.run(data, ClipParams(), GcsParams(), out / "clips", out / "clips.jsonl", out / "metrics.json",
                      int(os.environ.get("EVUD_WORKERS", "2")), store_dir=out / "store")
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    facts = {"cpu_s": sum(u.ru_utime + u.ru_stime for u in usage), "facts": run.facts,
             "metrics": json.loads((out / "metrics.json").read_text())}
    if os.environ.get("RAY_ADDRESS"):
        facts.update(task_bytes(data, out))
    (out / "result.json").write_text(json.dumps(facts))


def task_bytes(data, out: Path) -> dict:
    """What the run's tasks cost Ray in bytes: each task's arguments and its result, serialised as Ray does
    (cloudpickle), recomputed for the same plans; and the object store's own figures once the run is over."""
    import ray
    import ray._private.internal_api
    from ray import cloudpickle

    from evud.clips import prepare
    from evud.clips.ray_engine import _on_node
    from evud.clips.selection import plan_clips
    from evud.clips.sources import SourceLookup

    lookup = SourceLookup(None)
    plans, _ = plan_clips(data, lookup)
    fingerprints = lookup.fingerprints(sorted({p.source_url for p in plans}))
    settings = prepare.cut_settings(prepare.ClipParams())
    keys = {p.clip_path: prepare.cut_key(p, fingerprints[p.source_url].fingerprint, settings) for p in plans}
    dest = prepare.Destination(None, str(out / "store"), settings, True, None, "", None)
    arguments = results = 0
    for task in prepare.make_tasks(plans):
        call = (task, {p.clip_path: keys[p.clip_path] for p in task}, dest)
        arguments += len(cloudpickle.dumps((_on_node, prepare.clip_task, *call)))
        outcomes = prepare.clip_task(*call)  # the store holds every clip now: the outcome records, nothing cut
        results += len(cloudpickle.dumps(("f" * 56, outcomes)))  # a node id is 56 hex characters
    ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR")
    summary = ray._private.internal_api.memory_summary(stats_only=True)
    ray.shutdown()
    return {"argument_bytes": arguments, "result_bytes": results, "clip_count": len(plans),
            "object_store": [line.strip() for line in summary.splitlines() if line.strip()][:6]}


# --- measuring -----------------------------------------------------------------------------------------------------


def pss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss  # shared pages counted once, not once per process
        except psutil.Error:
            pass
    return total


def cluster_workers(cluster) -> list[psutil.Process]:
    """The Ray worker processes of every node (children of the raylets running `default_worker.py`)."""
    workers = []
    for node in [cluster.head_node, *cluster.worker_nodes]:
        for info in node.all_processes.get("raylet", []):
            try:
                workers += [p for p in psutil.Process(info.process.pid).children(recursive=True)
                            if "default_worker" in " ".join(p.cmdline())]
            except psutil.Error:
                pass
    return workers


def measure(name: str, work: Path, env: dict[str, str], cluster=None) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    started = time.monotonic()
    log = open(out / "stderr.txt", "w")
    child = psutil.Popen([sys.executable, "-m", "bench.bench_engine", "--child", str(work), "--out", str(out)],
                         env={**env, "EVUD_PROGRESS": "0", "EVUD_STORE": str(out / "evud-store")}, stderr=log)
    peak_driver = peak_workers = 0
    while child.poll() is None:
        peak_driver = max(peak_driver, pss([child] + child.children(recursive=True)))
        if cluster is not None:
            peak_workers = max(peak_workers, pss(cluster_workers(cluster)))
        time.sleep(0.05)
    wall = time.monotonic() - started
    log.close()
    if child.returncode != 0:
        raise RuntimeError(f"{name} failed ({child.returncode}): {(out / 'stderr.txt').read_text()[-3000:]}")
    result = json.loads((out / "result.json").read_text())
    clips = {p.relative_to(out / "clips").as_posix(): p.read_bytes() for p in (out / "clips").rglob("*.mp4")}
    print(f"{name}: {wall:.1f} s; {result['facts']['ran_on']}", flush=True)
    return {**result, "name": name, "wall_s": wall, "peak_driver_mb": peak_driver / 2**20,
            "peak_workers_mb": peak_workers / 2**20, "clips": clips, "manifest": (out / "clips.jsonl").read_bytes()}


def start_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    return cluster


def report(rows: list[dict], windows: int) -> None:
    local = rows[0]
    print(f"\n{'run':<10}{'wall s':>8}{'windows/s':>11}{'vs local':>10}{'CPU s':>8}{'driver MB':>11}"
          f"{'workers MB':>12}{'engine':>8}{'nodes':>7}{'same clips':>12}")
    for row in rows:
        rate = windows / row["wall_s"]
        same = row["clips"] == local["clips"] and row["manifest"] == local["manifest"]
        workers = f"{row['peak_workers_mb']:>12.0f}" if row["peak_workers_mb"] else f"{'(in driver)':>12}"
        print(f"{row['name']:<10}{row['wall_s']:>8.1f}{rate:>11.2f}{rate / (windows / local['wall_s']) - 1:>+10.1%}"
              f"{row['cpu_s']:>8.1f}{row['peak_driver_mb']:>11.0f}{workers}{row['metrics']['engine']:>8}"
              f"{row['metrics']['nodes']:>7}{str(same):>12}")
    warm = [r for r in rows if "cold" not in r["name"]]
    best = {engine: max(windows / r["wall_s"] for r in warm if r["metrics"]["engine"] == engine)
            for engine in ("local", "ray")}
    print(f"\nbest warm rate: local {best['local']:.2f} windows/s, ray {best['ray']:.2f} windows/s "
          f"(Ray's overhead {1 - best['ray'] / best['local']:+.1%})")
    ray_row = next((r for r in rows if "argument_bytes" in r), None)
    if ray_row:
        per_clip = (ray_row["argument_bytes"] + ray_row["result_bytes"]) / ray_row["clip_count"]
        count = ray_row["clip_count"]
        print(f"\nbytes per clip through Ray: {per_clip:,.0f} (arguments {ray_row['argument_bytes'] / count:,.0f} + "
              f"results {ray_row['result_bytes'] / count:,.0f}; {count} clips)")
        print("object store after the run:\n  " + "\n  ".join(ray_row["object_store"]))
    print("\nThe local pool's workers are in its process tree (driver MB); the cluster's CPU (Ray's raylets, GCS, "
          "agents) is not in `CPU s`, which counts the stage's own process tree.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=10, help="windows per source")
    parser.add_argument("--rounds", type=int, default=2, help="local and warm Ray runs, alternated")
    parser.add_argument("--child")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child_main(Path(args.child), Path(args.out))
        return
    paths = sources(args.sources, args.minutes)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as scratch:
        work = Path(scratch)
        windows = write_inputs(work, paths, args.windows)
        print(f"{windows} windows from {len(paths)} sources; load average before: {load[0]:.1f}", flush=True)
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        rows = [measure("local", work, env)]
        print("starting a 2-node Ray cluster ...", flush=True)
        cluster = start_cluster()
        try:
            ray_env = {**env, "RAY_ADDRESS": cluster.address}
            rows.append(measure("ray-cold", work, ray_env, cluster))
            rows.append(measure("ray-warm", work, ray_env, cluster))
            for round_ in range(2, args.rounds + 1):  # alternated: the machine's other load hits both alike
                rows.append(measure(f"local-{round_}", work, env))
                rows.append(measure(f"ray-warm-{round_}", work, ray_env, cluster))
        finally:
            cluster.shutdown()
        report(rows, windows)
    print(f"load average after: {os.getloadavg()[0]:.1f} (2 cores; other work on the machine slows every row)")


if __name__ == "__main__":
    main()
