"""The answer parsers: every realistic variant yields its recoverable pairs or a precise reason."""

from __future__ import annotations

import json

import pytest

from evud.core.domain import EVUD_CATEGORIES
from evud.dataset.answers import (
    capitalise_first,
    normalise_category,
    parse_answer,
    parse_qa_blocks,
    parse_qa_json,
    strip_emphasis,
)
from tests.support.answer_variants import CANON, VARIANTS, Variant


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_every_variant_yields_its_pairs_or_a_reason(variant: Variant):
    parsed = parse_answer(variant.text, "text", truncated=variant.truncated)
    assert [tuple(p) for p in parsed.pairs] == variant.pairs
    assert sorted(p.reason for p in parsed.problems) == variant.reasons, parsed.problems


def test_there_are_many_variants():
    assert len(VARIANTS) >= 33


@pytest.mark.parametrize("raw, expected", [
    ("object recognition", "object recognition"),
    ("Object Localization", "object localisation"),
    ("**3. Object State Recognition.**", "object state recognition"),
    ("world_knowledge", "world knowledge"),
    ("Spatial-Reasoning:", "spatial reasoning"),
    ("Functional reasoning (why)", "functional reasoning"),
    ("Attribute recognition question", "attribute recognition"),
    ("temporal reasoning", None),
    ("", None),
])
def test_category_names_are_normalised(raw: str, expected: str | None):
    assert normalise_category(raw) == expected


def test_question_and_answer_text_is_kept_as_written():
    parsed = parse_qa_blocks("Category: Object localization\nQuestion: Where's the iPhone?\n"
                             "Short answer: On the **IKEA** shelf, near snake_case_label.txt")
    assert parsed.pairs[0] == ("object localisation", "Where's the iPhone?", "On the IKEA shelf, near snake_case_label.txt")


def test_emphasis_is_removed_but_not_inner_underscores_or_arithmetic():
    assert strip_emphasis("**Bold** and *italic* and _under_") == "Bold and italic and under"
    assert strip_emphasis("2 * 3 * 4 = 24") == "2 * 3 * 4 = 24"
    assert strip_emphasis("file_name_here") == "file_name_here"


@pytest.mark.parametrize(("written", "kept"), [
    ("The script reads window.__xss before it loads", "The script reads window.__xss before it loads"),
    ("Python calls __init__ first", "Python calls __init__ first"),
    ("a my__var name and 2**10 bytes", "a my__var name and 2**10 bytes"),
    ("x**2 + y**2", "x**2 + y**2"),
])
def test_removing_markup_never_changes_words_or_identifiers(written: str, kept: str):
    assert strip_emphasis(written) == kept
    parsed = parse_qa_blocks(f"Category: world knowledge\nQuestion: What is shown?\nShort answer: {written}")
    assert parsed.pairs[0][2] == kept


def test_markers_a_key_leaves_dangling_at_the_edges_are_removed():
    assert strip_emphasis("** What is on the table?") == "What is on the table?"
    assert strip_emphasis("A red mug**") == "A red mug"
    assert strip_emphasis("__init__ words") == "__init__ words"  # `__` is an identifier's, never emphasis


def test_capitalise_first_keeps_the_rest():
    assert capitalise_first("best Dad mug from IKEA") == "Best Dad mug from IKEA"
    assert capitalise_first("") == ""


def test_problems_name_the_item():
    parsed = parse_qa_blocks("Category: temporal reasoning\nQuestion: What happens first?\nShort answer: Tap")
    (problem,) = parsed.problems
    assert problem.reason == "unknown_category" and problem.category == "temporal reasoning"
    assert "What happens first?" in problem.detail and problem.question == "What happens first?"


# --- JSON ------------------------------------------------------------------------------------------

def json_answer(qa=CANON, key="answer") -> str:
    return json.dumps([{"category": c, "question": q, key: a} for c, q, a in qa])


def test_json_answer_gives_the_same_pairs_as_text():
    assert parse_qa_json(json_answer()).pairs == parse_qa_blocks(VARIANTS[0].text).pairs
    assert parse_answer(json_answer(), "json").format == "json"


def test_json_accepts_short_answer_key_and_a_wrapping_object():
    wrapped = json.dumps({"qa_pairs": json.loads(json_answer(key="short answer"))})
    assert [tuple(p) for p in parse_qa_json(wrapped).pairs] == CANON


def test_json_cut_at_max_tokens_keeps_complete_items():
    text = json_answer()
    cut = text[:text.rindex('{"category": "world knowledge"') + 40]
    parsed = parse_qa_json(cut, truncated=True)
    assert [tuple(p) for p in parsed.pairs] == CANON[:6]
    assert [p.reason for p in parsed.problems] == ["truncated_block"]


def test_json_invalid_item_is_reported_and_the_rest_kept():
    items = json.loads(json_answer())
    items[2] = {"category": "object state recognition", "question": "Is it open?"}
    parsed = parse_qa_json(json.dumps(items))
    assert len(parsed.pairs) == 6
    assert [p.reason for p in parsed.problems] == ["invalid_item"] and "item 3" in parsed.problems[0].detail


def test_json_that_is_not_a_list_of_items_is_rejected():
    assert [p.reason for p in parse_qa_json('{"note": "no"}').problems] == ["invalid_json"]
    assert [p.reason for p in parse_qa_json('[{"category": "x"').problems][0] == "invalid_json"


def test_json_prompt_with_a_text_answer_falls_back_to_the_text_parser():
    parsed = parse_answer(VARIANTS[0].text, "json")
    assert parsed.format == "text" and len(parsed.pairs) == 7


def test_the_canonical_answers_cover_the_seven_evud_categories():
    # Parsing speed is measured by bench/bench_parse.py, never by a timed test.
    assert set(EVUD_CATEGORIES) == {c for c, _, _ in CANON}


def test_no_answer_crashes_the_parser():
    """Cut, spliced and garbled variants: whatever comes back, the parser returns, never raises."""
    import random

    rng = random.Random(0)
    texts = [v.text for v in VARIANTS]
    noise = ["*", "**", "|", ":", "：", "\n", "\n\n", "```", "{", "[", "]", "#", "-", "Category:", "Answer:", "é"]
    for _ in range(2000):
        text = rng.choice(texts)
        cut = rng.randrange(len(text) + 1)
        text = text[:cut] + rng.choice(noise) + rng.choice(texts)[rng.randrange(len(text) + 1):]
        for answer_format in ("text", "json"):
            parsed = parse_answer(text, answer_format, truncated=rng.random() < 0.3)
            assert all(p.category in EVUD_CATEGORIES and p.question and p.answer for p in parsed.pairs)
            assert parsed.pairs or parsed.problems
