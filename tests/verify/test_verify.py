"""verify against the local Vertex server: what each check sends, the verdicts its answers give, the policy that
postprocess applies to them, and the machinery shared with generate (answer store, budget, batch jobs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evud.core.params import load_section
from evud.core.progress import StageIncomplete
from evud.core.records import ClipRecord, GeminiResult, RejectScope
from evud.dataset.gold import index_gold_answers
from evud.dataset.postprocess import build_dataset, read_verdicts
from evud.gemini.asking import CredentialsRefused
from evud.gemini.cost import CostLimitExceeded
from tests.support.fake_vertex import BATCH_BUCKET, FakeVertex, check_purpose
from tests.support.repo import PARAMS
from tests.support.vertex import fake_vertex_clip, manifest_clips, run_generate, run_verify, vertex_params

LITE = "gemini-3.1-flash-lite"  # verify.model's default


def video_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a request that carry a video, inline or by URI, in either spelling the SDK may send."""
    return [part for content in body.get("contents", []) for part in content.get("parts", [])
            if {"inlineData", "inline_data", "fileData", "file_data"} & set(part)]


def pairs_by_category(records: list[dict]) -> dict[str, list[dict]]:
    by_category: dict[str, list[dict]] = {}
    for record in records:
        for pair in record["pairs"]:
            by_category.setdefault(pair["category"], []).append(pair)
    return by_category


@pytest.fixture
def answered(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex) -> Path:
    """The sample's clips answered by the local Vertex server (7 answers of 7 pairs), in tmp_path."""
    run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex), allow_failed=False)
    fake_vertex.reset_counts()
    return tmp_path


def plant(fake: FakeVertex, model: str) -> None:
    """Blind answers the fake gives (its QA answers are "Answer <i> from <model>", i the category's number):
    world knowledge word for word, spatial reasoning in other words the judge accepts, functional reasoning
    otherwise (the judge disagrees); object localisation contradicted by the video."""
    fake.blind_answers = {"world knowledge": f"answer 6 from {model}.", "spatial reasoning": "the fifth answer",
                          "functional reasoning": "a knife cuts things"}
    fake.judge_agrees = {"spatial reasoning"}
    fake.support = {"object localisation": "contradicted"}


def test_blind_and_judge_requests_carry_no_video_and_grounding_requests_carry_the_clip(
        reproduced_sample: Path, answered: Path, fake_vertex: FakeVertex):
    gemini = vertex_params(fake_vertex)
    plant(fake_vertex, gemini.model)
    metrics, records = run_verify(reproduced_sample, answered, gemini, allow_failed=False, grounded=True)
    clips = len(manifest_clips(reproduced_sample))
    # One blind and one grounding request per clip; a judge request for each clip whose blind answers left pairs
    # the exact match did not decide (spatial and functional reasoning); no generate request.
    assert fake_vertex.checks == {"blind": clips, "judge": clips, "ground": clips} and fake_vertex.total_calls == 0
    shas = {c["sha256"] for c in manifest_clips(reproduced_sample)}
    seen = set()
    for body in fake_vertex.bodies:
        purpose = check_purpose(body)
        text = json.dumps(body["contents"])
        if purpose in ("blind", "judge"):
            assert video_parts(body) == [], purpose  # no fileData, no inlineData
            assert "videoMetadata" not in text and "video_metadata" not in text
        if purpose == "blind":  # the questions, never the answers
            assert "What does clip" in text and "Answer 0 from" not in text and "answer_a" not in text
        if purpose == "ground":
            (part,) = video_parts(body)
            assert "inlineData" in part or "inline_data" in part
            seen.add(fake_vertex_clip(part))  # the sha256 of the bytes sent
    assert seen == shas  # each clip, the very bytes generate sent
    by_category = pairs_by_category(records)
    assert {p["verdict"] for p in by_category["world knowledge"]} == {"blind_answerable"}
    assert {p["blind"] for p in by_category["world knowledge"]} == {"exact_match"}
    assert {(p["verdict"], p["blind"]) for p in by_category["spatial reasoning"]} == {("blind_answerable", "judge_agree")}
    assert {(p["verdict"], p["blind"]) for p in by_category["functional reasoning"]} == {("grounded", "judge_disagree")}
    assert {p["verdict"] for p in by_category["object localisation"]} == {"unsupported"}
    assert {p["verdict"] for p in by_category["object recognition"]} == {"grounded"}
    assert metrics["pairs_by_verdict"] == {"grounded": 4 * clips, "blind_answerable": 2 * clips,
                                           "unsupported": clips, "unverified": 0}
    assert metrics["share_by_category"]["world knowledge"]["blind_answerable"] == 1.0
    # Every check's raw answer is in the record, keyed as the store keys it.
    assert all(sorted(c["purpose"] for c in r["checks"]) == ["blind", "ground", "judge"] for r in records)


def test_a_planted_blind_answerable_pair_is_dropped_a_differently_answered_one_stays_and_gold_is_never_dropped(
        reproduced_sample: Path, answered: Path, fake_vertex: FakeVertex):
    gemini = vertex_params(fake_vertex)
    plant(fake_vertex, gemini.model)
    run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    manifest = [ClipRecord.model_validate_json(line)
                for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    results = [GeminiResult.model_validate_json(line)
               for line in (answered / "responses.jsonl").read_text().splitlines()]
    verdicts = read_verdicts(answered / "verdicts.jsonl")
    golden = next(c for c in manifest if c.status.value == "ok")
    question = next(p["question"] for p in verdicts[golden.key].model_dump()["pairs"]
                    if p["category"] == "world knowledge")
    gold = index_gold_answers([(2, {"ego4d_video_uid": golden.video_uid, "ego4d_clip_uid": golden.clip_uid,
                                    "ego4d_annotation_uid": golden.annotation_uid,
                                    "ego4d_language_query_index": str(golden.language_query_index),
                                    "category": "world knowledge", "question": question,
                                    "gold_answer": "a human's answer"})], "gold.csv")
    post = load_section("post", PARAMS).model_copy(update={"require_all_categories": False, "verdicts": {
        "grounded": "keep", "blind_answerable": "drop", "unsupported": "drop", "unverified": "keep"}})
    records, rejects, figures = build_dataset(manifest, results, post, "text", gold, verdicts)
    clips = len(records)
    assert clips == len(manifest_clips(reproduced_sample))
    kept = {(r.id, p.category): p for r in records for p in r.category_question_answer_tuples}
    # Planted: world knowledge (word for word) and spatial reasoning (the judge) dropped, with their verdict...
    dropped = [r for r in rejects if r.scope is RejectScope.pair]
    assert {(r.reason, r.category) for r in dropped} == {("verdict_blind_answerable", "world knowledge"),
                                                          ("verdict_blind_answerable", "spatial reasoning")}
    assert sum(r.category == "world knowledge" for r in dropped) == clips - 1  # ... but the gold one
    assert all("post.verdicts.blind_answerable=drop" in (r.detail or "") for r in dropped)
    # ... the gold answer stays, in place of Gemini's, its verdict kept beside it.
    assert kept[(golden.key, "world knowledge")].short_answer == "a human's answer"
    assert kept[(golden.key, "world knowledge")].verdict.value == "blind_answerable"
    # A pair answered otherwise blind (functional reasoning: the judge disagreed) stays in every clip.
    assert sum(category == "functional reasoning" for _, category in kept) == clips
    assert figures["pairs_by_verdict"]["blind_answerable"] == 1  # in the dataset: the gold one alone
    assert figures["pairs_dropped_by_reason"]["verdict_blind_answerable"] == 2 * clips - 1


def test_a_second_run_pays_nothing_and_a_failed_check_leaves_its_pairs_unverified_and_asked_again(
        reproduced_sample: Path, answered: Path, fake_vertex: FakeVertex):
    gemini = vertex_params(fake_vertex)
    plant(fake_vertex, gemini.model)
    fake_vertex.script("judge", *[503] * 50)  # every attempt of every judge request
    metrics, records = run_verify(reproduced_sample, answered, gemini)
    spatial = pairs_by_category(records)["spatial reasoning"]
    assert {p["verdict"] for p in spatial} == {"unverified"}
    assert {p["reason"].split(":")[0] for p in spatial} == {"judge_failed"}
    assert metrics["pairs_by_verdict"]["blind_answerable"] == len(records)  # world knowledge: no judge needed
    fake_vertex.scripts.clear()
    fake_vertex.reset_counts()
    metrics, records = run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    assert fake_vertex.checks == {"judge": len(records)}  # the blind answers came from the store
    assert {p["verdict"] for p in pairs_by_category(records)["spatial reasoning"]} == {"blind_answerable"}
    fake_vertex.reset_counts()
    again, same = run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    assert fake_vertex.all_calls == 0 and same == records and again["calls"] == 0
    assert again["reused_from"] == {"answer_store": 2 * len(records), "dvc_cache": 0, "another_run": 0}  # blind, judge


def test_credentials_refused_mid_run_stop_the_checks_keep_every_answer_and_the_next_run_asks_the_rest(
        reproduced_sample: Path, answered: Path, fake_vertex: FakeVertex):
    gemini = vertex_params(fake_vertex)
    fake_vertex.refuse_credentials_after(2)  # the token expires after 2 checks (the preflight passed)
    with pytest.raises(CredentialsRefused, match=r"^verify: credentials refused after 2 answers: refresh them and "
                                                 r"re-run"):
        run_verify(reproduced_sample, answered, gemini, concurrency=1, allow_failed=False)
    assert fake_vertex.checks == {"blind": 3}  # 2 answered, 1 refused, none asked after it
    fake_vertex.refuse_credentials_after(None)
    fake_vertex.reset_counts()
    run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    assert fake_vertex.checks == {"blind": len(manifest_clips(reproduced_sample)) - 2}


def test_unreadable_check_answers_are_asked_again_then_recorded_with_the_reason_and_the_run_exits_non_zero(
        reproduced_sample: Path, answered: Path, fake_vertex: FakeVertex):
    """A check answered with invalid JSON or the wrong schema is asked again in the run (bounded); one still
    unreadable is recorded with the reason and makes the stage exit non-zero, so the next run asks it again."""
    gemini = vertex_params(fake_vertex)
    clips = len(manifest_clips(reproduced_sample))
    # One request at a time: the first blind request is answered invalid JSON, then the wrong schema, then readable;
    # the second is unreadable at every attempt (3).
    fake_vertex.script("blind", "invalid_json", "wrong_schema", "ok", "invalid_json", "wrong_schema", "invalid_json")
    with pytest.raises(StageIncomplete, match=r"verify: 1 of .* failed for a reason a retry can fix "
                                              r"\(unreadable_answer x1\)"):
        run_verify(reproduced_sample, answered, gemini, concurrency=1, allow_failed=False)
    assert fake_vertex.checks == {"blind": clips + 2 + 2}
    records = [json.loads(line) for line in (answered / "verdicts.jsonl").read_text().splitlines()]
    undecided = [r for r in records if any(p["reason"].startswith("blind_") for p in r["pairs"])]
    assert len(undecided) == 1
    assert {(p["verdict"], p["reason"].split(":")[0]) for p in undecided[0]["pairs"]} == {("unverified",
                                                                                          "blind_unreadable")}
    assert "not the JSON asked for" in undecided[0]["pairs"][0]["reason"]
    fake_vertex.reset_counts()
    _, records = run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    assert fake_vertex.checks == {"blind": 1}  # only the unreadable one: every readable answer was kept
    assert not [p for r in records for p in r["pairs"] if p["reason"].startswith("blind_")]


def test_the_budget_refuses_before_any_check_is_asked(reproduced_sample: Path, answered: Path,
                                                      fake_vertex: FakeVertex, capsys):
    gemini = vertex_params(fake_vertex)
    with pytest.raises(CostLimitExceeded, match=r"verify: refusing to start: .*verify.max_cost_usd"):
        run_verify(reproduced_sample, answered, gemini, grounded=True, max_cost_usd=0.0001)
    assert fake_vertex.all_calls == 0
    # The blind check alone, text only, costs a small part of the grounding check.
    run_verify(reproduced_sample, answered, gemini, allow_failed=False, max_cost_usd=0.05)
    estimated = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("verify: ") and "$" in line)
    assert "blind and judge (gemini-3.1-flash-lite)" in estimated, estimated
    assert fake_vertex.checks["blind"] == len(manifest_clips(reproduced_sample))


def test_batch_mode_asks_the_checks_in_batch_jobs_with_no_video_for_the_blind_check(
        reproduced_sample: Path, answered: Path, fake_vertex: FakeVertex, gcs_emulator: str):
    gemini = vertex_params(fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET, batch_prefix="verify")
    plant(fake_vertex, gemini.model)
    fake_vertex.script("blind", 503)  # the first blind line fails: resubmitted in the next round
    metrics, records = run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    clips = len(records)
    assert fake_vertex.batch_lines == {"blind": clips + 1, "judge": clips} and fake_vertex.checks == {}
    assert fake_vertex.jobs_created == 3  # blind, its resubmission, judge
    assert metrics["pairs_by_verdict"]["blind_answerable"] == 2 * clips
    fake_vertex.reset_counts()
    run_verify(reproduced_sample, answered, gemini, allow_failed=False)
    assert fake_vertex.all_calls == 0


def test_an_answer_without_pairs_is_recorded_skipped_with_its_reason_and_asks_nothing(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    clips = manifest_clips(reproduced_sample)
    fake_vertex.script(clips[0]["sha256"], "safety")
    fake_vertex.script(clips[1]["sha256"], "empty")
    run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    fake_vertex.reset_counts()
    _, records = run_verify(reproduced_sample, tmp_path, vertex_params(fake_vertex), allow_failed=False)
    skipped = sorted(r["skipped"].split(":")[0] for r in records if r["skipped"])
    assert skipped == ["response_blocked", "response_empty"], skipped
    assert all(r["pairs"] == [] and r["checks"] == [] for r in records if r["skipped"])
    assert fake_vertex.checks["blind"] == sum(not r["skipped"] for r in records)
