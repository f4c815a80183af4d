"""The answer store on its own: whole entries only, failures never kept, claims between live runs, S3 prefixes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import boto3
import pytest

from evud.core.records import AnswerEntry, ResponseStatus, Usage
from evud.gemini.answer_store import AnswerStore
from tests.support.claims import claim_holder
from tests.support.cloud import moto_s3
from tests.support.fake_vertex import FakeVertex
from tests.support.vertex import run_generate, vertex_params


def entry(key: str, text: str = "Category: world knowledge\nQuestion: q\nShort answer: a", **fields) -> AnswerEntry:
    return AnswerEntry(request_key=key, model="gemini-3.5-flash", backend="vertex", status=ResponseStatus.ok,
                       text=text, finish_reason="STOP", usage=Usage(prompt_tokens=10, output_tokens=5), **fields)


def key(n: int) -> str:
    return f"{n:064x}"


def test_an_answer_put_is_read_back_whole_and_listed(tmp_path: Path):
    store = AnswerStore(str(tmp_path / "answers"))
    store.put(entry(key(1)))
    assert store.get(key(1)) == entry(key(1))
    assert store.keys() == {key(1)} and store.get(key(2)) is None
    assert store.get_many([key(1), key(2)]) == {key(1): entry(key(1))}
    assert not [p for p in (tmp_path / "answers").rglob("*") if p.is_file() and not p.name.endswith(".json")]


def test_a_failure_is_never_stored(tmp_path: Path):
    store = AnswerStore(str(tmp_path / "answers"))
    failed = AnswerEntry(request_key=key(1), model="m", backend="vertex", status=ResponseStatus.failed,
                         error="api_error_429: ...", retryable=True)
    with pytest.raises(ValueError, match="not stored"):
        store.put(failed)
    assert store.keys() == set()


def test_unreadable_and_temporary_files_are_not_answers(tmp_path: Path, capsys: pytest.CaptureFixture):
    store = AnswerStore(str(tmp_path / "answers"))
    store.put(entry(key(1)))
    folder = tmp_path / "answers" / key(2)[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key(2)}.json").write_text('{"request_key": "')  # not ours, or damaged
    (folder / f".{key(3)}.json.abc.tmp").write_text("{}")  # a writer killed before its rename
    assert store.keys() == {key(1), key(2)}
    assert store.get_many([key(1), key(2), key(3)]) == {key(1): entry(key(1))}
    assert f"{key(2)}.json is unreadable" in capsys.readouterr().err


def test_writers_racing_on_one_key_leave_one_whole_answer(tmp_path: Path):
    store = AnswerStore(str(tmp_path / "answers"))
    answers = [entry(key(7), text="x" * 50_000 + str(i)) for i in range(8)]
    threads = [threading.Thread(target=store.put, args=(a,)) for a in answers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(key(7)) in answers


def test_a_claim_held_by_a_live_run_makes_others_wait_and_a_dead_runs_claim_is_taken_over(tmp_path: Path):
    store = AnswerStore(str(tmp_path / "answers"))
    with claim_holder(Path(store.root) / "claims", key(1)) as other_run:  # another live process on this machine
        assert not store.claim(key(1)) and store.claimed_elsewhere(key(1))
        other_run.kill()  # its run was killed: the kernel released its lock
        other_run.wait()
        assert not store.claimed_elsewhere(key(1)) and store.claim(key(1))
    store.release(key(1))
    assert not (Path(store.root) / "claims" / f"{key(1)}.lock").exists()


def test_an_s3_prefix_is_a_store_a_team_shares(tmp_path: Path):
    with moto_s3() as (_, endpoint):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="team-answers")
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
        try:
            mine = AnswerStore("s3://team-answers/evud")
            mine.put(entry(key(1)))
            theirs = AnswerStore("s3://team-answers/evud/")  # another machine, the same prefix
            assert theirs.keys() == {key(1)} and theirs.get(key(1)) == entry(key(1))
            assert theirs.claim(key(1))  # no claims on remote stores: documented
        finally:
            del os.environ["AWS_ENDPOINT_URL_S3"]


def test_an_entry_file_holding_another_requests_answer_is_ignored_with_a_warning(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture):
    """A file copied or renamed by hand (or a bug) must never serve one request's answer to another clip."""
    store = AnswerStore(str(tmp_path / "answers"))
    store.put(entry(key(1), text="the answer of request 1"))
    misplaced = tmp_path / "answers" / key(2)[:2] / f"{key(2)}.json"
    misplaced.parent.mkdir(parents=True, exist_ok=True)
    misplaced.write_bytes((tmp_path / "answers" / key(1)[:2] / f"{key(1)}.json").read_bytes())
    assert store.get(key(2)) is None
    assert store.get_many([key(1), key(2)]) == {key(1): entry(key(1), text="the answer of request 1")}
    warning = capsys.readouterr().err
    assert f"{key(2)}.json holds the answer of request {key(1)[:12]}" in warning and "ignoring it" in warning


def test_an_answer_another_live_run_is_asking_for_is_waited_for_saying_so_and_failed_after_the_cap(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch, capfd):
    """A live run holding a request's claim: this run says which answer it waits for and who holds it, gives up
    after EVUD_CLAIM_WAIT_S with a retryable failure (generate exits 1), and nothing is paid twice meanwhile."""
    run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    store = AnswerStore(str(tmp_path / "answers"))
    waited = sorted(store.keys())[0]
    Path(store._path(waited)).unlink()  # this answer must be asked again, and another run is asking for it now
    fake_vertex.reset_counts()
    monkeypatch.setenv("EVUD_CLAIM_WAIT_S", "0")
    with claim_holder(Path(store.root) / "claims", waited) as holder:
        capfd.readouterr()
        _, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
        said = capfd.readouterr().err
    assert f"generate: waiting for the answer to request {waited[:12]}: another run (pid {holder.pid} on " in said
    (failed,) = [r for r in responses.values() if r["status"] != "ok"]
    assert failed["request_key"] == waited and failed["status"] == "failed"
    assert failed["error"].startswith(f"claim_wait: the answer to request {waited[:12]} was still being done by "
                                      f"another run (pid {holder.pid} on ")
    assert fake_vertex.total_calls == 0
