"""postprocess as a user relies on it: policy params, rejects with reasons, JSON answers, stable output."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from evud.core.params import PostParams, PromptParams
from evud.core.jsonl import write_jsonl
from evud.core.records import ClipVerdicts, PairCheck, QAPair, QueryIds, Verdict
from evud.dataset.gold import GoldIndex
from evud.dataset.llava import DatasetValidationError, build_record, validated_dataset
from evud.dataset.postprocess import build_dataset, read_verdicts, run
from tests.support.answer_variants import CANON, CANONICAL, VARIANTS
from tests.support.dataset import JSON, TEXT, answer, clip, json_text, nonzero, write_inputs
from tests.support.repo import run as run_cmd


def dataset(texts: list[str], post: PostParams | None = None, prompt: PromptParams = TEXT,
            truncated: list[bool] | None = None):
    clips = [clip(i) for i in range(len(texts))]
    cut = truncated or [False] * len(texts)
    results = [answer(i, t, "truncated" if cut[i] else "ok") for i, t in enumerate(texts)]
    return build_dataset(clips, results, post or PostParams(), prompt.format, GoldIndex())


def reasons(rejects, scope: str | None = None) -> list[str]:
    return sorted(r.reason for r in rejects if scope is None or r.scope.value == scope)


def test_a_canonical_answer_becomes_one_evud_record():
    records, rejects, metrics = dataset([CANONICAL], PostParams(video_root="ego4d_vqa_gemini_videos"))
    (record,) = records
    data = record.to_json_dict()
    assert list(data) == ["id", "video", "ego4d_video_uid", "ego4d_clip_uid", "ego4d_annotation_uid",
                          "ego4d_language_query_index", "duration_(s)", "human_annotated", "conversations",
                          "category_question_answer_tuples"]
    assert data["video"] == "ego4d_vqa_gemini_videos/v1/c1/a1/0.mp4" and data["duration_(s)"] == 5.0
    assert [tuple(t.values()) for t in data["category_question_answer_tuples"]] == CANON
    assert "A 'Best Dad' mug" in [t["value"] for t in data["conversations"]]  # not lowercased
    assert not rejects and metrics["qa_pairs"] == 7 and metrics["parse_yield"] == 1.0


def test_every_variant_ends_as_a_record_or_a_clip_reject_and_nothing_crashes():
    texts = [v.text for v in VARIANTS]
    records, rejects, metrics = dataset(texts, PostParams(require_all_categories=False),
                                        truncated=[v.truncated for v in VARIANTS])
    kept = {r.ego4d_language_query_index for r in records}
    rejected = {int(r.key.rsplit("-", 1)[1]) for r in rejects if r.scope.value == "clip"}
    assert kept | rejected == set(range(len(VARIANTS))) and not kept & rejected
    for index in kept:
        assert len(records[[r.ego4d_language_query_index for r in records].index(index)]
                   .category_question_answer_tuples) == len(VARIANTS[index].pairs)
    assert sum(metrics["rejects_by_reason"].values()) == len(rejects)


def test_require_all_categories_rejects_a_six_pair_clip_unless_switched_off():
    six = "\n\n".join(f"Category: {c}\nQuestion: {q}\nShort answer: {a}" for c, q, a in CANON[:6])
    records, rejects, _ = dataset([six])
    assert not records and reasons(rejects) == ["missing_categories"]
    assert "world knowledge" in rejects[0].detail
    records, rejects, _ = dataset([six], PostParams(require_all_categories=False))
    assert len(records[0].category_question_answer_tuples) == 6 and not rejects


def test_min_pairs_rejects_a_thin_clip():
    two = "\n\n".join(f"Category: {c}\nQuestion: {q}\nShort answer: {a}" for c, q, a in CANON[:2])
    records, rejects, metrics = dataset([two], PostParams(require_all_categories=False, min_pairs=3))
    assert not records and reasons(rejects) == ["too_few_pairs"]
    assert nonzero(metrics["clips_rejected_by_reason"]) == {"too_few_pairs": 1}


def test_identical_questions_within_a_clip_are_deduped_with_a_reason():
    repeated = CANONICAL.replace(CANON[1][1], CANON[0][1].upper())  # same question, other case
    records, rejects, metrics = dataset([repeated], PostParams(require_all_categories=False))
    assert len(records[0].category_question_answer_tuples) == 6
    assert reasons(rejects, "pair") == ["duplicate_question"] and rejects[0].category == "attribute recognition"
    assert nonzero(metrics["pairs_dropped_by_reason"]) == {"duplicate_question": 1}
    records, rejects, _ = dataset([repeated], PostParams(require_all_categories=False, dedupe_questions=False))
    assert len(records[0].category_question_answer_tuples) == 7 and not rejects


def test_dropped_pairs_are_reported_even_when_the_clip_is_kept():
    text = CANONICAL + "\n\nCategory: temporal reasoning\nQuestion: What happens first?\nShort answer: Tap"
    records, rejects, metrics = dataset([text])
    assert len(records) == 1 and reasons(rejects, "pair") == ["unknown_category"]
    assert rejects[0].question == "What happens first?" and nonzero(metrics["pairs_dropped_by_reason"]) == {"unknown_category": 1}


def test_blocked_empty_failed_and_truncated_responses():
    clips = [clip(i) for i in range(4)]
    results = [answer(0, None, "blocked", block_reason="SAFETY"), answer(1, None, "empty"),
               answer(2, None, "failed", error="503"), answer(3, CANONICAL[:-5], "truncated")]
    records, rejects, _ = build_dataset(clips, results, PostParams(require_all_categories=False), "text", GoldIndex())
    assert reasons(rejects, "clip") == ["response_blocked", "response_empty", "response_failed"]
    assert reasons(rejects, "pair") == ["truncated_block"] and len(records[0].category_question_answer_tuples) == 6


def run_stage(root: Path, manifest: Path, responses: Path, prompt: PromptParams = TEXT,
              post: PostParams | None = None) -> dict[str, bytes]:
    out = root / "out"
    run(post or PostParams(seed=3, video_root="videos"), prompt, manifest, responses, out / "dataset.json",
        out / "rejects.jsonl", out / "metrics.json", out / "plots")
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_output_is_byte_identical_whatever_order_the_answers_arrived_in(tmp_path: Path):
    texts = [v.text for v in VARIANTS]
    first = run_stage(tmp_path / "a", *write_inputs(tmp_path / "a", texts))
    order = list(range(len(texts)))
    random.Random(1).shuffle(order)
    second = run_stage(tmp_path / "b", *write_inputs(tmp_path / "b", texts, order))
    assert first == second and len(first) == 6


def test_json_answers_give_the_same_records_as_text_answers(tmp_path: Path):
    texts = [CANONICAL, VARIANTS[7].text, VARIANTS[20].text]
    from_text = run_stage(tmp_path / "t", *write_inputs(tmp_path / "t", texts))
    from_json = run_stage(tmp_path / "j", *write_inputs(tmp_path / "j", [json_text(t) for t in texts]), prompt=JSON)
    assert from_json["dataset.json"] == from_text["dataset.json"]
    assert json.loads(from_json["metrics.json"])["answers_parsed_as"] == {"json": 3}


def test_a_record_that_would_not_load_is_never_written():
    pairs = [QAPair(category=c, question=q, **{"short answer": a}) for c, q, a in CANON]
    record = build_record(clip(0), pairs, PostParams())
    with pytest.raises(DatasetValidationError, match="appears twice"):
        validated_dataset([record, record])
    broken = record.model_copy(update={"conversations": record.conversations[1:]})
    with pytest.raises(DatasetValidationError, match=record.id):
        validated_dataset([broken])


def load_like_llava(path: Path) -> list[dict]:
    """Read the dataset the way LLaVA-style training code does (json.load, list of dicts, plain keys)."""
    data = json.load(open(path, encoding="utf-8"))
    assert isinstance(data, list)
    for item in data:
        turns = item["conversations"]
        assert len(turns) % 2 == 0 and len(turns) >= 2, item["id"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2), item["id"]
        assert turns[0]["value"].startswith("<video>\n"), item["id"]
        assert sum(t["value"].count("<video>") for t in turns) == 1, item["id"]
        assert isinstance(item["video"], str) and not item["video"].startswith("/")
    return data


def test_the_sample_dataset_loads_like_llava_training_data(reproduced_sample: Path):
    data = load_like_llava(reproduced_sample / "data/ego4d_vqa_gemini.json")
    assert len(data) == 5
    root = "ego4d_vqa_gemini_videos/"  # post.video_root: where training code finds data/clips
    for item in data:
        assert item["video"].startswith(root)
        assert (reproduced_sample / "data/clips" / item["video"][len(root):]).is_file()
        assert item["duration_(s)"] > 0 and item["human_annotated"] is False


def test_prompt_format_is_a_postprocess_param_only(reproduced_copy: Path):
    repo_copy = reproduced_copy
    before = (repo_copy / "data/ego4d_vqa_gemini.json").read_bytes()
    result = run_cmd(["dvc", "exp", "run", "-S", "prompt.format=json"], repo_copy)
    assert "Running stage 'postprocess'" in result.stdout and "Running stage 'generate'" not in result.stdout
    # The replay answers are text whatever the prompt: the JSON reader falls back to the text parser.
    assert (repo_copy / "data/ego4d_vqa_gemini.json").read_bytes() == before
    metrics = json.loads((repo_copy / "metrics/postprocess.json").read_text())
    assert metrics["answers_parsed_as"] == {"text": 6}


def test_a_media_token_in_an_answer_drops_that_pair_not_the_run():
    text = CANONICAL.replace("A toaster", "A toaster <video>")
    records, rejects, _ = dataset([text], PostParams(require_all_categories=False))
    assert len(records[0].category_question_answer_tuples) == 6
    assert reasons(rejects) == ["media_token_in_text"] and rejects[0].category == "world knowledge"


def test_a_clip_that_cannot_become_a_record_is_rejected_alone():
    clips = [clip(0), clip(1).model_copy(update={"duration": None})]
    results = [answer(0, CANONICAL), answer(1, CANONICAL)]
    records, rejects, _ = build_dataset(clips, results, PostParams(), "text", GoldIndex())
    assert len(records) == 1 and reasons(rejects) == ["invalid_record"] and rejects[0].key.endswith("-1")


def test_a_dataset_without_a_single_record_is_an_error_that_says_why(tmp_path: Path):
    """Every answer cut at MAX_TOKENS (and not asked again): no clip has its seven categories. A 0-record dataset
    must not be locked by DVC as a success: the stage writes its outputs (to look at) and exits 1."""
    from evud.core.errors import UserError
    from evud.core.jsonl import write_jsonl
    from stages import postprocess as postprocess_stage

    clips = [clip(i) for i in range(3)]
    cut = [answer(i, CANONICAL[: len(CANONICAL) // 2], "truncated", finish_reason="MAX_TOKENS") for i in range(3)]
    write_jsonl(tmp_path / "clips.jsonl", clips)
    write_jsonl(tmp_path / "responses.jsonl", cut)
    with pytest.raises(UserError, match=r"no record: all 3 answered clip\(s\) were rejected \(missing_categories x3\)"):
        run(PostParams(), TEXT, tmp_path / "clips.jsonl", tmp_path / "responses.jsonl", tmp_path / "d.json",
            tmp_path / "rejects.jsonl", tmp_path / "m.json")
    assert json.loads((tmp_path / "d.json").read_text()) == [] and (tmp_path / "rejects.jsonl").read_text()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"post": {}, "prompt": {"name": "evud", "text": "t"}}))
    with pytest.raises(SystemExit) as exit_info:
        postprocess_stage.main(["--manifest", str(tmp_path / "clips.jsonl"), "--responses", str(tmp_path / "responses.jsonl"),
                                "--out", str(tmp_path / "d.json"), "--rejects", str(tmp_path / "r.jsonl"),
                                "--metrics", str(tmp_path / "m.json"), "--params", str(params)])
    message = str(exit_info.value.code)
    assert message.startswith("postprocess: the dataset has no record") and "data/rejects.jsonl" not in message
    assert str(tmp_path / "r.jsonl") in message


def test_a_verdicts_file_written_for_an_older_answer_is_not_applied(tmp_path: Path):
    """verify checked an earlier answer of clip 0 (its line's answer_key is not the answer's request key): its
    verdicts are not this answer's, so its pairs stay, unverified with the reason; clip 1's line, about its answer,
    drops its pairs (post.verdicts.blind_answerable=drop)."""
    post = PostParams(verdicts={**PostParams().verdicts, "blind_answerable": "drop"})
    clips = [clip(0), clip(1)]
    results = [answer(0, CANONICAL), answer(1, CANONICAL)]  # request keys k0, k1
    checks = [PairCheck(id=i + 1, category=c, question=q, answer=a, blind_answer=a, blind="exact_match",
                        verdict="blind_answerable") for i, (c, q, a) in enumerate(CANON)]
    verdicts_path = tmp_path / "verdicts.jsonl"
    write_jsonl(verdicts_path, [ClipVerdicts(**clips[0].model_dump(include=set(QueryIds.model_fields)),
                                             answer_key="k-of-an-older-answer", pairs=checks),
                                ClipVerdicts(**clips[1].model_dump(include=set(QueryIds.model_fields)),
                                             answer_key="k1", pairs=checks)])
    records, rejects, _ = build_dataset(clips, results, post, "text", GoldIndex(), read_verdicts(verdicts_path))
    assert [r.id for r in records] == [clips[0].key]
    assert {p.verdict for p in records[0].category_question_answer_tuples} == {Verdict.unverified}
    assert reasons(rejects) == ["no_pairs"] + ["verdict_blind_answerable"] * 7
