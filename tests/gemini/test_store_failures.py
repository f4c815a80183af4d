"""What generate does when the answer store cannot keep what is paid for: a full disk, a read-only store, an
unreachable S3 store. Never pay for an answer that cannot be kept; never lose one that was paid for."""

from __future__ import annotations

from pathlib import Path

import pytest

from evud.core.jsonl import read_jsonl
from evud.gemini.answer_store import AnswerStore
from tests.support import cloud
from tests.support.fake_vertex import FakeVertex
from tests.support.filesystems import fill_leaving, tmpfs
from tests.support.vertex import generate_main


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def rescued_entries(folder: Path) -> list[dict]:
    return [entry for path in sorted(folder.rglob("*.jsonl")) for entry in read_jsonl(path)]


def test_a_full_disk_stops_new_requests_at_once_and_keeps_every_answer_received(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch):
    with tmpfs(tmp_path / "disk", size_kb=256) as disk:
        # The default layout: answers in the local store, both on the disk that fills up.
        monkeypatch.setenv("EVUD_STORE", str(disk / "evud"))
        monkeypatch.setenv("EVUD_ANSWER_STORE", str(disk / "evud/answers"))
        monkeypatch.setenv("EVUD_CONCURRENCY", "1")
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir()
        (disk / "evud/answers").mkdir(parents=True)
        filler = fill_leaving(disk, free_pages=3)
        result = generate_main(reproduced_sample, tmp_path, fake_vertex)
        store = AnswerStore(str(disk / "evud/answers"))
        stored = store.keys()
        rescued = rescued_entries(tmp_path / "tmp")
        message = last_line(result.stderr)
        assert result.returncode == 1, result.stderr
        assert 1 <= len(stored) < 7 and rescued, (stored, rescued)
        # Every answer Vertex sent is on disk, in the store or in the file the message names ...
        assert fake_vertex.answered == len(stored) + len(rescued) == fake_vertex.total_calls
        assert {e["request_key"] for e in rescued}.isdisjoint(stored)
        # ... and no request went out once a write had failed (one in flight at a time here).
        assert f"answer store {disk / 'evud/answers'} could not be written" in message, message
        assert "No space left on device" in message and str(tmp_path / "tmp") in message
        # Space freed: the next run stores the rescued answers and pays only for the clips never asked.
        filler.unlink()
        fake_vertex.reset_counts()
        again = generate_main(reproduced_sample, tmp_path, fake_vertex)
        assert again.returncode == 0, again.stderr
        assert fake_vertex.total_calls == 7 - len(stored) - len(rescued)
        assert len(store.keys()) == 7 and not rescued_entries(tmp_path / "tmp")


def test_a_read_only_store_stops_before_any_request_naming_it(reproduced_sample: Path, tmp_path: Path,
                                                              fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch):
    with tmpfs(tmp_path / "ro", size_kb=64, read_only=True) as disk:
        monkeypatch.setenv("EVUD_ANSWER_STORE", str(disk / "answers"))
        result = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert result.returncode == 1
    message = last_line(result.stderr)
    assert message.startswith(f"generate: the answer store {disk / 'answers'} cannot be written"), message
    assert "Read-only file system" in message and "EVUD_ANSWER_STORE" in message
    assert fake_vertex.total_calls == 0 and not (tmp_path / "responses.jsonl").exists()


def test_an_unreachable_s3_store_stops_before_any_request_naming_it(reproduced_sample: Path, tmp_path: Path,
                                                                    fake_vertex: FakeVertex,
                                                                    monkeypatch: pytest.MonkeyPatch):
    for name, value in cloud.FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{cloud.free_port()}")  # nothing listens there
    monkeypatch.setenv("EVUD_ANSWER_STORE", "s3://team-answers/evud")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries of a refused connection prove nothing more here
    result = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert result.returncode == 1
    message = last_line(result.stderr)
    assert message.startswith("generate: the answer store s3://team-answers/evud cannot be read"), message
    assert "EVUD_ANSWER_STORE" in message
    assert fake_vertex.total_calls == 0 and not (tmp_path / "responses.jsonl").exists()
