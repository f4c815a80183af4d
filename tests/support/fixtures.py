"""The fixtures every test module may use: an isolated store, repository copies, one reproduced sample, and the
local stand-ins for Vertex AI and Cloud Storage (started by the tests themselves on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import cloud
from tests.support.fake_vertex import BATCH_BUCKET, FAST_ENV, FakeVertex
from tests.support.repo import make_repo_copy, run


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stages run in this process (or started with its environment) keep answers, clips and run reports in a
    store of their own, never in this checkout's .evud/."""
    monkeypatch.setenv("EVUD_STORE", str(tmp_path / "evud-store"))
    monkeypatch.delenv("EVUD_ANSWER_STORE", raising=False)
    # Nothing reaches a real cloud: Google's credential lookup never probes a metadata server.
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    return tmp_path / "evud-store"


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    return make_repo_copy(tmp_path / "repo")


@pytest.fixture(scope="session")
def reproduced_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh copy on which `dvc repro` has run, shared by the tests that only read it."""
    repo = make_repo_copy(tmp_path_factory.mktemp("sample") / "repo")
    run(["dvc", "repro"], repo)
    return repo


@pytest.fixture
def fake_vertex(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertex]:
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    fake = FakeVertex(hang_s=5.0)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator with the batch bucket, for the whole session (STORAGE_EMULATOR_HOST set)."""
    with cloud.gcs_emulator(BATCH_BUCKET) as url:
        yield url
