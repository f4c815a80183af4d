"""generate against the local Vertex server, as tests drive it: params pointed at the fake, a run whose answer
store lives in the test's directory, and what it wrote."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from evud.core.params import GeminiParams, PromptParams, load_section
from evud.core.progress import StageIncomplete
from evud.core.store import store_root
from evud.gemini import generate
from evud.gemini.answer_store import AnswerStore
from evud.gemini.prices import PriceTable, load_prices
from evud.verify import verify as verify_stage
from tests.support.fake_vertex import FakeVertex, clip_id_of
from tests.support.repo import PARAMS, PRICES


def vertex_params(fake: FakeVertex, **updates) -> GeminiParams:
    gemini = load_section("gemini", PARAMS)
    return gemini.model_copy(update={"backend": "vertex", "project": "test-project", "base_url": fake.base_url, **updates})


def manifest_clips(repo: Path) -> list[dict]:
    records = [json.loads(line) for line in (repo / "data/clips.jsonl").read_text().splitlines()]
    return [r for r in records if r["status"] == "ok"]


def run_generate(repo: Path, work: Path, gemini: GeminiParams, prompt: PromptParams | None = None,
                 concurrency: int = 4, allow_failed: bool = True,
                 prices: PriceTable | None = None) -> tuple[dict, dict[str, dict]]:
    """generate on a reproduced sample, its answer store in `work`; returns (metrics + run facts, responses by clip)."""
    facts = run_facts("generate", lambda: generate.run(
        gemini, prompt or load_section("prompt", PARAMS), repo / "data/clips.jsonl", repo / "data/clips",
        work / "responses.jsonl", work / "metrics.json", concurrency, prices=prices or load_prices(PRICES),
        store=AnswerStore(str(work / "answers"))), allow_failed)
    responses = [json.loads(line) for line in (work / "responses.jsonl").read_text().splitlines()]
    return {**json.loads((work / "metrics.json").read_text()), **facts}, {r["clip_sha256"]: r for r in responses}


def run_facts(stage: str, work: Callable[[], Any], allow_failed: bool) -> dict:
    """Run a stage's work in this process: its run facts, or its run report's when it ended with retryable
    failures (StageIncomplete) and those are allowed."""
    try:
        return work().facts
    except StageIncomplete:
        if not allow_failed:
            raise
        return latest_run_report(stage)


def latest_run_report(stage: str) -> dict:
    reports = sorted((store_root() / "reports" / stage).glob("*.json"))
    return json.loads(reports[-1].read_text())


def generate_command(reproduced: Path, work: Path, params_file: Path) -> list[str]:
    """`python -m stages.generate` on a reproduced sample's manifest and clips, writing into `work`."""
    return [sys.executable, "-m", "stages.generate", "--manifest", str(reproduced / "data/clips.jsonl"),
            "--clips-dir", str(reproduced / "data/clips"), "--out", str(work / "responses.jsonl"),
            "--metrics", str(work / "metrics.json"), "--params", str(params_file)]


def generate_main(reproduced: Path, work: Path, fake: FakeVertex | None, **gemini_updates) -> subprocess.CompletedProcess:
    """The generate stage's command line (`stages.generate.main`, in this process) with params.yaml's gemini section
    pointed at the fake and updated: its exit status and what it printed on stderr, the exit message last (as the
    interpreter prints it). An exception other than SystemExit (a traceback) fails the test where it is raised."""
    from stages import generate as generate_stage

    params = yaml.safe_load(PARAMS.read_text())
    vertex = {"backend": "vertex", "project": "test-project"} | ({"base_url": fake.base_url} if fake else {})
    params["gemini"].update(vertex | gemini_updates)  # an update may name another backend
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    argv = generate_command(reproduced, work, work / "params.yaml")[3:]  # after `python -m stages.generate`
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            generate_stage.main(argv)
            code: object = 0
        except SystemExit as done:
            code = done.code
    if isinstance(code, str):  # sys.exit(message): printed on stderr, exit status 1
        stderr.write(code + "\n")
    returncode = 1 if isinstance(code, str) else int(code or 0)
    return subprocess.CompletedProcess(argv, returncode, "", stderr.getvalue())


def fake_vertex_clip(video_part: dict) -> str:
    """The clip (by content) a request's video part names, as the fake sees it."""
    return clip_id_of({"contents": [{"parts": [video_part]}]})


def run_verify(repo: Path, work: Path, gemini: GeminiParams, concurrency: int = 4, allow_failed: bool = True,
               prices: PriceTable | None = None, **verify_updates) -> tuple[dict, list[dict]]:
    """verify of the answers run_generate wrote into `work` (same answer store), with params.yaml's verify section
    updated; returns (metrics + run facts, verdicts.jsonl's records)."""
    verify = load_section("verify", PARAMS).model_copy(update=verify_updates)
    facts = run_facts("verify", lambda: verify_stage.run(
        verify, gemini, load_section("prompt", PARAMS), repo / "data/clips.jsonl", work / "responses.jsonl",
        repo / "data/clips", work / "verdicts.jsonl", work / "verify.json", work / "verdicts_per_category.json",
        concurrency, prices=prices or load_prices(PRICES), store=AnswerStore(str(work / "answers"))), allow_failed)
    records = [json.loads(line) for line in (work / "verdicts.jsonl").read_text().splitlines()]
    return {**json.loads((work / "verify.json").read_text()), **facts}, records
