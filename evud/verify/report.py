"""verify's report: its metrics (`dvc metrics show`) and the verdict plot (`dvc plots show`), facts of the
verdicts file only, so two prompts or two models compare with `dvc exp show` / `dvc plots diff`."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from evud.core.domain import EVUD_CATEGORIES
from evud.core.params import GeminiParams, VerifyParams
from evud.core.records import ClipVerdicts, PairCheck, ResponseStatus, Verdict
from evud.gemini.cost import answers_cost
from evud.gemini.prices import PriceTable

VERDICTS = tuple(v.value for v in Verdict)
BLIND_ENDS = ("cannot_tell", "exact_match", "judge_agree", "judge_disagree")
SUPPORT_ENDS = ("supported", "contradicted", "not visible")


def shares(counts: Counter[str], names: tuple[str, ...]) -> dict[str, float]:
    total = sum(counts[name] for name in names)
    return {name: round(counts[name] / total, 4) if total else 0.0 for name in names}


def reason_code(pair: PairCheck) -> str:
    return (pair.reason or "").split(":", 1)[0]


def verify_metrics(records: list[ClipVerdicts], verify: VerifyParams, params: dict[str, GeminiParams], billed: bool,
                   batch: bool, prices: PriceTable, today: date) -> dict[str, Any]:
    """Verdict counts and shares (all pairs and per category), how each check ended, and what the checks cost."""
    pairs = [p for r in records for p in r.pairs]
    by_verdict = Counter(p.verdict.value for p in pairs)
    checks = [c for r in records for c in r.checks]
    answered = [c for c in checks if c.status is not ResponseStatus.failed]
    cost = answers_cost(answered, prices, batch, today) if billed else 0.0
    return {
        "blind": verify.blind,
        "grounded": verify.grounded,
        "model": params["blind"].model if verify.blind else None,
        "ground_model": params["ground"].model if verify.grounded else None,
        # A judge of another model or server (verify.judge_*): which one, for `dvc exp show` (absent when it is the
        # blind check's, so a run with the defaults reports what it always did).
        **({"judge_model": f"{params['judge'].model} ({params['judge'].backend})"} if verify.blind and (
            params["judge"].model, params["judge"].backend) != (params["blind"].model, params["blind"].backend) else {}),
        "clips": len(records),
        "clips_checked": sum(bool(r.pairs) for r in records),
        "clips_skipped_by_reason": dict(sorted(Counter((r.skipped or "").split(":", 1)[0]
                                                       for r in records if r.skipped).items())),
        "pairs": len(pairs),
        "pairs_by_verdict": {name: by_verdict[name] for name in VERDICTS},
        "share_by_verdict": shares(by_verdict, VERDICTS),
        # The share of each verdict within each category: which categories invite questions answerable blind.
        "share_by_category": {c: shares(Counter(p.verdict.value for p in pairs if p.category == c), VERDICTS)
                              for c in EVUD_CATEGORIES},
        "blind_check": {name: sum(p.blind == name for p in pairs) for name in BLIND_ENDS},
        "grounding_check": {name: sum(p.support == name for p in pairs) for name in SUPPORT_ENDS},
        "unverified_by_reason": dict(sorted(Counter(reason_code(p) for p in pairs
                                                    if p.verdict is Verdict.unverified).items())),
        "requests_by_check": dict(sorted(Counter(c.purpose for c in checks).items())),
        "requests_not_ok": dict(sorted(Counter(f"{c.purpose}:{c.status.value}" for c in checks
                                               if c.status is not ResponseStatus.ok).items())),
        "tokens_in": sum(c.usage.prompt_tokens for c in answered),
        "tokens_out": sum(c.usage.output_tokens + c.usage.thoughts_tokens for c in answered),
        # What these check answers cost at list price on the day each arrived; replay answers cost nothing.
        "answers_cost_usd": cost,
    }


def verdict_plot(records: list[ClipVerdicts]) -> list[dict[str, Any]]:
    """Rows for the stacked bars of `dvc plots show`: per category, the share of pairs of each verdict."""
    pairs = [p for r in records for p in r.pairs]
    rows = []
    for category in EVUD_CATEGORIES:
        counts = Counter(p.verdict.value for p in pairs if p.category == category)
        for name, share in shares(counts, VERDICTS).items():
            rows.append({"category": category, "verdict": name, "share": share, "pairs": counts[name]})
    return rows
