"""The README's open-model run: `dvc exp run -S gemini=qwen_vl -S gemini.base_url=<server>/v1` against a local
OpenAI-compatible server (tests/support/fake_openai.py) makes the sample's dataset with verdicts, and pays nothing
twice."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.fake_openai import FAST_ENV, MODEL, FakeOpenAI
from tests.support.repo import run, stages_run
from tests.support.vertex import manifest_clips


def test_dvc_exp_run_on_an_open_model_server_makes_the_dataset_with_verdicts_and_pays_once(
        reproduced_copy: Path, fake_openai: FakeOpenAI):
    server = ["-S", "gemini=qwen_vl", "-S", f"gemini.base_url={fake_openai.base_url}"]
    # Up to the dataset (postprocess): the page and the export ask no model.
    result = run(["dvc", "exp", "run", "postprocess", *server], reproduced_copy, env=FAST_ENV)
    assert stages_run(result.stdout) == {"generate", "verify", "postprocess"}, result.stdout
    n = len(manifest_clips(reproduced_copy))
    assert fake_openai.total_calls == n and dict(fake_openai.checks) == {"blind": n}
    dataset = json.loads((reproduced_copy / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == n and all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    verdicts = [json.loads(line) for line in (reproduced_copy / "data/verdicts.jsonl").read_text().splitlines()]
    assert {(c["purpose"], c["model"], c["backend"]) for r in verdicts for c in r["checks"]} == {("blind", MODEL, "openai")}
    assert json.loads((reproduced_copy / "metrics/generate.json").read_text())["model"] == MODEL
    # A setting that re-runs generate (not served by DVC's run cache): every answer comes from the answer store.
    fake_openai.reset_counts()
    result = run(["dvc", "exp", "run", "verify", *server, "-S", "gemini.inline_limit_mb=250"], reproduced_copy,
                 env=FAST_ENV)
    assert "generate" in stages_run(result.stdout) and fake_openai.all_calls == 0, result.stderr
    assert f"{n} clips, {n} answered before" in result.stderr, result.stderr
