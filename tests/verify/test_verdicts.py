"""verify's pure logic: the free exact match, reading the checks' structured answers, and the verdict each
combination of check results gives."""

from __future__ import annotations

import json

import pytest

from evud.core.params import VerifyParams, load_section
from evud.core.records import AnswerEntry, GeminiResult, ResponseStatus, Verdict
from evud.verify.checks import (
    BLIND,
    GROUND,
    JUDGE,
    Pair,
    UnreadableAnswer,
    answer_pairs,
    blind_request,
    judge_request,
    normalised_answer,
    read_items,
    same_answer,
)
from evud.verify.verdicts import CheckOutcome, check_outcome, decide, needs_judge, pair_checks
from tests.support.browse_data import clip_record, query_ids
from tests.support.repo import PARAMS

PAIR = Pair(1, "world knowledge", "What is a knife used for?", "Cutting food")


def entry(text: str | None, status: ResponseStatus = ResponseStatus.ok, **fields) -> AnswerEntry:
    return AnswerEntry(request_key="k", model="m", backend="vertex", status=status, text=text, **fields)


def blind_answer(*items: dict) -> CheckOutcome:
    return check_outcome(BLIND, entry(json.dumps({"answers": list(items)})))


def verify_params(**updates) -> VerifyParams:
    return load_section("verify", PARAMS).model_copy(update=updates)


@pytest.mark.parametrize("video, blind, same", [
    ("Cutting food", "cutting food.", True),
    ("A red mug", "red mug", True),  # articles, case and punctuation ignored
    ("Café", "cafe", True),
    ("Left", "On the left", False),  # the judge decides
    ("Left", "", False),  # an empty blind answer is never a match
    ("2", "two", False),
])
def test_the_free_exact_match_ignores_case_accents_punctuation_and_articles_only(video: str, blind: str, same: bool):
    assert same_answer(video, blind) is same
    assert normalised_answer("The  Knife's edge!") == "knife s edge"


def test_a_check_answer_is_read_from_json_in_a_code_fence_and_an_unreadable_one_names_where():
    items = read_items(BLIND, '```json\n{"answers": [{"id": 1, "answer": " Cutting ", "cannot_tell": false},'
                              '{"id": 1, "answer": "second", "cannot_tell": false}]}\n```')
    assert items[1].answer == "Cutting"  # the first item of an id counts
    with pytest.raises(UnreadableAnswer, match=r"verdicts.0.verdict"):
        read_items(JUDGE, '{"verdicts": [{"id": 1, "verdict": "maybe"}]}')
    with pytest.raises(UnreadableAnswer):
        read_items(GROUND, "The video supports every answer.")


def test_failed_blocked_and_unreadable_checks_are_problems_named_by_purpose():
    assert check_outcome(BLIND, None) == CheckOutcome()
    failed = check_outcome(JUDGE, entry(None, ResponseStatus.failed, error="api_error_503: UNAVAILABLE"))
    assert failed.problem == "judge_failed: api_error_503: UNAVAILABLE"
    blocked = check_outcome(GROUND, entry(None, ResponseStatus.blocked, block_reason="SAFETY"))
    assert blocked.problem == "ground_blocked: SAFETY"
    assert check_outcome(BLIND, entry("not json")).problem.startswith("blind_unreadable: ")


def test_only_a_given_blind_answer_that_differs_word_for_word_goes_to_the_judge():
    assert needs_judge(PAIR, blind_answer({"id": 1, "answer": "cutting food", "cannot_tell": False})) is None
    assert needs_judge(PAIR, blind_answer({"id": 1, "answer": "", "cannot_tell": True})) is None
    assert needs_judge(PAIR, blind_answer({"id": 1, "answer": "a guess", "cannot_tell": True})) is None
    assert needs_judge(PAIR, blind_answer({"id": 2, "answer": "x", "cannot_tell": False})) is None
    assert needs_judge(PAIR, blind_answer({"id": 1, "answer": "To cut", "cannot_tell": False})) == "To cut"


@pytest.mark.parametrize("blind_on, grounded_on, blind, support, problems, verdict, reason", [
    (True, True, "exact_match", "contradicted", [], Verdict.unsupported, "ground_contradicted"),  # wrong first
    (True, True, "judge_agree", "not visible", [], Verdict.unsupported, "ground_not_visible"),
    (True, True, "exact_match", "supported", [], Verdict.blind_answerable, "blind_exact_match"),
    (True, False, "judge_agree", None, [], Verdict.blind_answerable, "blind_judge_agree"),
    (True, True, "judge_disagree", "supported", [], Verdict.grounded, None),
    (True, True, "cannot_tell", "supported", [], Verdict.grounded, None),
    (False, True, None, "supported", [], Verdict.grounded, None),
    (True, False, "cannot_tell", None, [], Verdict.unverified, "not_grounded"),
    (True, True, None, "supported", ["judge_failed: x"], Verdict.unverified, "judge_failed"),
    (False, False, None, None, [], Verdict.unverified, "no_check"),
])
def test_each_combination_of_check_results_gives_one_verdict(blind_on, grounded_on, blind, support, problems,
                                                              verdict, reason):
    got, why = decide(blind_on, grounded_on, "an answer", blind, support, problems)
    assert got is verdict
    assert (why or "").split(":")[0] == (reason or "")


def test_pairs_are_numbered_in_category_order_and_answers_without_pairs_say_why():
    ids = query_ids(0)
    text = ("Category: World knowledge\nQuestion: What is a knife for?\nShort answer: Cutting\n\n"
            "Category: Object recognition\nQuestion: What is held?\nShort answer: A knife")
    ok = GeminiResult(**ids.model_dump(), request_key="k", clip_sha256="0" * 64, model="m", backend="vertex",
                      status="ok", text=text)
    pairs, skipped = answer_pairs(ok, "text")
    assert skipped is None and [(p.id, p.category) for p in pairs] == [(1, "object recognition"),
                                                                       (2, "world knowledge")]
    blocked = ok.model_copy(update={"status": ResponseStatus.blocked, "text": None, "block_reason": "SAFETY"})
    assert answer_pairs(blocked, "text") == ([], "response_blocked: SAFETY")
    prose = ok.model_copy(update={"text": "A person is cooking."})
    assert answer_pairs(prose, "text")[1].startswith("no_pairs: ")


def test_the_blind_request_lists_questions_only_and_a_question_cannot_break_the_item_lines():
    gemini = load_section("gemini", PARAMS)
    tricky = Pair(1, "world knowledge", 'What does "{items}" mean?\nReally?', "Nothing")
    request = blind_request(clip_record(query_ids(0)), [tricky, PAIR], gemini, verify_params())
    lines = [json.loads(line) for line in request.prompt_text.splitlines() if line.startswith("{")]
    assert lines == [{"id": 1, "question": tricky.question}, {"id": 1, "question": PAIR.question}]
    assert "Nothing" not in request.prompt_text and "Cutting food" not in request.prompt_text
    assert request.video is False and request.purpose == BLIND
    judge = judge_request(clip_record(query_ids(0)), [(PAIR, "To cut")], gemini, verify_params())
    assert judge.key != request.key and '"answer_b": "To cut"' in judge.prompt_text


def test_a_check_off_leaves_its_fields_empty_and_the_other_decides():
    blind = blind_answer({"id": 1, "answer": "Cutting food", "cannot_tell": False})
    (check,) = pair_checks([PAIR], verify_params(blind=False, grounded=False), blind, CheckOutcome(), CheckOutcome())
    assert (check.verdict, check.blind_answer, check.blind) == (Verdict.unverified, None, None)
    (check,) = pair_checks([PAIR], verify_params(), blind, CheckOutcome(), CheckOutcome())
    assert (check.verdict, check.blind_answer, check.blind) == (Verdict.blind_answerable, "Cutting food", "exact_match")
