"""The dataset report: postprocess's metrics (`dvc metrics show`) and plot data (`dvc plots show`)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from evud.core.domain import EVUD_CATEGORIES, count_by_reason
from evud.core.records import (
    ClipRecord,
    ClipStatus,
    GeminiResult,
    LlavaRecord,
    QAPair,
    Reject,
    RejectScope,
    ResponseStatus,
    Verdict,
)

_ANSWERED = (ResponseStatus.ok, ResponseStatus.truncated)

def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def dataset_metrics(manifest: list[ClipRecord], results: list[GeminiResult], records: list[LlavaRecord],
                    rejects: list[Reject], pairs_parsed: int, formats: Counter[str],
                    gold: dict[str, Any], verdict_policy: dict[str, str] | None = None) -> dict[str, Any]:
    """Clips in and out, QA pairs, yields, rejects by reason, pairs per category, answer length, gold, and the pairs
    of the dataset by verify's verdict (with how many are flagged for review) when verify ran."""
    pairs = [p for r in records for p in r.category_question_answer_tuples]
    answered = sum(r.status in _ANSWERED for r in results)
    answers = [p.short_answer for p in pairs]
    return {
        "queries": len(manifest),
        "clips_ok": sum(c.status is ClipStatus.ok for c in manifest),
        "clips_answered": answered,
        "clips_out": len(records),
        "qa_pairs": len(pairs),
        # parse_yield: QA pairs the parser recovered / pairs asked for (7 per answered clip), before policy.
        "parse_yield": round(pairs_parsed / (len(EVUD_CATEGORIES) * answered), 4) if answered else None,
        # clip_yield: clips in the dataset / clips Gemini answered, after policy.
        "clip_yield": round(len(records) / answered, 4) if answered else None,
        "answers_parsed_as": dict(sorted(formats.items())),
        "clips_rejected_by_reason": count_by_reason(rejects, RejectScope.clip),
        "pairs_dropped_by_reason": count_by_reason(rejects, RejectScope.pair),
        "rejects_by_reason": dict(sorted(Counter(r.reason for r in rejects).items())),
        "pairs_per_category": {c: sum(p.category == c for p in pairs) for c in EVUD_CATEGORIES},
        "mean_answer_chars": _mean([len(a) for a in answers]),
        "mean_answer_words": _mean([len(a.split()) for a in answers]),
        "mean_window_s": _mean([r.duration for r in records]),
        "human_annotated": sum(r.human_annotated for r in records),
        "gold": gold,
        **verdict_metrics(pairs, verdict_policy),
    }


def verdict_metrics(pairs: list[QAPair], policy: dict[str, str] | None) -> dict[str, Any]:
    if policy is None:
        return {}
    counts = Counter(p.verdict.value for p in pairs if p.verdict is not None)
    return {"pairs_by_verdict": {v.value: counts[v.value] for v in Verdict},
            "pairs_flagged": sum(n for name, n in counts.items() if policy.get(name) == "flag")}


def duration_histogram(records: list[LlavaRecord], bin_s: float) -> list[dict[str, Any]]:
    """Clips per window-duration bin, every bin from 0 to the longest window (empty ones too), in order."""
    if not records:
        return []
    bins = Counter(int(r.duration // bin_s) for r in records)
    last = max(bins)
    return [{"window_s": f"{i * bin_s:g}-{(i + 1) * bin_s:g}", "clips": bins.get(i, 0)} for i in range(last + 1)]


def pairs_per_category(records: list[LlavaRecord]) -> list[dict[str, Any]]:
    counts = Counter(p.category for r in records for p in r.category_question_answer_tuples)
    return [{"category": c, "pairs": counts.get(c, 0)} for c in EVUD_CATEGORIES]


def rejects_per_reason(rejects: list[Reject]) -> list[dict[str, Any]]:
    counts = Counter((r.scope.value, r.reason) for r in rejects)
    return [{"reason": f"{scope}: {reason}", "count": n} for (scope, reason), n in sorted(counts.items())]


def plot_data(records: list[LlavaRecord], rejects: list[Reject], bin_s: float) -> dict[str, list[dict[str, Any]]]:
    """File name -> rows, for the plots dvc.yaml declares."""
    return {
        "window_durations.json": duration_histogram(records, bin_s),
        "pairs_per_category.json": pairs_per_category(records),
        "rejects_per_reason.json": rejects_per_reason(rejects),
    }
