"""A git + DVC repository whose DVC cache holds versions of data/responses.jsonl named by the workspace's dvc.lock,
HEAD's, experiment refs (refs/exps/...) and run-cache entries, as `dvc exp run` leaves them, without running a stage:
for the lookup of answers DVC's cache holds (evud.gemini.asking.CachedAnswers), its tests and its benchmark."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

OUT = "data/responses.jsonl"


def run(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def key_of(model: str, i: int) -> str:
    return hashlib.sha256(f"{model}-{i}".encode()).hexdigest()


def version_bytes(model: str, keys: int) -> bytes:
    """A responses.jsonl of `keys` answers of one model: lines the size of real ones (text ~1.5 kB, raw response)."""
    lines = []
    for i in range(keys):
        text = f"Category: world knowledge\nQuestion: what is shown in clip {i}?\nShort answer: a pan\n" * 20
        lines.append(json.dumps({
            "video_uid": "v", "clip_uid": "c", "annotation_uid": f"a{i:06d}", "language_query_index": 0,
            "clip_sha256": hashlib.sha256(str(i).encode()).hexdigest(), "request_key": key_of(model, i),
            "model": model, "backend": "vertex", "status": "ok", "finish_reason": "STOP", "text": text,
            "usage": {"prompt_tokens": 2000, "output_tokens": 450, "total_tokens": 2450},
            "response": {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                         "finishReason": "STOP"}], "modelVersion": model},
            "answered_at": "2026-12-01T00:00:00Z"}, sort_keys=True))
    return ("\n".join(lines) + "\n").encode()


def cache_version(repo: Path, data: bytes) -> str:
    """Put a file into DVC's local cache (files/md5/xx/rest, as DVC 3 lays it out); its md5."""
    md5 = hashlib.md5(data).hexdigest()
    path = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5


def lock_text(md5: str) -> str:
    return yaml.safe_dump({"schema": "2.0", "stages": {"generate": {
        "cmd": "python -m stages.generate", "outs": [{"path": OUT, "hash": "md5", "md5": md5}]}}})


def make_repository(repo: Path, keys: int, experiments: int, run_cache: int) -> list[str]:
    """The repository and its versions; the models, newest (the workspace's) first."""
    repo.mkdir(parents=True)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    models = [f"model-{n}" for n in range(2 + experiments + run_cache)]
    md5s = {model: cache_version(repo, version_bytes(model, keys)) for model in models}
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.com"]
    (repo / "dvc.lock").write_text(lock_text(md5s[models[1]]))
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "HEAD"], repo)
    for n, model in enumerate(models[2:2 + experiments]):  # experiment refs, as dvc exp run leaves them
        (repo / "dvc.lock").write_text(lock_text(md5s[model]))
        run([*git, "add", "dvc.lock"], repo)
        tree = run(["git", "write-tree"], repo).strip()
        commit = run([*git, "commit-tree", tree, "-p", "HEAD", "-m", f"exp {n}"], repo).strip()
        run(["git", "update-ref", f"refs/exps/ab/cdef{n:04d}/exp-{n}", commit], repo)
    for n, model in enumerate(models[2 + experiments:]):  # run-cache entries, as DVC's stage cache writes them
        entry = repo / ".dvc/cache/runs" / f"{n:02x}" / f"{n:064x}" / f"{n + 1:064x}"
        entry.parent.mkdir(parents=True)
        entry.write_text(yaml.safe_dump({"cmd": "python -m stages.generate",
                                         "outs": [{"path": OUT, "hash": "md5", "md5": md5s[model]}]}))
    (repo / "dvc.lock").write_text(lock_text(md5s[models[0]]))  # the workspace's: not committed yet
    return models
