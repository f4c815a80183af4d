"""The answers DVC's cache holds, as generate's reader finds them (evud.gemini.asking.CachedAnswers): newest
version first, nothing listed once every key is found, and git asked twice whatever the number of experiments."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evud.core.records import ResponseStatus
from evud.gemini.asking import cached_responses, reusable
from tests.support.dvc_versions import OUT, key_of, make_repository


def logged_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """git run through a shim that logs each command (the real git does the work); the log's path."""
    real, shim, log = shutil.which("git"), tmp_path / "shim", tmp_path / "git.log"
    shim.mkdir()
    (shim / "git").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def test_answers_in_the_workspaces_version_ask_git_nothing_and_experiments_cost_two_git_calls_in_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    models = make_repository(tmp_path / "repo", keys=20, experiments=6, run_cache=2)
    monkeypatch.chdir(tmp_path / "repo")
    log = logged_git(tmp_path, monkeypatch)
    # A re-run whose answers the workspace's locked version holds (DVC deleted the out): found there, nothing listed.
    found = list(cached_responses(Path(OUT))({key_of(models[0], i) for i in range(20)}, reusable))
    assert len(found) == 20 and {e.model for e in found} == {models[0]}
    assert not log.exists(), log.read_text()
    # The last experiment's answers and a key no version holds: every version listed, git asked twice in all.
    last_experiment = models[2 + 6 - 1]
    wanted = {key_of(last_experiment, i) for i in range(20)} | {key_of("never asked", 0)}
    found = list(cached_responses(Path(OUT))(wanted, reusable))
    assert len(found) == 20 and {(e.model, e.status) for e in found} == {(last_experiment, ResponseStatus.ok)}
    assert log.read_text().split() == ["for-each-ref", "cat-file"]


def test_a_later_lookup_in_the_run_lists_nothing_again_and_finds_what_the_first_did(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch):
    models = make_repository(tmp_path / "repo", keys=10, experiments=2, run_cache=2)
    monkeypatch.chdir(tmp_path / "repo")
    reader = cached_responses(Path(OUT))  # one per stage run
    oldest = {key_of(models[-1], i) for i in range(10)}
    assert {e.request_key for e in reader(oldest | {key_of("never asked", 0)}, reusable)} == oldest
    log = logged_git(tmp_path, monkeypatch)
    # The second round of a run (re-asks, verify's judge): the listing and the indexes of the first serve it.
    newest = {key_of(models[0], i) for i in range(10)}
    assert {e.request_key for e in reader(newest | oldest, reusable)} == newest | oldest
    assert not log.exists()
