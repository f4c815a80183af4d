"""Where paid work is kept, atomic writes, and reading the outs dvc.lock recorded from DVC's cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evud.core.store import answer_store_url, locked_directory, locked_file, store_root, write_atomic
from tests.support.repo import run


def test_the_store_is_evud_store_else_dvc_root_else_the_nearest_repository(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("EVUD_STORE", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "repo/.dvc").mkdir(parents=True)
    (tmp_path / "repo/data/sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo/data/sub")  # a stage run by hand, below the repository root
    assert store_root() == (tmp_path / "repo/.evud").resolve()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "main"))  # DVC points queued and temp runs at the main repository
    assert store_root() == tmp_path / "main/.evud"
    monkeypatch.setenv("EVUD_STORE", str(tmp_path / "shared"))
    assert store_root() == tmp_path / "shared" and answer_store_url() == str(tmp_path / "shared/answers")
    monkeypatch.setenv("EVUD_ANSWER_STORE", "s3://team/evud")
    assert answer_store_url() == "s3://team/evud"


def test_an_atomic_write_leaves_the_old_file_or_the_new_one_never_half(tmp_path: Path, monkeypatch):
    target = tmp_path / "entry.json"
    write_atomic(target, b"old")

    class Full(Exception):
        pass

    def fail_on_replace(*args):
        raise Full("disk full at the worst moment")

    monkeypatch.setattr("os.replace", fail_on_replace)
    with pytest.raises(Full):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["entry.json"]


def test_outs_the_lock_recorded_are_read_from_dvcs_cache(reproduced_sample: Path, monkeypatch):
    monkeypatch.chdir(reproduced_sample)
    cached = locked_file("generate", "data/responses.jsonl")
    assert cached is not None and cached.read_bytes() == (reproduced_sample / "data/responses.jsonl").read_bytes()
    clips = locked_directory("prepare", "data/clips")
    manifest = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    assert set(clips) == {r["clip_path"] for r in manifest if r["status"] == "ok"}
    assert locked_file("generate", "data/nothing.jsonl") is None
    assert "Data and pipelines are up to date" in run(["dvc", "status"], reproduced_sample).stdout
