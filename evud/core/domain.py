"""The EVUD domain, in one place: the seven question categories, every reason a reject can have, and when two
questions are the same question."""

from __future__ import annotations

from collections import Counter

from evud.core.records import Reject, RejectScope

# The published instruction's categories, in its order (the order of QA tuples in a record).
EVUD_CATEGORIES = (
    "object recognition",
    "attribute recognition",
    "object state recognition",
    "object localisation",
    "spatial reasoning",
    "functional reasoning",
    "world knowledge",
)
CATEGORY_ORDER = {name: i for i, name in enumerate(EVUD_CATEGORIES)}  # a category's place: sorts pairs EVUD's way

# Every reason a reject can have, so the metrics list each one (0 included): `dvc metrics diff` then shows
# a reason appearing, and docs/dataset.md's table of reasons has one place to check against.
REJECT_REASONS = {
    RejectScope.clip: ("response_blocked", "response_empty", "response_rejected", "response_failed", "unknown_clip", "no_qa_blocks",
                       "no_pairs", "too_few_pairs", "missing_categories", "invalid_record"),
    RejectScope.pair: ("truncated_block", "incomplete_block", "missing_category", "unknown_category",
                       "duplicate_category", "invalid_json", "invalid_item", "duplicate_question", "media_token_in_text",
                       # verify's verdicts that post.verdicts drops
                       "verdict_grounded", "verdict_blind_answerable", "verdict_unsupported", "verdict_unverified"),
    RejectScope.gold: ("gold_invalid_row", "gold_unknown_category", "gold_conflict", "gold_unknown_clip",
                       "gold_unmatched_pair", "gold_question_mismatch"),
}


def question_key(question: str) -> str:
    """What makes two questions the same: their words, whatever the case and spacing."""
    return " ".join(question.casefold().split())


def same_question(a: str, b: str) -> bool:
    return question_key(a) == question_key(b)


def count_by_reason(rejects: list[Reject], scope: RejectScope) -> dict[str, int]:
    counts = Counter({reason: 0 for reason in REJECT_REASONS[scope]})
    counts.update(r.reason for r in rejects if r.scope is scope)
    return dict(sorted(counts.items()))
