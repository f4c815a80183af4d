"""The pipeline as a user drives it: `dvc repro` and `dvc exp run` on the bundled sample, in fresh copies."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from tests.support.repo import PROJECT_ROOT, git_commit_all, make_repo_copy, project_files, run, stages_run, tree_digest

OUTPUTS = ["data/clips.jsonl", "data/responses.jsonl", "data/verdicts.jsonl", "data/ego4d_vqa_gemini.json",
           "data/rejects.jsonl"]


def test_repro_makes_the_dataset_and_is_byte_identical_across_fresh_copies(reproduced_sample: Path, tmp_path: Path):
    dataset = json.loads((reproduced_sample / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == 5  # 7 clips cut; one answer blocked, one malformed
    other = make_repo_copy(tmp_path / "again")
    result = run(["dvc", "repro"], other)
    assert stages_run(result.stdout) == {"prepare", "generate", "verify", "postprocess", "browse", "export"}  # offline
    for name in OUTPUTS:
        assert (other / name).read_bytes() == (reproduced_sample / name).read_bytes(), name
    assert tree_digest(other / "data/clips") == tree_digest(reproduced_sample / "data/clips")


def test_second_repro_does_nothing(reproduced_sample: Path):
    result = run(["dvc", "repro"], reproduced_sample)
    assert stages_run(result.stdout) == set()
    assert "Data and pipelines are up to date" in run(["dvc", "status"], reproduced_sample).stdout


def test_model_change_reruns_only_the_stages_after_prepare(reproduced_copy: Path):
    repo_copy = reproduced_copy
    clip_times = {p: p.stat().st_mtime_ns for p in (repo_copy / "data/clips").rglob("*.mp4")}
    result = run(["dvc", "exp", "run", "-S", "gemini.model=gemini-3.1-flash-lite"], repo_copy)
    assert stages_run(result.stdout) == {"generate", "verify", "postprocess", "browse", "export"}
    assert "Stage 'prepare' didn't change, skipping" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in clip_times} == clip_times  # no clip was re-cut
    responses = [json.loads(line) for line in (repo_copy / "data/responses.jsonl").read_text().splitlines()]
    assert {r["model"] for r in responses} == {"gemini-3.1-flash-lite"}


def test_a_seed_change_reruns_postprocess_browse_and_export_and_a_prompt_change_never_recuts(reproduced_copy: Path):
    repo_copy = reproduced_copy
    before = (repo_copy / "data/ego4d_vqa_gemini.json").read_text()
    result = run(["dvc", "exp", "run", "-S", "post.seed=7"], repo_copy)
    assert stages_run(result.stdout) == {"postprocess", "browse", "export"}
    after = (repo_copy / "data/ego4d_vqa_gemini.json").read_text()
    assert before != after  # another shuffle of the same pairs
    assert [r["category_question_answer_tuples"] for r in json.loads(before)] == \
        [r["category_question_answer_tuples"] for r in json.loads(after)]
    git_commit_all(repo_copy, "seed experiment")
    # Every `dvc exp run` composes conf/ afresh, so post.seed returns to its default here too.
    result = run(["dvc", "exp", "run", "-S", "prompt.text=Describe the video in one sentence."], repo_copy)
    # The dataset is unchanged (same answers from the replay backend): export does not run.
    assert stages_run(result.stdout) == {"generate", "verify", "postprocess", "browse"}


def test_a_verdict_policy_change_reruns_postprocess_browse_and_export_never_a_check(reproduced_copy: Path):
    repo = reproduced_copy
    verdicts = [json.loads(line) for line in (repo / "data/verdicts.jsonl").read_text().splitlines()]
    planted = sum(p["verdict"] == "blind_answerable" for r in verdicts for p in r["pairs"])
    before = json.loads((repo / "data/ego4d_vqa_gemini.json").read_text())
    result = run(["dvc", "exp", "run", "-S", "post.verdicts.blind_answerable=drop",
                  "-S", "post.require_all_categories=false"], repo)
    assert stages_run(result.stdout) == {"postprocess", "browse", "export"}  # neither generate nor verify
    after = json.loads((repo / "data/ego4d_vqa_gemini.json").read_text())
    pairs = lambda records: [p for r in records for p in r["category_question_answer_tuples"]]  # noqa: E731
    assert planted == 7 and len(pairs(after)) == len(pairs(before)) - planted
    assert not [p for p in pairs(after) if p["verdict"] == "blind_answerable"]
    rejects = [json.loads(line) for line in (repo / "data/rejects.jsonl").read_text().splitlines()]
    assert sum(r["reason"] == "verdict_blind_answerable" for r in rejects) == planted
    assert '"verdict_actions":["keep","drop","drop","keep"]' in (repo / "data/browse/data.js").read_text()


def param_keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return {str(k).lower() for k in value} | {k for v in value.values() for k in param_keys(v)}
    return set()


def test_runtime_knobs_are_not_params(reproduced_sample: Path):
    """Every EVUD_* knob the code reads changes no output: none is a key of params.yaml, and changing them
    re-runs nothing."""
    code = [*(PROJECT_ROOT / "evud").rglob("*.py"), *(PROJECT_ROOT / "stages").glob("*.py")]
    knobs = {m for p in code for m in re.findall(r'"EVUD_([A-Z_]+)"', p.read_text())}
    assert {"WORKERS", "CONCURRENCY", "MAX_RPM", "STORE", "ALLOW_FAILED"} <= knobs
    keys = param_keys(yaml.safe_load((reproduced_sample / "params.yaml").read_text()))
    assert not {k.lower() for k in knobs} & keys
    changed = {f"EVUD_{k}": "1" for k in ("WORKERS", "CONCURRENCY", "MAX_RPM", "RETRY_ATTEMPTS")}
    assert stages_run(run(["dvc", "repro"], reproduced_sample, env=changed).stdout) == set()


def test_blocked_and_malformed_answers_are_rejected_with_reasons(reproduced_sample: Path):
    rejects = [json.loads(line) for line in (reproduced_sample / "data/rejects.jsonl").read_text().splitlines()]
    reasons = {(r["reason"], r["detail"]) for r in rejects}
    assert ("response_blocked", "SAFETY") in reasons
    assert any(reason == "no_qa_blocks" for reason, _ in reasons)
    assert len({r["key"] for r in rejects}) == 2  # exactly the blocked and the malformed clip
    dataset = json.loads((reproduced_sample / "data/ego4d_vqa_gemini.json").read_text())
    assert all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    rejected = {r["key"] for r in rejects}
    assert not rejected & {r["id"] for r in dataset}


def test_path_like_uid_is_rejected_and_nothing_escapes_data(reproduced_sample: Path, golden_sample: Path):
    manifest = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    escaped = [r for r in manifest if r["annotation_uid"] == "../escape"]
    assert len(escaped) == 1 and escaped[0]["status"] == "skipped"
    assert "unsafe_uid" in escaped[0]["reason"] and "../escape" in escaped[0]["reason"]
    # Where the sample was reproduced (the copies tests read are made afterwards).
    everything = [p for p in golden_sample.parent.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts]
    assert not [p for p in everything if "escape" in p.name]
    inputs = {reproduced_sample / name for name in project_files()}  # the bundled videos of every source
    written = {p for p in (reproduced_sample / "data").rglob("*") if p.suffix.lower() == ".mp4" and p not in inputs}
    clip_folders = [(reproduced_sample / folder).resolve() for folder in ("data/clips", "data/hf/clips")]
    assert written and all(any(p.resolve().is_relative_to(folder) for folder in clip_folders) for p in written)


def test_every_query_ends_ok_or_recorded_with_a_reason(reproduced_sample: Path):
    manifest = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    nlq = json.loads((reproduced_sample / "data/sample/nlq_train.json").read_text())
    queries = sum(len(a["language_queries"]) for v in nlq["videos"] for c in v["clips"] for a in c["annotations"])
    assert len(manifest) == queries
    for record in manifest:
        assert record["status"] == "ok" or record["reason"], record
    reasons = {r["reason"].split(":")[0] for r in manifest if r["status"] != "ok"}
    assert reasons == {"unsafe_uid", "unknown_video", "window_outside_video", "empty_window"}
    assert os.path.exists(reproduced_sample / "metrics/prepare.json")


def manifest_matches_clips(repo: Path) -> None:
    manifest = [json.loads(line) for line in (repo / "data/clips.jsonl").read_text().splitlines()]
    for record in (r for r in manifest if r["status"] == "ok"):
        data = (repo / "data/clips" / record["clip_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"], record["clip_path"]


@pytest.mark.parametrize("how", [["dvc", "repro"], ["dvc", "repro", "--force", "--single-item", "prepare"]])
def test_a_clip_edited_on_disk_is_never_recorded_with_another_files_sha256(reproduced_copy: Path, how: list[str]):
    repo = reproduced_copy
    victim = sorted((repo / "data/clips").rglob("*.mp4"))[0]
    with open(victim, "ab") as f:  # edited in place: a hard link into the clip store sees it too
        f.write(b"edited")
    assert "modified" in run(["dvc", "status"], repo).stdout
    run(how, repo)  # DVC's run cache restores the clips, or prepare re-checks them against the store
    manifest_matches_clips(repo)
    assert b"edited" not in victim.read_bytes()
    run(["dvc", "repro"], repo)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout


def test_outputs_have_the_mode_the_umask_gives(reproduced_sample: Path):
    """A web server running as another user must be able to serve the browse site: no output is private to its
    writer (a temp file renamed into place is mode 0600 unless its mode is set). Outs that DVC links into its cache
    are read-only for everyone (DVC's protection of the shared file), which serves as well."""
    umask = os.umask(0)
    os.umask(umask)
    allowed = {0o666 & ~umask, 0o444}
    outputs = [p for p in (reproduced_sample / "data").rglob("*") if p.is_file() and "sample" not in p.parts
               and "replay" not in p.parts and "gold" not in p.parts and "ego4d" not in p.parts]
    outputs += list((reproduced_sample / "metrics").glob("*.json")) + list((reproduced_sample / "plots").glob("*.json"))
    assert any("browse" in p.parts for p in outputs) and any(p.suffix == ".mp4" for p in outputs)
    wrong = {p.relative_to(reproduced_sample).as_posix(): oct(p.stat().st_mode & 0o777) for p in outputs
             if p.stat().st_mode & 0o777 not in allowed}
    assert not wrong, f"expected one of {sorted(map(oct, allowed))}: {wrong}"
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~umask for p in (reproduced_sample / "metrics").glob("*.json"))


def test_each_clip_is_on_disk_once_where_the_file_system_can_link(golden_sample: Path):
    """A fresh clone's `dvc repro`: the clip store, data/clips and DVC's cache are three names of one file (the
    published run's clips are ~130 GB; three copies would be ~390 GB). DVC protects the shared file: read-only."""
    manifest = [json.loads(line) for line in (golden_sample / "data/clips.jsonl").read_text().splitlines()]
    clips = [r for r in manifest if r["status"] == "ok"]
    assert len(clips) == 7
    for record in clips:
        workspace = golden_sample / "data/clips" / record["clip_path"]
        stored = golden_sample / ".evud/clips" / record["cut_key"][:2] / f"{record['cut_key']}.mp4"
        md5 = hashlib.md5(workspace.read_bytes()).hexdigest()
        cached = golden_sample / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
        assert workspace.stat().st_ino == stored.stat().st_ino == cached.stat().st_ino, record["clip_path"]
        assert workspace.stat().st_mode & 0o222 == 0, "a linked out must be read-only (never edited in place)"


def test_settings_that_change_no_answer_rerun_nothing(reproduced_copy: Path):
    """A budget, an endpoint, the project, location, batch bucket or replay file changes no answer (the request key
    leaves them out), so raising a budget or moving a bucket re-runs no stage (`dvc status` is what repro runs)."""
    params = yaml.safe_load((reproduced_copy / "params.yaml").read_text())
    params["gemini"].update(max_cost_usd=1000.0, base_url="http://127.0.0.1:9/", project="another-project",
                            location="us-central1", batch_bucket="another-bucket", batch_prefix="elsewhere")
    params["verify"].update(max_cost_usd=5.0)
    (reproduced_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "Data and pipelines are up to date" in run(["dvc", "status"], reproduced_copy).stdout
