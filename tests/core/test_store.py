"""Where paid work is kept, atomic writes, and reading the outs dvc.lock recorded from DVC's cache."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from evud.core import store
from evud.core.params import ParamsError
from evud.core.store import Claims, answer_store_url, locked_directory, locked_file, store_root, write_atomic
from tests.support.claims import claim_holder
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


@pytest.mark.parametrize("hostname", [None, "a-container-since-restarted"])
def test_a_claim_held_by_a_killed_process_is_taken_at_once(tmp_path: Path, hostname: str | None):
    """No PID or age is guessed: the kernel drops the lock of a process that dies, on this host or in a container
    whose hostname is gone (a claim of another hostname used to be trusted for 6 h)."""
    claims = Claims(tmp_path / "claims")
    with claim_holder(tmp_path / "claims", "k" * 64, hostname) as holder:
        assert not claims.claim("k" * 64) and claims.claimed_elsewhere("k" * 64)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert not claims.claimed_elsewhere("k" * 64)
        assert claims.claim("k" * 64)
    assert not claims.claim("k" * 64), "a claim this process holds is not taken twice (another thread asks)"
    claims.release("k" * 64)
    assert claims.claim("k" * 64)


def test_a_claim_held_by_a_live_process_is_waited_for_saying_what_and_given_up_after_the_cap(tmp_path: Path, capfd):
    claims = Claims(tmp_path / "claims")
    with claim_holder(tmp_path / "claims", "k" * 64) as holder:
        waits = store.ClaimWaits(claims, "prepare", cap_s=0.0)
        assert not claims.claim("k" * 64)
        reason = waits.give_up("k" * 64, "clip v/c/a/0.mp4")
        said = capfd.readouterr().err
        assert f"prepare: waiting for clip v/c/a/0.mp4: another run (pid {holder.pid} on " in said
        assert "giving up after 0 s (EVUD_CLAIM_WAIT_S)" in said
        assert reason is not None and reason.startswith("claim_wait: clip v/c/a/0.mp4 was still being done by "
                                                        f"another run (pid {holder.pid} on ")
        assert waits.give_up("k" * 64, "clip v/c/a/0.mp4") == reason and capfd.readouterr().err == "", "said once"
        patient = store.ClaimWaits(claims, "prepare", cap_s=3600.0)
        assert patient.give_up("k" * 64, "clip v/c/a/0.mp4") is None  # within the cap: waits on


def test_a_claim_is_released_through_any_view_of_the_same_claims_folder(tmp_path: Path):
    """A worker takes a claim through one view of the store and releases it through another (each `dest.store` is a
    new object): the lock goes, and no file stays open (14,000 clips would exhaust the process's files)."""
    Claims(tmp_path / "claims").claim("k" * 64)
    open_before = len(os.listdir("/proc/self/fd"))
    Claims(tmp_path / "claims").release("k" * 64)
    assert len(os.listdir("/proc/self/fd")) == open_before - 1
    with claim_holder(tmp_path / "claims", "k" * 64):  # another process can take it now
        pass


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_wait_setting_that_is_no_number_of_seconds_stops_the_run_naming_it(monkeypatch, value: str):
    monkeypatch.setenv("EVUD_CLAIM_WAIT_S", value)
    with pytest.raises(ParamsError, match=rf"EVUD_CLAIM_WAIT_S='{value}' is not a number of seconds"):
        store.claim_wait_s()
    monkeypatch.setenv("EVUD_CLAIM_WAIT_S", "0")
    assert store.claim_wait_s() == 0.0
    monkeypatch.delenv("EVUD_CLAIM_WAIT_S")
    assert store.claim_wait_s() == 1800.0
