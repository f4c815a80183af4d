"""The policy that decides what of an answer goes into the dataset (`post.*`): parse it, drop pairs training code
would misread, dedupe questions, apply verify's verdicts (`post.verdicts`: keep, flag or drop; a pair with a gold
answer is never dropped), require enough pairs and all seven categories; every drop with its reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from evud.core.domain import CATEGORY_ORDER, EVUD_CATEGORIES, question_key
from evud.core.params import PostParams
from evud.core.records import ClipVerdicts, GeminiResult, PairCheck, QAPair, Reject, RejectScope, ResponseStatus, Verdict
from evud.dataset.answers import parse_answer
from evud.dataset.gold import GoldIndex, applicable_gold

_STAGE = "postprocess"
_MEDIA_TOKENS = ("<video>", "<image>")


@dataclass
class ClipDecision:
    """What one clip's answer became: the pairs kept (empty if the clip is rejected) and every reject."""

    pairs: list[QAPair] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    pairs_parsed: int = 0
    parsed_as: str | None = None  # text / json, when the answer reached a parser


def dedupe_questions(key: str, pairs: list[QAPair]) -> tuple[list[QAPair], list[Reject]]:
    """Keep the first of identical questions within one clip (in category order)."""
    kept, dropped, seen = [], [], set()
    for pair in pairs:
        normalised = question_key(pair.question)
        if normalised in seen:
            dropped.append(Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason="duplicate_question",
                                  category=pair.category, question=pair.question,
                                  detail=f"{pair.category}: the same question is already asked in this clip"))
            continue
        seen.add(normalised)
        kept.append(pair)
    return kept, dropped


def drop_media_tokens(key: str, pairs: list[QAPair]) -> tuple[list[QAPair], list[Reject]]:
    """Drop pairs whose text holds a media token: training code would take it for the video (or an image)."""
    kept, dropped = [], []
    for pair in pairs:
        token = next((t for t in _MEDIA_TOKENS if t in pair.question or t in pair.short_answer), None)
        if token is None:
            kept.append(pair)
            continue
        dropped.append(Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason="media_token_in_text",
                              category=pair.category, question=pair.question,
                              detail=f"{pair.category}: the text contains {token!r}, which LLaVA-style loaders "
                                     "replace with the video"))
    return kept, dropped


def answer_checks(answer_key: str | None, pairs: Iterable[QAPair],
                  verdicts: ClipVerdicts | None) -> dict[str, PairCheck]:
    """verify's check of each pair of this answer, by category: the one join of verdicts to pairs (postprocess applies
    it, browse shows it). Only a line about this very answer counts (its answer_key is the answer's request key: a
    verdicts file older than the responses checked another answer), and only a check of the same question."""
    if verdicts is None or answer_key is None or verdicts.answer_key != answer_key:
        return {}
    checks = {c.category: c for c in verdicts.pairs}
    return {pair.category: check for pair in pairs
            if (check := checks.get(pair.category)) is not None
            and question_key(check.question) == question_key(pair.question)}


def unchecked_reason(answer_key: str, verdicts: ClipVerdicts | None) -> str:
    """Why a pair of this answer has no check of its own."""
    if verdicts is None:
        return "no verdict line for this clip"
    return "the verdict line is about another answer" if verdicts.answer_key != answer_key else "not checked"


def pair_verdicts(key: str, answer_key: str, pairs: list[QAPair],
                  verdicts: ClipVerdicts | None) -> tuple[list[QAPair], dict[str, PairCheck]]:
    """Pairs with verify's verdict attached (answer_checks), and each pair's check by category.

    A pair verify did not check (no line for the clip, or a line about another answer) is `unverified`, never
    silently trusted."""
    checks = answer_checks(answer_key, pairs, verdicts)
    marked, found = [], {}
    for pair in pairs:
        check = checks.get(pair.category)
        if check is None:
            why = unchecked_reason(answer_key, verdicts)
            check = PairCheck(id=0, category=pair.category, question=pair.question, answer=pair.short_answer,
                              verdict=Verdict.unverified, reason=f"no_verdict: {why}")
        found[pair.category] = check
        marked.append(pair.model_copy(update={"verdict": check.verdict}))
    return marked, found


def apply_verdicts(key: str, pairs: list[QAPair], checks: dict[str, PairCheck], post: PostParams,
                   gold: GoldIndex) -> tuple[list[QAPair], list[Reject]]:
    """Drop the pairs whose verdict `post.verdicts` drops, unless a human gold answer replaces their answer."""
    kept, dropped = [], []
    for pair in pairs:
        check = checks[pair.category]
        if post.verdicts[check.verdict.value] != "drop" or applicable_gold(gold, key, pair) is not None:
            kept.append(pair)
            continue
        dropped.append(Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason=f"verdict_{check.verdict.value}",
                              category=pair.category, question=pair.question,
                              detail=f"{pair.category}: {check.reason or check.verdict.value} (post.verdicts."
                                     f"{check.verdict.value}=drop)"))
    return kept, dropped


def clip_reject(key: str, reason: str, detail: str) -> Reject:
    return Reject(key=key, stage=_STAGE, scope=RejectScope.clip, reason=reason, detail=detail)


def clip_outcome(result: GeminiResult, post: PostParams, answer_format: str, verdicts: ClipVerdicts | None = None,
                 gold: GoldIndex | None = None, verified: bool = False) -> ClipDecision:
    """Parse one answer and apply the policy: dedupe, verdicts (when `verified`: verify ran), minimum pairs, all
    seven categories."""
    key = result.key
    if result.status not in (ResponseStatus.ok, ResponseStatus.truncated):
        why = result.block_reason or result.error or result.finish_reason or "no text"
        return ClipDecision(rejects=[Reject(key=key, stage="generate", reason=f"response_{result.status.value}",
                                           detail=why)])
    parsed = parse_answer(result.text or "", answer_format, truncated=result.status is ResponseStatus.truncated)
    outcome = ClipDecision(pairs_parsed=len(parsed.pairs), parsed_as=parsed.format)
    if not parsed.pairs and [p.reason for p in parsed.problems] == ["no_qa_blocks"]:
        outcome.rejects.append(clip_reject(key, "no_qa_blocks", parsed.problems[0].detail))
        return outcome
    outcome.rejects += [Reject(key=key, stage=_STAGE, scope=RejectScope.pair, reason=p.reason, detail=p.detail,
                               category=p.category, question=p.question) for p in parsed.problems]
    pairs = sorted((QAPair(category=c, question=q, **{"short answer": a}) for c, q, a in parsed.pairs),
                   key=lambda p: CATEGORY_ORDER[p.category])
    pairs, dropped = drop_media_tokens(key, pairs)
    outcome.rejects += dropped
    if post.dedupe_questions:
        pairs, dropped = dedupe_questions(key, pairs)
        outcome.rejects += dropped
    if verified:
        pairs, checks = pair_verdicts(key, result.request_key, pairs, verdicts)
        pairs, dropped = apply_verdicts(key, pairs, checks, post, gold or GoldIndex())
        outcome.rejects += dropped
    missing = [c for c in EVUD_CATEGORIES if c not in {p.category for p in pairs}]
    if not pairs:
        outcome.rejects.append(clip_reject(key, "no_pairs", "no usable QA pair (see this clip's pair rejects)"))
    elif len(pairs) < post.min_pairs:
        outcome.rejects.append(clip_reject(key, "too_few_pairs", f"{len(pairs)} pairs, post.min_pairs is "
                                            f"{post.min_pairs}"))
    elif post.require_all_categories and missing:
        outcome.rejects.append(clip_reject(key, "missing_categories", f"missing {', '.join(missing)} "
                                            "(post.require_all_categories is true)"))
    else:
        outcome.pairs = pairs
    return outcome
