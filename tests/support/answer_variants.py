"""A corpus of realistic Gemini answer variants, with what a careful reader recovers from each.

Shared by tests/test_answers.py (table-driven parser test) and bench/bench_parse.py (published parser vs
ours). Every variant is one way Gemini has been seen to (or plausibly would) bend the requested
`Category: / Question: / Short answer:` format. `pairs` lists the (category, question, answer) triples a
careful reader recovers; `reasons` the problems the parser must report (sorted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CANON = [
    ("object recognition", "What is the person holding in their right hand?", "A 'Best Dad' mug"),
    ("attribute recognition", "What colour is the kettle on the counter?", "Stainless steel silver"),
    ("object state recognition", "Is the fridge door open or closed at the end?", "Closed"),
    ("object localisation", "Where does the person put the sponge?", "In the sink, next to the tap"),
    ("spatial reasoning", "Is the cutting board to the left or right of the stove?", "To the left"),
    ("functional reasoning", "Why does the person fill the kettle?", "To boil water for tea"),
    ("world knowledge", "What appliance is commonly used to toast bread?", "A toaster"),
]
TITLE = {c: c.title() for c, _, _ in CANON}


@dataclass(frozen=True)
class Variant:
    name: str
    text: str
    pairs: list[tuple[str, str, str]] = field(default_factory=lambda: list(CANON))
    reasons: list[str] = field(default_factory=list)
    truncated: bool = False  # finishReason MAX_TOKENS


def blocks(fmt: str = "Category: {c}\nQuestion: {q}\nShort answer: {a}", sep: str = "\n\n",
           qa: list[tuple[str, str, str]] | None = None, **names: str) -> str:
    """Render the canonical answers with one block template, optionally renaming categories."""
    return sep.join(fmt.format(c=names.get(c.replace(" ", "_"), c), q=q, a=a, n=i)
                    for i, (c, q, a) in enumerate(qa or CANON, 1))


CANONICAL = blocks()
WITHOUT_4 = CANON[:3] + CANON[4:]
WITHOUT_7 = CANON[:6]
TRUNCATED_AT = CANONICAL.rindex("Short answer: A toaster") + len("Short answer: A to")

VARIANTS = [
    Variant("canonical", CANONICAL),
    Variant("title_case_categories", blocks("Category: {c}\nQuestion: {q}\nShort answer: {a}",
                                            **{c.replace(" ", "_"): t for c, t in TITLE.items()})),
    Variant("us_spelling_localization", blocks(object_localisation="Object Localization")),
    Variant("upper_case_keys", blocks("CATEGORY: {c}\nQUESTION: {q}\nSHORT ANSWER: {a}")),
    Variant("title_case_short_answer_key", blocks("Category: {c}\nQuestion: {q}\nShort Answer: {a}")),
    Variant("windows_line_endings", CANONICAL.replace("\n", "\r\n")),
    Variant("extra_blank_lines_and_spaces", "\n\n  " + blocks("Category:  {c} \n\nQuestion: {q}  \n\n"
                                                              "Short answer:   {a}", sep="\n\n\n\n") + "\n\n"),
    Variant("markdown_bold_keys", blocks("**Category:** {c}\n**Question:** {q}\n**Short answer:** {a}")),
    Variant("markdown_bold_keys_colon_outside", blocks("**Category**: {c}\n**Question**: {q}\n**Short answer**: {a}")),
    Variant("markdown_bold_values", blocks("Category: **{c}**\nQuestion: {q}\nShort answer: *{a}*")),
    Variant("numbered_blocks", blocks("{n}. Category: {c}\n   Question: {q}\n   Short answer: {a}")),
    Variant("bulleted_blocks", blocks("- Category: {c}\n- Question: {q}\n- Short answer: {a}")),
    Variant("nested_bullets", blocks("* **Category:** {c}\n    * **Question:** {q}\n    * **Short answer:** {a}")),
    Variant("preamble_sentence", "Here are seven questions about the video, one for each category:\n\n" + CANONICAL),
    Variant("preamble_without_blank_line", "Sure! Here are the questions:\n" + CANONICAL),
    Variant("closing_remark", CANONICAL + "\n\nI hope these questions are helpful for your dataset!"),
    Variant("missing_category_line", blocks(qa=CANON[:3]) + "\n\nQuestion: " + CANON[3][1] + "\nShort answer: "
            + CANON[3][2] + "\n\n" + blocks(qa=CANON[4:]), pairs=WITHOUT_4, reasons=["missing_category"]),
    Variant("missing_category_block", blocks(qa=WITHOUT_4), pairs=WITHOUT_4),
    Variant("duplicate_category", blocks(object_localisation="object recognition"),
            pairs=WITHOUT_4, reasons=["duplicate_category"]),
    Variant("single_newlines_between_blocks", blocks(sep="\n")),
    Variant("answer_key_instead_of_short_answer", blocks("Category: {c}\nQuestion: {q}\nAnswer: {a}")),
    Variant("answer_wrapped_onto_second_line",
            CANONICAL.replace("Short answer: In the sink, next to the tap", "Short answer: In the sink,\nnext to the tap")),
    Variant("question_wrapped_onto_second_line",
            CANONICAL.replace("Question: Is the cutting board to the left", "Question: Is the cutting board\nto the left")),
    Variant("trailing_period_after_category", blocks("Category: {c}.\nQuestion: {q}\nShort answer: {a}")),
    Variant("cut_at_max_tokens_mid_answer", CANONICAL[:TRUNCATED_AT], pairs=WITHOUT_7,
            reasons=["truncated_block"], truncated=True),
    Variant("cut_at_max_tokens_mid_category", blocks(qa=WITHOUT_7) + "\n\nCategory: world kno", pairs=WITHOUT_7,
            reasons=["truncated_block"], truncated=True),
    Variant("ends_mid_block_without_max_tokens", blocks(qa=WITHOUT_7) + "\n\nCategory: world knowledge\nQuestion: "
            + CANON[6][1], pairs=WITHOUT_7, reasons=["incomplete_block"]),
    Variant("markdown_heading_per_block", blocks("### {c}\nQuestion: {q}\nShort answer: {a}",
                                                 **{c.replace(" ", "_"): t for c, t in TITLE.items()})),
    Variant("numbered_bold_headings", blocks("**{n}. {c}**\n**Question:** {q}\n**Answer:** {a}")),
    Variant("heading_and_category_line", blocks("## {n}. {c}\nCategory: {c}\nQuestion: {q}\nShort answer: {a}")),
    Variant("q_and_a_keys", blocks("Category: {c}\nQ: {q}\nA: {a}")),
    Variant("one_line_per_block_with_pipes", blocks("Category: {c} | Question: {q} | Short answer: {a}", sep="\n")),
    Variant("one_line_per_block_with_spaces", blocks("Category: {c} Question: {q} Short answer: {a}", sep="\n")),
    Variant("markdown_table", "| Category | Question | Short answer |\n|---|---|---|\n"
            + blocks("| {c} | {q} | {a} |", sep="\n")),
    Variant("unknown_eighth_category", CANONICAL + "\n\nCategory: temporal reasoning\nQuestion: What happens first?"
            "\nShort answer: The tap is opened", reasons=["unknown_category"]),
    Variant("category_with_number_and_gloss", blocks("Category {n}: {c} (from the list)\nQuestion: {q}\nShort answer: {a}")),
    Variant("snake_case_categories", blocks(**{c.replace(" ", "_"): c.replace(" ", "_") for c, _, _ in CANON})),
    Variant("dash_separators", blocks("Category - {c}\nQuestion - {q}\nShort answer - {a}")),
    Variant("blocks_in_another_order", blocks(qa=list(reversed(CANON))), pairs=list(reversed(CANON))),
    Variant("json_in_a_code_fence", "```json\n" + json.dumps(
        [{"category": c, "question": q, "answer": a} for c, q, a in CANON], indent=2) + "\n```"),
    Variant("key_and_value_on_separate_lines", blocks("Category:\n{c}\nQuestion:\n{q}\nShort answer:\n{a}")),
    Variant("horizontal_rules_between_blocks", blocks(sep="\n---\n")),
    Variant("bold_whole_lines", blocks("**Category: {c}**\n**Question: {q}**\n**Short answer: {a}**")),
    Variant("italic_keys", blocks("_Category:_ {c}\n_Question:_ {q}\n_Short answer:_ {a}")),
    Variant("echoed_assistant_prefix", "Assistant: " + CANONICAL),
    Variant("prose_refusal", "The video is too dark to identify objects, so I cannot confidently generate questions "
            "for each category.", pairs=[], reasons=["no_qa_blocks"]),
    Variant("empty_text", "", pairs=[], reasons=["no_qa_blocks"]),
]

# Answers that never reach a parser: the response itself says there is no text. The published script
# counted them as missing; so does ours (as `response_blocked` / `response_empty` rejects).
BLOCKED_RESPONSES = {
    "prompt_blocked_no_candidates": {"promptFeedback": {"blockReason": "SAFETY"}},
    "empty_candidate_list": {"candidates": []},
    "safety_finish_without_content": {"candidates": [{"finishReason": "SAFETY"}]},
}
