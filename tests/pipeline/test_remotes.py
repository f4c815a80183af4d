"""Team reproducibility: every artifact goes through a DVC remote (S3 via moto, GCS via the emulator) and back.

Each scenario: A (a clone that ran the pipeline) pushes, B clones and pulls, and finds nothing to redo.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from tests.support.cloud import gcs_emulator, moto_s3
from tests.support.repo import copy_repo, git_commit_all, run, stages_run

OUTPUTS = ["data/clips.jsonl", "data/responses.jsonl", "data/ego4d_vqa_gemini.json", "data/rejects.jsonl"]


def team_of_two(golden: Path, tmp_path: Path, remote_url: str, remote_options: dict[str, str]) -> tuple[Path, Path, Path]:
    """Clone A (a reproduced sample, set up with a default DVC remote and a shared git remote), where B will be, and
    the bare git remote."""
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    a = copy_repo(golden, tmp_path / "a")
    run(["dvc", "remote", "add", "-d", "storage", remote_url], a)
    for key, value in remote_options.items():
        run(["dvc", "remote", "modify", "storage", key, value], a)
    run(["git", "remote", "add", "origin", str(origin)], a)
    return a, tmp_path / "b", origin


def clone(origin: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], origin.parent)
    run(["git", "config", "user.name", "evud tests"], dest)
    run(["git", "config", "user.email", "tests@example.com"], dest)
    return dest


def push_run_and_pull(a: Path, b: Path, origin: Path) -> None:
    """A reproduces (nothing left to run) and pushes; B clones, pulls, and must find every stage up to date."""
    run(["dvc", "repro"], a)
    git_commit_all(a, "pipeline run")
    run(["git", "push", "-q", "origin", "main"], a)
    run(["dvc", "push"], a)
    clone(origin, b)
    run(["dvc", "pull"], b)
    result = run(["dvc", "repro"], b)
    assert stages_run(result.stdout) == set(), result.stdout  # no clip cut, no Gemini request
    assert "Data and pipelines are up to date" in run(["dvc", "status"], b).stdout
    for name in OUTPUTS:
        assert (b / name).read_bytes() == (a / name).read_bytes(), name
    clips = sorted(p.relative_to(b).as_posix() for p in (b / "data/clips").rglob("*.mp4"))
    assert len(clips) == 7 and all((a / c).read_bytes() == (b / c).read_bytes() for c in clips)


def test_s3_remote_push_then_pull_needs_no_rerun_and_an_experiment_travels_through_git_and_it(golden_sample: Path,
                                                                                              tmp_path: Path):
    with moto_s3() as (_, endpoint):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="evud-dvc-remote")
        a, b, origin = team_of_two(golden_sample, tmp_path, "s3://evud-dvc-remote/cache", {"endpointurl": endpoint})
        push_run_and_pull(a, b, origin)
        listed = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="evud-dvc-remote")
        assert listed["KeyCount"] > 7  # clips, manifest, responses, dataset went through S3

        # An experiment of A's reaches B through the git remote (its ref) and the DVC remote (its outs).
        result = run(["dvc", "exp", "run", "-n", "lite", "-S", "gemini.model=gemini-3.1-flash-lite"], a)
        assert stages_run(result.stdout) == {"generate", "verify", "postprocess", "browse", "export"}
        dataset_a = (a / "data/ego4d_vqa_gemini.json").read_bytes()
        responses_a = (a / "data/responses.jsonl").read_bytes()
        run(["dvc", "exp", "push", "origin", "lite"], a)
        run(["dvc", "exp", "pull", "origin", "lite"], b)
        assert "lite" in run(["dvc", "exp", "list", "--all-commits"], b).stdout
        run(["dvc", "exp", "apply", "lite"], b)
        assert (b / "data/ego4d_vqa_gemini.json").read_bytes() == dataset_a
        assert (b / "data/responses.jsonl").read_bytes() == responses_a
        models = {json.loads(line)["model"] for line in responses_a.decode().splitlines()}
        assert models == {"gemini-3.1-flash-lite"}


def test_gcs_remote_push_then_pull_needs_no_rerun(golden_sample: Path, tmp_path: Path):
    with gcs_emulator("evud-dvc-remote"):
        a, b, origin = team_of_two(golden_sample, tmp_path, "gs://evud-dvc-remote/cache", {})
        push_run_and_pull(a, b, origin)
