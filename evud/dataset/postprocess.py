"""The postprocess stage's work: parse Gemini's answers into LLaVA instruction-tuning records (EVUD layout).

Nothing here calls Gemini: changing the parser, the policy (`post.*`) or the gold answers re-parses the
stored answers for free. Output depends only on the inputs' content, never on the order answers arrived in.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evud.core.jsonl import read_jsonl, write_json, write_jsonl
from evud.core.params import PostParams, PromptParams
from evud.core.progress import summarise_failures
from evud.core.errors import UserError
from evud.core.records import ClipRecord, ClipVerdicts, GeminiResult, LlavaRecord, Reject, RejectScope
from evud.dataset.gold import GoldIndex, apply_gold, gold_metrics, load_gold_answers, report_unmatched
from evud.dataset.llava import build_record, record_sort_key, write_dataset
from evud.dataset.policy import clip_outcome, clip_reject
from evud.dataset.report import dataset_metrics, plot_data


def reject_sort_key(reject: Reject) -> tuple[str, ...]:
    return (reject.key, reject.scope.value, reject.reason, reject.category or "", reject.question or "",
            reject.detail or "")


def build_dataset(manifest: list[ClipRecord], results: list[GeminiResult], post: PostParams, answer_format: str,
                  gold: GoldIndex, verdicts: dict[str, ClipVerdicts] | None = None,
                  ) -> tuple[list[LlavaRecord], list[Reject], dict[str, Any]]:
    """Records, rejects and metrics from the manifest, the answers and verify's verdicts (None: verify did not run,
    pairs carry no verdict) (pure: no file is touched)."""
    clips = {c.key: c for c in manifest}
    results = sorted(results, key=lambda r: r.order)
    records: list[LlavaRecord] = []
    rejects: list[Reject] = []
    formats: Counter[str] = Counter()
    pairs_parsed = gold_applied = 0
    for result in results:
        clip = clips.get(result.key)
        if clip is None:
            rejects.append(clip_reject(result.key, "unknown_clip", "response for a clip that is not in the manifest"))
            continue
        outcome = clip_outcome(result, post, answer_format, (verdicts or {}).get(result.key), gold,
                               verified=verdicts is not None)
        rejects += outcome.rejects
        pairs_parsed += outcome.pairs_parsed
        if outcome.parsed_as:
            formats[outcome.parsed_as] += 1
        if outcome.pairs:
            pairs, applied = apply_gold(clip.key, outcome.pairs, gold)
            try:
                records.append(build_record(clip, pairs, post, human_annotated=applied > 0))
            except ValidationError as err:  # e.g. a manifest line without a duration: that clip only
                rejects.append(clip_reject(clip.key, "invalid_record", f"{err.error_count()} error(s): "
                                            f"{err.errors()[0]['loc']}: {err.errors()[0]['msg']}"))
                continue
            gold_applied += applied
    report_unmatched(gold, set(clips), {r.id for r in records})
    rejects = sorted(rejects + gold.rejects, key=reject_sort_key)
    metrics = dataset_metrics(manifest, results, records, rejects, pairs_parsed, formats,
                              gold_metrics(gold, gold_applied), post.verdicts if verdicts is not None else None)
    return sorted(records, key=record_sort_key), rejects, metrics


def read_verdicts(path: Path) -> dict[str, ClipVerdicts]:
    """verify's verdicts by clip key."""
    return {v.key: v for v in (ClipVerdicts.model_validate(r) for r in read_jsonl(path))}


def run(post: PostParams, prompt: PromptParams, manifest_path: Path, responses: Path, out: Path, rejects_path: Path,
        metrics: Path, plots_dir: Path | None = None, verdicts_path: Path | None = None) -> list[LlavaRecord]:
    manifest = [ClipRecord.model_validate(r) for r in read_jsonl(manifest_path)]
    results = [GeminiResult.model_validate(r) for r in read_jsonl(responses)]
    gold = load_gold_answers(post.gold_answers)
    verdicts = read_verdicts(verdicts_path) if verdicts_path is not None else None
    records, rejects, figures = build_dataset(manifest, results, post, prompt.format, gold, verdicts)
    write_dataset(out, records)
    write_jsonl(rejects_path, rejects)
    write_json(metrics, figures)
    if plots_dir is not None:
        for name, rows in plot_data(records, rejects, post.duration_bin_s).items():
            write_json(plots_dir / name, rows)
    print(summarise_failures("postprocess", [(r.key, f"{r.reason}: {r.detail}") for r in rejects]), file=sys.stderr)
    print(f"postprocess: {len(records)} records, {figures['qa_pairs']} QA pairs, "
          f"{figures['human_annotated']} human-annotated -> {out}", file=sys.stderr)
    if not records:
        raise EmptyDataset(empty_dataset_message(results, rejects, rejects_path))
    return records


class EmptyDataset(UserError):
    """Not one record: a dataset DVC must not lock as a success (the stage exits 1, its files written to look at)."""


def empty_dataset_message(results: list[GeminiResult], rejects: list[Reject], rejects_path: Path) -> str:
    clip_reasons = Counter(r.reason for r in rejects if r.scope is RejectScope.clip)
    why = ", ".join(f"{reason} x{n}" for reason, n in clip_reasons.most_common()) or "none recorded"
    return (f"postprocess: the dataset has no record: all {len(results)} answered clip(s) were rejected ({why}); "
            f"see {rejects_path} for each clip's reason, change the params that reject them (post.*, "
            "gemini.generation.max_output_tokens, gemini.retry_truncated) or the answers, and run again")
