"""Paid work survives every way users run DVC: answers and cut clips are never paid or cut twice.

Each test drives the real pipeline (`dvc repro`, `dvc exp run`, `exp apply`, `--queue`, `--temp`, kill -9)
in a fresh copy of the repository, with generate on the vertex backend against the local Vertex server,
which counts the generateContent requests it receives: each one is an answer paid for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import boto3
import psutil
import pytest

from evud.gemini.answer_store import AnswerStore
from tests.support.cloud import FAKE_AWS, moto_s3
from tests.support.fake_vertex import FakeVertex
from evud.clips.prepare import run as cut_all_windows
from evud.core.params import load_section
from tests.support.pipeline import (
    MODEL_A,
    MODEL_B,
    SAMPLE_CLIPS,
    dvc,
    select_many_reencoded,
    stage_process,
    start,
    use_fake_vertex,
    wait_until,
    working_directory,
)
from tests.support.repo import copy_repo, git_commit_all, run, tree_digest


# What these tests pay for is asked by generate and verify: their experiments stop there (`dvc exp run verify`), as a
# user may, instead of also building the dataset, its page and its export each time (seconds per run, no paid call).
UP_TO_VERIFY = ("verify",)


def last_reuse(repo: Path, stage: str) -> dict[str, int]:
    """Where the answers the stage's last run reused came from, as its run report says."""
    reports = sorted((repo / ".evud/reports" / stage).glob("*.json"))
    return json.loads(reports[-1].read_text())["reused_from"]


@pytest.fixture
def vertex_repo(reproduced_copy: Path, fake_vertex: FakeVertex) -> Path:
    """A reproduced sample (clips cut, replay answers) switched to the vertex backend at the local server."""
    use_fake_vertex(reproduced_copy, fake_vertex)
    return reproduced_copy


def test_exp_apply_then_rerun_a_temp_run_and_a_deleted_store_pay_nothing_again(vertex_repo: Path,
                                                                               fake_vertex: FakeVertex):
    """Experiments a and b, then every way back to their settings pays nothing: exp apply, the run cache, --temp,
    and, once the store is deleted and every experiment removed, the answers DVC's cache holds. (Two tests merged,
    every assertion kept: both began with the same two experiments.)"""
    dvc(vertex_repo, "exp", "run", "-n", "a", *UP_TO_VERIFY, "-S", f"gemini.model={MODEL_A}")
    dvc(vertex_repo, "exp", "run", "-n", "b", *UP_TO_VERIFY, "-S", f"gemini.model={MODEL_B}")
    assert fake_vertex.total_calls == 2 * SAMPLE_CLIPS and fake_vertex.checks["blind"] >= SAMPLE_CLIPS
    dvc(vertex_repo, "exp", "apply", "a")
    fake_vertex.reset_counts()
    dvc(vertex_repo, "exp", "run", *UP_TO_VERIFY, "-S", f"gemini.model={MODEL_B}", "-S", "gemini.inline_limit_mb=254")
    assert fake_vertex.all_calls == 0  # generate's answers and verify's checks: none paid twice
    # ... served by the answer store (b's outs in DVC's cache hold them too: a store never read would pass above;
    # verify's outs, unchanged, come back from DVC's run cache).
    assert last_reuse(vertex_repo, "generate") == {"answer_store": SAMPLE_CLIPS, "dvc_cache": 0, "another_run": 0}
    # Back to a setting run before, nothing else changed: DVC's run cache restores the outs (no persisted out).
    result = dvc(vertex_repo, "exp", "run", *UP_TO_VERIFY, "-S", f"gemini.model={MODEL_A}")
    assert "Stage 'generate' is cached - skipping run" in result.stdout, result.stdout
    assert fake_vertex.all_calls == 0
    # A --temp run (a copy of the workspace elsewhere) of a setting the workspace answered, with a param that
    # re-runs generate (so not served by the run cache): the shared answer store serves it.
    dvc(vertex_repo, "exp", "run", "--temp", *UP_TO_VERIFY, "-S", f"gemini.model={MODEL_A}", "-S", "gemini.inline_limit_mb=253")
    assert fake_vertex.all_calls == 0
    # The README: "nothing is lost that the versioned outs and DVC's cache do not hold". With the store deleted and
    # every experiment removed, a's answers are in the workspace's lock (a's setting ran last) and b's only in the
    # run cache: both come back from the responses.jsonl (and verdicts.jsonl) DVC's cache holds.
    shutil.rmtree(vertex_repo / ".evud")
    dvc(vertex_repo, "exp", "remove", "--all-commits")
    assert dvc(vertex_repo, "exp", "list", "--all-commits").stdout.strip() == ""
    fake_vertex.reset_counts()
    for model in (MODEL_A, MODEL_B):  # a new inline limit re-runs generate: no run cache entry
        result = dvc(vertex_repo, "exp", "run", *UP_TO_VERIFY, "-S", f"gemini.model={model}", "-S",
                     "gemini.inline_limit_mb=252")
        assert "7 clips, 7 answered before" in result.stderr, result.stderr
        assert last_reuse(vertex_repo, "generate") == {"answer_store": 0, "dvc_cache": SAMPLE_CLIPS, "another_run": 0}
    assert fake_vertex.all_calls == 0  # verify's checks too


def test_queued_experiments_pay_each_answer_once_whether_they_run_at_once_or_later(vertex_repo: Path,
                                                                                 fake_vertex: FakeVertex):
    """Three queued experiments asking the same 7 requests, run two at a time: the first two ask at the same time
    (claims: one waits for the other's answers), the third starts when one has finished, with a param that
    re-runs generate (so DVC's run cache cannot serve it). 7 requests paid in all: none twice."""
    fake_vertex.latency_s = 0.3  # the first two are asking at the same time
    for seed in (1, 2):  # same requests, different postprocess: generate is identical in both
        dvc(vertex_repo, "exp", "run", "--queue", "-S", f"gemini.model={MODEL_A}", "-S", f"post.seed={seed}")
    dvc(vertex_repo, "exp", "run", "--queue", "-S", f"gemini.model={MODEL_A}", "-S", "gemini.inline_limit_mb=251")
    dvc(vertex_repo, "exp", "run", "--run-all", "-j", "2")  # one queue start-up for the three
    status = dvc(vertex_repo, "queue", "status").stdout
    assert status.count("Success") == 3, status + "\n".join(
        dvc(vertex_repo, "queue", "logs", line.split()[0], check=False).stdout[-3000:]
        for line in status.splitlines()[1:] if "Failed" in line)
    assert fake_vertex.total_calls == SAMPLE_CLIPS
    assert max(fake_vertex.calls.values()) == 1
    assert fake_vertex.checks == {"blind": SAMPLE_CLIPS}  # verify's checks too: each paid once, by one of the runs


def test_transient_failures_are_asked_again_by_the_next_plain_repro(vertex_repo: Path, fake_vertex: FakeVertex):
    fake_vertex.default = 503  # every attempt of every clip
    failed = dvc(vertex_repo, "repro", check=False)
    assert failed.returncode != 0
    assert "asks these 7 again" in failed.stderr, failed.stderr
    fake_vertex.default = "ok"
    fake_vertex.reset_counts()
    dvc(vertex_repo, "repro")
    assert fake_vertex.total_calls == SAMPLE_CLIPS
    dataset = json.loads((vertex_repo / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == SAMPLE_CLIPS


def test_failures_can_be_accepted_to_build_the_dataset_from_what_succeeded(vertex_repo: Path, fake_vertex: FakeVertex):
    clips = [json.loads(line) for line in (vertex_repo / "data/clips.jsonl").read_text().splitlines()]
    doomed = next(c["sha256"] for c in clips if c["status"] == "ok")
    fake_vertex.script(doomed, *[503] * 50)
    dvc(vertex_repo, "repro", EVUD_ALLOW_FAILED="1")
    dataset = json.loads((vertex_repo / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == SAMPLE_CLIPS - 1


def test_reask_rejected_asks_again_a_rejection_that_dvc_cache_holds(vertex_repo: Path, fake_vertex: FakeVertex):
    """EVUD_REASK_REJECTED=1 asks a rejected request again even though the responses.jsonl dvc.lock recorded (in
    DVC's cache) holds the rejection too: no cached version serves a rejection when a re-ask is asked for."""
    clips = [json.loads(line) for line in (vertex_repo / "data/clips.jsonl").read_text().splitlines()]
    invalid = next(c["sha256"] for c in clips if c["status"] == "ok")
    fake_vertex.script(invalid, 400)
    dvc(vertex_repo, "repro", "generate")  # the rejection is final: generate is locked with it
    fake_vertex.reset_counts()
    dvc(vertex_repo, "repro", "-f", "-s", "generate", EVUD_REASK_REJECTED="1")
    assert dict(fake_vertex.calls) == {invalid: 1}
    responses = [json.loads(line) for line in (vertex_repo / "data/responses.jsonl").read_text().splitlines()]
    assert {r["status"] for r in responses} == {"ok"}


def test_kill_9_of_generate_then_exp_run_asks_only_the_unanswered(many_clips_copy: Path, fake_vertex: FakeVertex):
    repo = many_clips_copy
    use_fake_vertex(repo, fake_vertex, data_group="many")
    dvc(repo, "repro", "prepare")
    git_commit_all(repo, "clips")
    fake_vertex.hold_after(8)  # 8 answers, then every request hangs: the run is killed with 8 paid
    runner = start(["dvc", "exp", "run", "-S", f"gemini.model={MODEL_A}"], repo, EVUD_CONCURRENCY="2")
    generate = stage_process(runner, "stages.generate")
    # The kill comes once the 8 answers are stored, not after a fixed pause (which raced a loaded machine).
    store = AnswerStore(str(repo / ".evud/answers"))
    wait_until(lambda: len(store.keys()) >= 8, what="8 stored answers", log=repo.with_suffix(".log"))
    generate.kill()
    runner.wait(timeout=60)
    fake_vertex.release()
    fake_vertex.reset_counts()
    dvc(repo, "exp", "run", *UP_TO_VERIFY, "-S", f"gemini.model={MODEL_A}")
    assert fake_vertex.total_calls == 28 - 8


def test_kill_9_of_verify_then_exp_run_asks_only_the_unanswered_checks(many_clips_copy: Path,
                                                                        fake_vertex: FakeVertex):
    repo = many_clips_copy
    use_fake_vertex(repo, fake_vertex, data_group="many")
    dvc(repo, "repro", "generate")
    git_commit_all(repo, "clips and answers")
    fake_vertex.reset_counts()
    fake_vertex.hold_after(8)  # 8 blind checks answered, then every request hangs: verify is killed with 8 paid
    runner = start(["dvc", "exp", "run"], repo, EVUD_CONCURRENCY="2")
    verify = stage_process(runner, "stages.verify")
    store = AnswerStore(str(repo / ".evud/answers"))
    wait_until(lambda: len(store.keys()) >= 28 + 8, what="8 stored checks", log=repo.with_suffix(".log"))
    verify.kill()
    runner.wait(timeout=60)
    fake_vertex.release()
    fake_vertex.reset_counts()
    dvc(repo, "exp", "run", *UP_TO_VERIFY)
    assert fake_vertex.checks == {"blind": 28 - 8} and fake_vertex.total_calls == 0
    verdicts = (repo / "data/verdicts.jsonl").read_text().splitlines()
    assert len(verdicts) == 28 and all(json.loads(line)["checks"] for line in verdicts)


def test_kill_9_of_prepare_leaves_no_worker_and_the_rerun_cuts_only_the_rest(many_clips_copy: Path, tmp_path: Path):
    repo = select_many_reencoded(many_clips_copy)
    git_commit_all(repo, "many clips, re-encoded")
    clips = repo / "data/clips"
    stored = lambda: len(list((repo / ".evud/clips").glob("*/*.json")))  # noqa: E731  clips recorded in the store
    runner = start(["dvc", "exp", "run", "prepare"], repo, EVUD_WORKERS="2")
    prepare = stage_process(runner, "stages.prepare")
    wait_until(lambda: len(prepare.children()) >= 2, what="prepare's workers")
    workers = prepare.children()
    wait_until(lambda: stored() >= 16, what="16 clips", log=repo.with_suffix(".log"))
    prepare.kill()
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"workers outlived their parent: {alive}"
    runner.wait(timeout=60)
    finished = stored()
    assert 16 <= finished < 28
    result = dvc(repo, "exp", "run", "prepare")
    cut_line = next(line for line in result.stderr.splitlines() if "windows selected" in line)
    assert f"{finished} already done" in cut_line and f"{28 - finished} to cut" in cut_line, cut_line
    # The same windows cut in one go, with a store of their own (the stage's work, in this process).
    uninterrupted = tmp_path / "uninterrupted"
    sections = [load_section(name, repo / "params.yaml") for name in ("data", "clip", "gcs")]
    with working_directory(repo):  # the params' paths are relative to the repository
        cut_all_windows(*sections, uninterrupted / "clips", uninterrupted / "clips.jsonl", uninterrupted / "metrics.json",
                        workers=2, store_dir=uninterrupted / "store")
    assert tree_digest(clips) == tree_digest(uninterrupted / "clips")


def test_a_fresh_clone_sharing_an_s3_answer_store_pays_nothing(golden_sample: Path, tmp_path: Path,
                                                              fake_vertex: FakeVertex):
    with moto_s3() as (_, endpoint):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="team-answers")
        env = {**FAKE_AWS, "AWS_ENDPOINT_URL_S3": endpoint, "EVUD_ANSWER_STORE": "s3://team-answers/evud"}
        # Two clones that ran the offline sample: neither holds a vertex answer of its own.
        first = copy_repo(golden_sample, tmp_path / "first")
        use_fake_vertex(first, fake_vertex)
        dvc(first, "repro", **env)
        assert fake_vertex.total_calls == SAMPLE_CLIPS
        fake_vertex.reset_counts()
        second = copy_repo(golden_sample, tmp_path / "second")
        use_fake_vertex(second, fake_vertex)
        dvc(second, "repro", **env)
        assert fake_vertex.all_calls == 0
        assert (second / "data/ego4d_vqa_gemini.json").read_bytes() == (first / "data/ego4d_vqa_gemini.json").read_bytes()


def test_a_fresh_clone_after_dvc_pull_cuts_and_pays_nothing(vertex_repo: Path, fake_vertex: FakeVertex):
    """The outs dvc.lock recorded (in DVC's cache after `dvc pull`) refill an empty store: DVC deleted
    responses.jsonl before generate re-ran, and the answers it held come back from DVC's cache."""
    dvc(vertex_repo, "repro")
    git_commit_all(vertex_repo, "run")
    shutil.rmtree(vertex_repo / ".evud")  # a teammate's clone: outs pulled, no store of their own
    fake_vertex.reset_counts()
    # Params that re-run prepare and generate without changing a clip or a request.
    result = dvc(vertex_repo, "exp", "run", "-S", "data.min_window_sec=0.6", "-S", "gemini.inline_limit_mb=250")
    assert "7 already done (7 from the last locked clips)" in result.stderr, result.stderr
    assert "7 clips, 7 answered before" in result.stderr and "generate: 0 call(s)" in result.stderr
    assert fake_vertex.total_calls == 0


def test_two_runs_cutting_the_same_windows_at_once_cut_each_clip_once(many_clips_copy: Path, tmp_path: Path):
    """Two queued experiments that both re-run prepare share the main repository's clip store: claims make the
    second wait for the clip the first is cutting, as they do for answers (28 windows, slow re-encoding)."""
    first = select_many_reencoded(many_clips_copy)
    second = copy_repo(first, tmp_path / "second")
    shared = tmp_path / "shared-store"  # what DVC_ROOT gives queued and temp runs: the main repository's .evud
    cmd = [sys.executable, "-m", "stages.prepare", "--clips-dir", "data/clips", "--manifest", "data/clips.jsonl",
           "--metrics", "metrics/prepare.json"]
    runs = [start(cmd, repo, EVUD_WORKERS="2", EVUD_STORE=str(shared)) for repo in (first, second)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0], [repo.with_suffix(".log").read_text() for repo in (first, second)]
    cuts = [json.loads(report.read_text())["cut"] for report in (shared / "reports/prepare").glob("*.json")]
    assert len(cuts) == 2 and sum(cuts) == 28, cuts
    manifests = [[(r["clip_path"], r["sha256"]) for r in map(json.loads, (repo / "data/clips.jsonl").read_text().splitlines())]
                 for repo in (first, second)]
    assert manifests[0] == manifests[1] and all(sha for _, sha in manifests[0])


def test_ctrl_c_ends_prepare_with_one_line_and_no_worker_left(many_clips_copy: Path):
    repo = select_many_reencoded(many_clips_copy)
    cmd = [sys.executable, "-m", "stages.prepare", "--clips-dir", "data/clips", "--manifest", "data/clips.jsonl",
           "--metrics", "metrics/prepare.json"]
    stored = lambda: len(list((repo / ".evud/clips").glob("*/*.json")))  # noqa: E731
    child = start(cmd, repo, EVUD_WORKERS="2")
    wait_until(lambda: stored() >= 4, what="4 clips", log=repo.with_suffix(".log"))
    workers = psutil.Process(child.pid).children()
    os.killpg(child.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group on Ctrl-C
    assert child.wait(timeout=30) != 0
    psutil.wait_procs(workers, timeout=5)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    output = repo.with_suffix(".log").read_text()
    assert "Traceback" not in output, output
    assert output.strip().splitlines()[-1].startswith("prepare: interrupted; every clip finished so far is kept")
    assert not list((repo / ".evud/clips").glob("*/*.part"))  # the clips in flight leave nothing half-written
    finished = stored()
    again = run(cmd, repo)
    assert f"{finished} already done" in again.stderr and f"{28 - finished} to cut" in again.stderr
