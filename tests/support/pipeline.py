"""Driving the whole pipeline in repository copies: conf/ pointed at the local Vertex server, a data group of many
generated clips, DVC commands, and processes started in the background to be killed or interrupted."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import yaml

from evud.core.params import compose_params
from tests.support.fake_vertex import FAST_ENV, FakeVertex
from tests.support.numbered_video import make_numbered_video
from tests.support.repo import STORE_VARIABLES, git_commit_all, run

MODEL_A, MODEL_B = "gemini-3.5-flash", "gemini-3.1-flash-lite"
SAMPLE_CLIPS = 7


def recompose(repo: Path) -> None:
    """params.yaml from the repository's conf/, as `python -m evud.core.params` writes it (in this process)."""
    compose_params(repo / "params.yaml", repo / "conf")


def use_fake_vertex(repo: Path, fake: FakeVertex, data_group: str = "sample", commit: str = "vertex") -> None:
    """Point conf/ at the local Vertex server (vertex backend) and recompose params.yaml, as a user would."""
    config = repo / "conf/config.yaml"
    text = config.read_text().replace("  - data: sample", f"  - data: {data_group}")
    config.write_text(text)
    flash = repo / "conf/gemini/flash.yaml"
    settings = yaml.safe_load(flash.read_text())
    settings.update(backend="vertex", project="test-project", base_url=fake.base_url)
    flash.write_text(yaml.safe_dump(settings, sort_keys=False))
    recompose(repo)
    git_commit_all(repo, commit)


def write_many_clips(repo: Path, videos: int = 4, per_video: int = 7, window_s: float = 6.0) -> None:
    """A data group `many`: numbered videos and Ego4D-format metadata with videos x per_video windows."""
    root = repo / "data/many"
    (root / "videos").mkdir(parents=True)
    uids = [f"7e57c110-{i:04d}-4000-8000-000000000000" for i in range(videos)]
    for number, uid in enumerate(uids):  # each video its own frames: no two clips have the same bytes
        make_numbered_video(root / "videos" / f"{uid}.mp4", int(per_video * (window_s + 1) + 2),
                            first_number=1000 * number)
    (root / "ego4d.json").write_text(json.dumps({"videos": [
        {"video_uid": uid, "duration_sec": per_video * (window_s + 1) + 2.0} for uid in uids]}))
    nlq = {"videos": [{"video_uid": uid, "clips": [{"clip_uid": f"clip-{uid[:8]}-{v}", "annotations": [
        {"annotation_uid": f"ann-{v}", "language_queries": [
            {"video_start_sec": q * (window_s + 1), "video_end_sec": q * (window_s + 1) + window_s,
             "query": f"where is thing {q}?", "template": "Objects: Where is object X?"}
            for q in range(per_video)]}]}]} for v, uid in enumerate(uids)]}
    (root / "nlq_train.json").write_text(json.dumps(nlq))
    sample = yaml.safe_load((repo / "conf/data/sample.yaml").read_text())
    sample.update(root="data/many", ego4d_json="data/many/ego4d.json", nlq_json="data/many/nlq_train.json",
                  video_url="data/many/videos/{video_uid}.mp4")
    (repo / "conf/data/many.yaml").write_text(yaml.safe_dump(sample, sort_keys=False))


def dvc(repo: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    return run(["dvc", *args], repo, env={**FAST_ENV, **env}, check=check)


def start(cmd: list[str], repo: Path, **env: str) -> subprocess.Popen:
    """Start a command in the background, its output in `<repo>.log` (shown when a wait times out)."""
    inherited = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    full_env = {**inherited, **FAST_ENV, "EVUD_PROGRESS": "0", "DVC_NO_ANALYTICS": "1", **env}
    log = open(repo.with_suffix(".log"), "w")
    return subprocess.Popen(cmd, cwd=repo, env=full_env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)


def stage_process(parent: subprocess.Popen, module: str, timeout: float = 60) -> psutil.Process:
    """The Python interpreter running `-m <module>` that DVC started for a stage.

    Only an interpreter counts, and only the topmost one: where `python` is a shim script (pyenv), the shim and the
    subshells it forks carry the same command line for a moment and then vanish; forks of the stage do too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parents = _interpreters_of(module, psutil.Process(parent.pid).children(recursive=True))
        topmost = [process for process, ppid in parents.values() if ppid not in parents]
        if topmost:
            return topmost[0]
        time.sleep(0.02)
    raise AssertionError(f"no {module} process appeared")


def _interpreters_of(module: str, processes: list[psutil.Process]) -> dict[int, tuple[psutil.Process, int]]:
    """{pid: (process, parent pid)} of the Python interpreters among `processes` running `-m <module>`; one that
    vanishes while it is read is left out (that is the race this helper is for)."""
    found = {}
    for process in processes:
        try:
            args = process.cmdline()
            if "python" in process.name() and any(args[i:i + 2] == ["-m", module] for i in range(len(args))):
                found[process.pid] = (process, process.ppid())
        except psutil.Error:
            continue
    return found


def wait_until(condition, timeout: float = 60, what: str = "condition", log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()}" if log else ""))
        time.sleep(0.01)


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def select_many_reencoded(repo: Path) -> Path:
    """Params that select the `many` group's 28 windows, cut by slow re-encoding (time to interrupt it)."""
    config = repo / "conf/config.yaml"
    config.write_text(config.read_text().replace("  - data: sample", "  - data: many")
                      .replace("preset: superfast", "preset: slow"))
    recompose(repo)
    return repo
