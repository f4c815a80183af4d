"""prepare's engines: the local pool (no RAY_ADDRESS) and Ray tasks on a real 2-node cluster on this machine give the
same manifest and the same clip bytes; a node lost mid-run loses no window and cuts none twice; Ctrl-C cancels the
cluster's tasks; a clip store on S3 (moto) shared by the nodes, each clip written once; RAY_ADDRESS without Ray
installed is one clear line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import boto3
import psutil
import pytest

from evud.clips import prepare
from evud.clips.clip_store import ClipStore, StoredClip
from evud.clips.remote_clips import RemoteClips
from evud.core.errors import EngineError
from evud.core.params import ClipParams, DataParams, GcsParams
from tests.support.cloud import free_port, moto_s3
from tests.support.fixtures import made_once
from tests.support.gated_source import GatedSourceServer, gated_source_server
from tests.support.numbered_video import make_numbered_video
from tests.support.ray_cluster import RayCluster, ray_cluster, ray_cluster_session  # noqa: F401  fixtures

FPS = 10
VIDEOS = [f"0e0e0e0e-0000-4000-8000-00000000000{i}" for i in range(1, 7)]
WINDOWS = [(1.0, 3.0), (8.0, 10.5), (15.0, 17.5)]  # far apart: each one is read separately
CLIP = ClipParams(mode="exact", height=72)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def videos(tmp_path_factory, worker_id) -> Path:
    """Six 20 s videos of noise (every window is a read of its own), drawn once per test run."""
    def draw(folder: Path) -> None:
        folder.mkdir()
        for i, uid in enumerate(VIDEOS):  # each its own frames: no two share a clip
            make_numbered_video(folder / f"{uid}.mp4", 20, fps=FPS, noise=True, crf=30, first_number=1000 * i)

    return made_once(tmp_path_factory, worker_id, "engine-videos-distinct", draw)


def nlq_data(folder: Path, video_url: str) -> DataParams:
    """Ego4D NLQ metadata: every window of WINDOWS in every video, one task per video."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ego4d.json").write_text(json.dumps({"videos": [{"video_uid": uid, "duration_sec": 20.0}
                                                              for uid in VIDEOS]}))
    queries = [{"video_start_sec": s, "video_end_sec": e, "query": "where is it?"} for s, e in WINDOWS]
    nlq = {"videos": [{"video_uid": uid, "clips": [{"clip_uid": f"clip-{uid[-2:]}", "annotations": [
        {"annotation_uid": f"ann-{uid[-2:]}", "language_queries": queries}]}]} for uid in VIDEOS]}
    (folder / "nlq_train.json").write_text(json.dumps(nlq))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=video_url, window_rounding="exact")


def prepare_in(out: Path, data: DataParams) -> prepare.PrepareRun:
    """prepare into `out` with a clip store of its own (a second run must cut, not reuse the first one's clips)."""
    return prepare.run(data, CLIP, GcsParams(), out / "clips", out / "clips.jsonl", out / "metrics.json", 2,
                       store_dir=out / "store")


def clip_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out / "clips").as_posix(): p.read_bytes() for p in (out / "clips").rglob("*.mp4")}


def metrics_of(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def local_run(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local pool's run over the videos (no RAY_ADDRESS): what every engine and store must give."""
    out = tmp_path_factory.mktemp("local-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVUD_STORE", str(out / "evud-store"))
        patch.delenv("RAY_ADDRESS", raising=False)
        patch.delenv("EVUD_CLIP_STORE", raising=False)
        prepare_in(out, nlq_data(out / "meta", f"{videos}/{{video_uid}}.mp4"))
    return out


def manifest_of(out: Path, without: tuple[str, ...]) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in without}
            for line in (out / "clips.jsonl").read_text().splitlines()]


def assert_same_outputs(local: Path, other: Path, source_url_changed: bool = False) -> None:
    """Same manifest (but for the cut keys when the source's URL differs: they name the source), same clip bytes,
    same metrics but for the engine's own."""
    if source_url_changed:
        assert manifest_of(other, ("cut_key",)) == manifest_of(local, ("cut_key",))
    else:
        assert (other / "clips.jsonl").read_bytes() == (local / "clips.jsonl").read_bytes()
    clips = clip_bytes(local)
    assert len(clips) == len(VIDEOS) * len(WINDOWS)
    assert clip_bytes(other) == clips
    timing_free = {"engine", "nodes"}
    assert {k: v for k, v in metrics_of(other).items() if k not in timing_free} == \
        {k: v for k, v in metrics_of(local).items() if k not in timing_free}


def test_a_two_node_cluster_cuts_the_local_runs_clips_byte_for_byte(ray_cluster: RayCluster, videos: Path,
                                                                     local_run: Path, tmp_path: Path, monkeypatch):
    data = nlq_data(tmp_path / "meta", f"{videos}/{{video_uid}}.mp4")
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    on_ray = prepare_in(tmp_path / "ray", data)
    assert_same_outputs(local_run, tmp_path / "ray")
    assert (metrics_of(local_run)["engine"], metrics_of(local_run)["nodes"]) == ("local", 1)
    assert (metrics_of(tmp_path / "ray")["engine"], metrics_of(tmp_path / "ray")["nodes"]) == ("ray", 2)
    assert on_ray.facts["cut"] == len(VIDEOS) * len(WINDOWS)
    assert ray_cluster.address in on_ray.facts["ran_on"]


def committed_clips(store: Path) -> dict[str, int]:
    """cut key -> inode of the stored clip, for every clip the store has recorded as complete."""
    return {entry.stem: (entry.with_suffix(".mp4")).stat().st_ino for entry in store.glob("*/*.json")}


def test_a_node_lost_mid_run_loses_no_window_and_cuts_none_twice(ray_cluster: RayCluster, videos: Path,
                                                                 local_run: Path, tmp_path: Path, monkeypatch):
    """A third node holds a task in the middle of its reads (the source's gate) when it is removed: its windows are
    cut elsewhere, and no clip recorded before the loss is cut again (a second cut would replace the file)."""
    with gated_source_server(videos) as server:
        data = nlq_data(tmp_path / "meta", f"{server.url}/{{video_uid}}.mp4")
        before_loss: dict[str, int] = {}
        errors: list[BaseException] = []

        def lose_a_node() -> None:
            try:
                wait_for_a_committed_clip(tmp_path / "ray" / "store")
                server.close_gate()
                server.wait_held(3)  # three tasks mid-read: one on each one-CPU node, the doomed one too
                before_loss.update(committed_clips(tmp_path / "ray" / "store"))
                ray_cluster.remove_node(doomed)
            except BaseException as err:  # noqa: BLE001  reported by the test's thread
                errors.append(err)
            finally:
                server.open_gate()

        monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
        with ray_cluster.extra_node() as doomed:
            loser = threading.Thread(target=lose_a_node)
            loser.start()
            try:
                run = prepare_in(tmp_path / "ray", data)
            finally:
                loser.join()
    assert not errors, errors
    assert before_loss and len(before_loss) < len(VIDEOS) * len(WINDOWS)  # the loss came mid-run
    assert_same_outputs(local_run, tmp_path / "ray", source_url_changed=True)
    after = committed_clips(tmp_path / "ray" / "store")
    assert {key: after[key] for key in before_loss} == before_loss  # each recorded clip is the one first cut
    assert run.facts["cut"] + run.facts["reused"] == len(VIDEOS) * len(WINDOWS)


def wait_for_a_committed_clip(store: Path) -> None:
    """Until the store records its first clip (the run is under way on the cluster); looked for every 50 ms."""
    for _ in range(2400):
        if any(store.glob("*/*.json")):
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"no clip recorded in {store} after 120 s")


def test_ctrl_c_cancels_the_clusters_tasks(ray_cluster: RayCluster, videos: Path, tmp_path: Path, monkeypatch):
    """Ctrl-C while both nodes' tasks wait on their sources: the stage ends only once the processes running them are
    gone (ray.cancel), so none cuts on, and the cluster itself (not the stage's) keeps running.

    The driver is connected before the stage runs (a notebook, a script calling prepare): the stage keeps that
    connection open, so only its cancelling, not a disconnect, can have ended the tasks."""
    import ray

    held_by: set[int] = set()
    with gated_source_server(videos) as server:
        data = nlq_data(tmp_path / "meta", f"{server.url}/{{video_uid}}.mp4")
        server.close_gate()
        main = threading.main_thread().ident

        def interrupt() -> None:
            server.wait_held(2)
            held_by.update(processes_reading_from(server))
            signal.pthread_kill(main, signal.SIGINT)

        monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        interrupter = threading.Thread(target=interrupt)
        ray.init(address=ray_cluster.address, logging_level="ERROR")
        try:
            interrupter.start()
            with pytest.raises(KeyboardInterrupt):
                prepare_in(tmp_path / "ray", data)
            alive = [pid for pid in held_by if running(pid)]
            assert len(held_by) == 2 and not alive, (held_by, alive)
            assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2.0  # not the stage's to stop
        finally:
            signal.signal(signal.SIGINT, previous)
            interrupter.join()
            ray.shutdown()
    assert not list((tmp_path / "ray" / "store").glob("*/*.json"))
    assert not list((tmp_path / "ray" / "store").glob("*/*.part"))


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_reading_from(server: GatedSourceServer) -> set[int]:
    """The processes with a connection open to the source server (the tasks' workers)."""
    port = int(server.url.rsplit(":", 1)[1])
    return {c.pid for c in psutil.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.pid and c.pid != os.getpid()}


def test_a_clip_store_on_s3_is_shared_by_the_nodes_and_each_clip_written_once(ray_cluster: RayCluster, videos: Path,
                                                                              local_run: Path, tmp_path: Path,
                                                                              monkeypatch):
    """EVUD_CLIP_STORE=s3://...: the nodes publish their clips there (versioned bucket: one version per object),
    the driver fetches what data/clips needs; another machine's run (an empty local store, its local pool) cuts
    nothing."""
    data = nlq_data(tmp_path / "meta", f"{videos}/{{video_uid}}.mp4")
    with moto_s3() as (_, endpoint):
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="evud-clip-store")
        s3.put_bucket_versioning(Bucket="evud-clip-store", VersioningConfiguration={"Status": "Enabled"})
        data = data.model_copy(update={"s3_endpoint_url": endpoint})
        monkeypatch.setenv("EVUD_CLIP_STORE", "s3://evud-clip-store/clips")
        monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
        first = prepare_in(tmp_path / "ray", data)
        monkeypatch.delenv("RAY_ADDRESS")  # another machine, its local pool: the clips come from S3
        again = prepare_in(tmp_path / "another-driver", data)
        versions = s3.list_object_versions(Bucket="evud-clip-store", Prefix="clips/").get("Versions", [])
    assert_same_outputs(local_run, tmp_path / "ray")
    assert_same_outputs(local_run, tmp_path / "another-driver")
    windows = len(VIDEOS) * len(WINDOWS)
    assert (first.facts["cut"], again.facts["cut"], again.facts["reused"]) == (windows, 0, windows)
    written = Counter(v["Key"] for v in versions)
    assert len(written) == 2 * windows and set(written.values()) == {1}  # a clip and its entry each, once


def test_a_clip_published_twice_keeps_the_first(tmp_path: Path):
    """Two nodes publishing one cut key: S3 refuses the second put (If-None-Match: *); both get the first entry."""
    key = "ab" * 32
    clips = {}
    for name in ("first", "second"):
        clips[name] = tmp_path / f"{name}.mp4"
        clips[name].write_bytes(name.encode() * 100)
    entries = {name: StoredClip(cut_key=key, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                size_bytes=path.stat().st_size, file_start=0.0, file_end=1.0)
               for name, path in clips.items()}
    with moto_s3() as (_, endpoint):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="evud-clip-store")
        remote = RemoteClips("evud-clip-store", "clips", endpoint)
        assert remote.publish(clips["first"], entries["first"]).sha256 == entries["first"].sha256
        assert remote.publish(clips["second"], entries["second"]).sha256 == entries["first"].sha256
        store = ClipStore(tmp_path / "store")
        remote.fetch_into(store, remote.entry(key))
    assert store.clip_file(key).read_bytes() == clips["first"].read_bytes()


def test_ray_address_where_no_cluster_listens_is_one_clear_line_at_once(tmp_path: Path, monkeypatch):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(EngineError) as err:
        prepare_in(tmp_path, nlq_data(tmp_path / "meta", "/nowhere/{video_uid}.mp4"))
    assert str(err.value).startswith(f"prepare: the Ray cluster at RAY_ADDRESS={address} cannot be reached "
                                     "(ConnectionRefusedError")
    assert "unset it to run on this machine's worker pool" in str(err.value)


# Ray made unimportable the honest way: a finder ahead of every other that refuses it, as if it were not installed.
_WITHOUT_RAY = """
import sys
class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoRay())
"""


def without_ray(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITHOUT_RAY + code], capture_output=True, text=True, cwd=REPO,
                          env=env)


def test_ray_address_without_ray_installed_is_one_clear_line(tmp_path: Path):
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:6379", "EVUD_STORE": str(tmp_path / "store")}
    stage = ("from stages.prepare import main; main(['--clips-dir', 'x/clips', '--manifest', 'x/clips.jsonl', "
             f"'--metrics', 'x/metrics.json', '--params', {str(REPO / 'params.yaml')!r}])")
    result = without_ray(stage.replace("'x/", f"'{tmp_path}/"), env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "prepare: RAY_ADDRESS is set (127.0.0.1:6379) but Ray cannot be imported here (No module named 'ray'): "
        "install it with `pip install -e \".[ray]\"` to run on that cluster, or unset RAY_ADDRESS to run on this "
        "machine's worker pool."]
    assert not (tmp_path / "clips.jsonl").exists()


def test_without_ray_address_the_local_pool_runs_and_ray_is_never_imported(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    code = ("from evud.clips.engines import engine_from_environment\n"
            "engine = engine_from_environment(2, 'prepare')\n"
            "print(engine.name, engine.describe().split(' (')[0], 'ray' in sys.modules)")
    result = without_ray(code, env)
    assert result.stdout.split("\n")[0] == "local the local worker pool False", result.stderr
