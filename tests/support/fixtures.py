"""The fixtures every test module may use: an isolated store, repository copies, one reproduced sample, and the
local stand-ins for Vertex AI and Cloud Storage (started by the tests themselves on 127.0.0.1).

`dvc repro` of the bundled sample runs once per test run, whatever the number of pytest-xdist workers: the first
worker to need it builds it under a lock in the run's shared temporary directory, and every test that needs a
reproduced sample gets a copy of it (milliseconds, where a repro costs seconds).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import cloud
from tests.support.fake_openai import FAST_ENV as OPENAI_FAST_ENV
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_vertex import BATCH_BUCKET, FAST_ENV, FakeVertex
from tests.support.pipeline import write_many_clips
from tests.support.repo import copy_repo, git_commit_all, make_repo_copy, run


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


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Held by one process of the test run at a time (pytest-xdist workers are processes)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_temp_root(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """This test run's temporary directory, shared by its xdist workers (each has its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def made_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str,
              build: Callable[[Path], None]) -> Path:
    """`build(path)` run once per test run, by the first worker to need it (the others wait for it); returns path.

    For what tests only read or copy (a reproduced repository, generated source videos): a module- or session-scoped
    fixture alone would make it once per xdist worker."""
    root = run_temp_root(tmp_path_factory, worker_id) / name
    root.mkdir(exist_ok=True)
    with exclusive_lock(root / "lock"):
        made, done = root / "made", root / "done"
        if not done.exists():
            shutil.rmtree(made, ignore_errors=True)
            build(made)
            done.touch()
    return made


def reproduce_sample(repo: Path) -> None:
    make_repo_copy(repo)
    result = run(["dvc", "repro"], repo)
    (repo.parent / "repro.log").write_text(result.stdout + result.stderr)


def add_many_clips(repo: Path) -> None:
    make_repo_copy(repo)
    write_many_clips(repo)
    git_commit_all(repo, "many clips")


@pytest.fixture(scope="session")
def golden_sample(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A fresh clone of this checkout on which `dvc repro` has run: built once per test run, never used directly
    (tests get copies), so no test sees another's changes."""
    return made_once(tmp_path_factory, worker_id, "golden-sample", reproduce_sample)


@pytest.fixture
def many_clips_copy(tmp_path_factory: pytest.TempPathFactory, worker_id: str, tmp_path: Path) -> Path:
    """A fresh clone with a data group `many` (4 numbered videos, 28 windows of 6 s; conf still selects the
    sample), committed: the videos are drawn once per test run."""
    golden = made_once(tmp_path_factory, worker_id, "golden-many", add_many_clips)
    return copy_repo(golden, tmp_path / "repo")


def golden_repro_output(golden_sample: Path) -> str:
    """What `dvc repro` printed (stdout and stderr) when it reproduced the sample in a fresh clone."""
    return (golden_sample.parent / "repro.log").read_text()


@pytest.fixture(scope="session")
def reproduced_sample(golden_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reproduced sample shared by this worker's tests that only read it (or only re-run what is up to date)."""
    return copy_repo(golden_sample, tmp_path_factory.mktemp("sample") / "repo")


@pytest.fixture
def reproduced_copy(golden_sample: Path, tmp_path: Path) -> Path:
    """A reproduced sample of the test's own, to change: what a user has after `git clone` and `dvc repro`."""
    return copy_repo(golden_sample, tmp_path / "repo")


@pytest.fixture
def fake_vertex(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertex]:
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    fake = FakeVertex(hang_s=5.0)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A local OpenAI-compatible server (vLLM's protocol) serving Qwen2.5-VL-7B-Instruct, OPENAI_API_KEY set to its
    key."""
    for name, value in OPENAI_FAST_ENV.items():
        monkeypatch.setenv(name, value)
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator with the batch bucket, for the whole session (STORAGE_EMULATOR_HOST set)."""
    with cloud.gcs_emulator(BATCH_BUCKET) as url:
        yield url
