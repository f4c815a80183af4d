"""From the checks' answers to one verdict per QA pair: pure functions, no I/O.

    unsupported       the grounding check says the video contradicts the answer or does not show it
    blind_answerable  the blind answer is the video answer (normalised exact match, or the judge says they agree)
    grounded          the grounding check says the video supports it, and the blind check (when on) could not
                      answer it or answered otherwise
    unverified        nothing above was decided: `reason` says why (a check off, failed, blocked or unreadable)

In that order: a contradicted answer is wrong whether or not it needs the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evud.core.params import VerifyParams
from evud.core.records import AnswerEntry, PairCheck, ResponseStatus, Verdict
from evud.gemini.asking import UNREADABLE_ANSWER
from evud.verify.checks import GROUND, JUDGE, Pair, UnreadableAnswer, blind_field, read_items, same_answer

# How the blind check ended for one pair (PairCheck.blind).
CANNOT_TELL, EXACT_MATCH, JUDGE_AGREE, JUDGE_DISAGREE = "cannot_tell", "exact_match", "judge_agree", "judge_disagree"
ANSWERABLE = (EXACT_MATCH, JUDGE_AGREE)


@dataclass(frozen=True)
class CheckOutcome:
    """What one check request about a clip gave: its items by pair id, or the problem that left it without."""

    entry: AnswerEntry | None = None  # None: the check was not asked (off, or nothing to ask)
    items: dict[int, Any] = field(default_factory=dict)
    problem: str | None = None  # `code: detail` when the answer holds no usable items


def check_outcome(purpose: str, entry: AnswerEntry | None) -> CheckOutcome:
    """Read a check's answer: failed, blocked, empty, cut or unreadable answers are a problem, named by purpose."""
    if entry is None:
        return CheckOutcome()
    if (entry.error or "").startswith(UNREADABLE_ANSWER):  # asked again in the run, never readable
        return CheckOutcome(entry, problem=f"{purpose}_unreadable{entry.error.removeprefix(UNREADABLE_ANSWER)}")
    if entry.status is not ResponseStatus.ok:
        why = entry.error or entry.block_reason or entry.finish_reason or "no text"
        return CheckOutcome(entry, problem=f"{purpose}_{entry.status.value}: {why}")
    try:
        return CheckOutcome(entry, read_items(purpose, entry.text))
    except UnreadableAnswer as err:
        return CheckOutcome(entry, problem=f"{purpose}_unreadable: the answer is not the JSON asked for ({err})")


def needs_judge(pair: Pair, blind: CheckOutcome) -> str | None:
    """The blind answer to put before the judge: one that is given and is not the video answer word for word."""
    found = blind_field(blind.items, pair.id) if blind.problem is None else None
    if found is None:
        return None
    answer, cannot_tell = found
    if cannot_tell or answer is None or same_answer(pair.answer, answer):
        return None
    return answer


def blind_result(pair: Pair, blind: CheckOutcome, judge: CheckOutcome) -> tuple[str | None, str | None, str | None]:
    """(blind answer, how the blind check ended for the pair, the problem that left it undecided)."""
    if blind.problem is not None:
        return None, None, blind.problem
    found = blind_field(blind.items, pair.id)
    if found is None:
        return None, None, "blind_no_item: the blind answer has no item for this pair"
    answer, cannot_tell = found
    if cannot_tell:
        return answer, CANNOT_TELL, None
    if answer is not None and same_answer(pair.answer, answer):
        return answer, EXACT_MATCH, None
    if judge.problem is not None:
        return answer, None, judge.problem
    item = judge.items.get(pair.id)
    if item is None:
        return answer, None, f"{JUDGE}_no_item: the judge's answer has no item for this pair"
    return answer, JUDGE_AGREE if item.verdict == "agree" else JUDGE_DISAGREE, None


def ground_result(pair: Pair, ground: CheckOutcome) -> tuple[str | None, str | None]:
    """(supported / contradicted / not visible, the problem that left it undecided)."""
    if ground.problem is not None:
        return None, ground.problem
    item = ground.items.get(pair.id)
    if item is None:
        return None, f"{GROUND}_no_item: the grounding answer has no item for this pair"
    return item.support, None


def decide(blind_on: bool, grounded_on: bool, blind_answer: str | None, blind: str | None, support: str | None,
           problems: Sequence[str]) -> tuple[Verdict, str | None]:
    """The verdict and its reason, from what the checks that are on said."""
    if support in ("contradicted", "not visible"):
        return Verdict.unsupported, f"ground_{support.replace(' ', '_')}: the grounding check found the answer " + (
            "contradicted by the video" if support == "contradicted" else "not shown in the video")
    if blind in ANSWERABLE:
        how = "word for word" if blind == EXACT_MATCH else "in the judge's view"
        return Verdict.blind_answerable, f"blind_{blind}: answered {blind_answer!r} without the video, the same {how}"
    if problems:
        return Verdict.unverified, problems[0]
    if grounded_on and support == "supported":
        return Verdict.grounded, None
    if not blind_on and not grounded_on:
        return Verdict.unverified, "no_check: verify.blind and verify.grounded are both off"
    return Verdict.unverified, "not_grounded: needs the video (the blind check could not answer it alike); " \
                               "verify.grounded is off"


def pair_checks(pairs: Sequence[Pair], verify: VerifyParams, blind: CheckOutcome, judge: CheckOutcome,
                ground: CheckOutcome) -> list[PairCheck]:
    """Each pair with what every check said and its verdict."""
    checks = []
    for pair in pairs:
        blind_answer, blind_end, blind_problem = blind_result(pair, blind, judge) if verify.blind else (None, None, None)
        support, ground_problem = ground_result(pair, ground) if verify.grounded else (None, None)
        problems = [p for p in (blind_problem, ground_problem) if p]
        verdict, reason = decide(verify.blind, verify.grounded, blind_answer, blind_end, support, problems)
        checks.append(PairCheck(id=pair.id, category=pair.category, question=pair.question, answer=pair.answer,
                                blind_answer=blind_answer, blind=blind_end, support=support, verdict=verdict,
                                reason=reason))
    return checks
