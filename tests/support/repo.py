"""Fresh copies of this repository in which DVC runs for real, and commands run in them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PARAMS = PROJECT_ROOT / "params.yaml"
PRICES = PROJECT_ROOT / "conf/prices.yaml"

# A repository copy keeps its store in its own .evud/ unless a test says otherwise.
STORE_VARIABLES = ("EVUD_STORE", "EVUD_ANSWER_STORE")


def project_files() -> list[str]:
    """Files a fresh clone would have: tracked ones plus new, not-ignored ones (uncommitted work included)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=PROJECT_ROOT, check=True, capture_output=True).stdout.decode()
    return [f for f in listed.split("\0") if f and (PROJECT_ROOT / f).is_file()]


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to its end; its output is read from files, not pipes, so a daemon it leaves behind (the
    celery workers of `dvc exp run --run-all`, which idle 10 s before they exit) does not hold the test up."""
    inherited = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    full_env = {**inherited, "EVUD_PROGRESS": "0", "DVC_NO_ANALYTICS": "1", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        returncode = subprocess.run(cmd, cwd=cwd, env=full_env, stdout=out, stderr=err).returncode
        out.seek(0), err.seek(0)
        result = subprocess.CompletedProcess(cmd, returncode, out.read().decode(errors="replace"),
                                             err.read().decode(errors="replace"))
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
    git_commit_all(dest, "copy")
    return dest


def copy_repo(source: Path, dest: Path) -> Path:
    """A copy of a repository in which DVC has run: git, DVC's cache and state, the store of paid work, the outs.

    Copying a reproduced repository costs milliseconds where `dvc repro` costs seconds; the copy is a repository
    of its own (DVC_ROOT, its store and cache are its own, nothing is linked back to the source).
    """
    shutil.copytree(source, dest, symlinks=True)
    return dest


def git_commit_all(repo: Path, message: str) -> None:
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message, "--allow-empty"], repo)


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def stages_run(dvc_output: str) -> set[str]:
    """The stages `dvc repro` / `dvc exp run` ran, from its output."""
    return {line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running stage '")}
