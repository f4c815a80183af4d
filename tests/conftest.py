"""Shared fixtures: fresh copies of this repository in which DVC runs for real."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The local Vertex AI server and the GCS emulator, as fixtures for every test module.
pytest_plugins = ["fake_vertex"]


def project_files() -> list[str]:
    """Files a fresh clone would have: tracked ones plus new, not-ignored ones (uncommitted work included)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=PROJECT_ROOT, check=True, capture_output=True).stdout.decode()
    return [f for f in listed.split("\0") if f and (PROJECT_ROOT / f).is_file()]


# A repository copy keeps its store in its own .evud/ unless a test says otherwise.
_STORE_VARIABLES = ("EVUD_STORE", "EVUD_ANSWER_STORE")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k not in _STORE_VARIABLES}
    full_env = {**inherited, "EVUD_PROGRESS": "0", "DVC_NO_ANALYTICS": "1", **(env or {})}
    result = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_repo_copy(dest: Path) -> Path:
    """A fresh git repository holding this project's files as a newcomer's clone would."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.name", "evud tests"], dest)  # dvc exp run commits experiment refs
    run(["git", "config", "user.email", "tests@example.com"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "copy"], dest)
    return dest


def git_commit_all(repo: Path, message: str) -> None:
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message, "--allow-empty"], repo)


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


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
    """One fresh copy on which `dvc repro` has run (read-only for the tests that share it)."""
    repo = make_repo_copy(tmp_path_factory.mktemp("sample") / "repo")
    run(["dvc", "repro"], repo)
    return repo
