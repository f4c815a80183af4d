"""The browser's data: one compact row per clip, from the manifest, the dataset, the rejects and the gold file.

Pure functions (no file is touched) that the build and the tests call. The page (assets/app.js) reads the
result from `data.js` as a global, because Chromium blocks fetch() of file:// URLs. Rows are arrays whose
field order is listed in the data itself (`clip_fields`), and repeated strings (uids, reasons,
categories) are interned, so 13,789 clips and 96,523 pairs stay a file the page parses in a blink.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evud.clips.ego4d import clip_relative_path
from evud.core.domain import EVUD_CATEGORIES, same_question
from evud.core.records import (
    ClipRecord,
    ClipStatus,
    ClipVerdicts,
    LlavaRecord,
    PairCheck,
    QAPair,
    Reject,
    RejectScope,
    UnsafeUidError,
    Verdict,
)
from evud.dataset.gold import GOLD_COLUMNS, GoldIndex
from evud.dataset.policy import answer_checks

SCHEMA_VERSION = 2  # 2: verify's verdicts (pair fields 4-6, verdict_pairs, review)
STATUSES = ("kept", "rejected", "skipped", "failed")  # in the dataset / answered but rejected / not cut by prepare
SCOPES = ("prepare", "clip", "pair", "gold")
CLIP_FIELDS = ("video", "clip", "annotation", "index", "status", "window_start", "window_end", "duration", "query",
               "template", "strip", "local", "human", "pairs", "pair_cats", "gold_pairs", "rejects", "answer",
               "verdict_pairs", "review")
VERDICTS = tuple(v.value for v in Verdict)
_DROPPED_BY_VERDICT = {f"verdict_{name}": i for i, name in enumerate(VERDICTS)}
# A pair's fields in a clip's `pairs`: category, question, answer, gold (1/0), verdict (index in `verdicts`, -1: none),
# the blind check's answer (or null), and why the verdict (or null).
PAIR_FIELDS = ("category", "question", "answer", "gold", "verdict", "blind_answer", "reason")
# The gold file the page downloads: the review sheet's columns that `post.gold_answers` reads (GOLD_COLUMNS) plus
# `id` and `question`, so a gold answer written for a question a later run no longer asks is caught, not applied.
GOLD_DOWNLOAD_COLUMNS = ("id", "ego4d_video_uid", "ego4d_clip_uid", "ego4d_annotation_uid",
                         "ego4d_language_query_index", "category", "question", "gold_answer")
assert set(GOLD_COLUMNS) <= set(GOLD_DOWNLOAD_COLUMNS)
# Escaped in data.js although it is never parsed as HTML: a `</script>` in an answer stays inert even if
# someone inlines the file into a page one day. U+2028/9 are line breaks to older JS parsers.
_JS_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class ClipMedia:
    """What the site can show of a clip's pixels: its strip (by sha256) and whether the local file plays."""

    strip: str | None = None
    local: bool = False


class Interner:
    """Strings to small integers, in first-seen order; `values` is the table the page looks them up in."""

    def __init__(self, initial: Iterable[str] = ()):
        self.values: list[str] = []
        self._index: dict[str, int] = {}
        for value in initial:
            self(value)

    def __call__(self, value: str) -> int:
        if value not in self._index:
            self._index[value] = len(self.values)
            self.values.append(value)
        return self._index[value]


def playable_clip_path(clip: ClipRecord) -> str | None:
    """The clip's path under the clips directory, if it is the canonical one built from checked uids."""
    try:
        expected = clip_relative_path(clip.ids())
    except UnsafeUidError:
        return None
    return expected if clip.clip_path == expected else None


def card_status(clip: ClipRecord, kept: set[str]) -> str:
    if clip.key in kept:
        return "kept"
    if clip.status is ClipStatus.ok:
        return "rejected"
    return clip.status.value


def prepare_reject(clip: ClipRecord) -> Reject | None:
    """prepare's reason for a query that became no clip, as a reject row (`code: detail`)."""
    if clip.status is ClipStatus.ok or not clip.reason:
        return None
    code, _, detail = clip.reason.partition(":")
    return Reject(key=clip.key, stage="prepare", reason=code.strip(), detail=detail.strip() or None)


def is_gold_answer(key: str, pair: QAPair, gold: GoldIndex) -> bool:
    """The pair's answer is the gold file's answer for this clip, category and question."""
    answer = gold.answers.get((key, pair.category))
    if answer is None or answer.gold_answer != pair.short_answer:
        return False
    return not answer.question or same_question(answer.question, pair.question)


def pair_row(key: str, pair: QAPair, check: PairCheck | None, gold: GoldIndex, categories: Interner) -> list[Any]:
    verdict = VERDICTS.index(pair.verdict.value) if pair.verdict is not None else -1
    return [categories(pair.category), pair.question, pair.short_answer, int(is_gold_answer(key, pair, gold)), verdict,
            check.blind_answer if check is not None else None, check.reason if check is not None else None]


def verdict_pairs(pairs: list[list[Any]], clip_rejects: list[Reject], categories: Interner) -> str:
    """Two characters per checked pair, kept or dropped by its verdict: its category and its verdict (as `pair_cats`,
    48 + index), so the page filters and counts by verdict without parsing any clip's pairs."""
    kept = [(p[0], p[4]) for p in pairs if p[4] >= 0]
    dropped = [(categories(r.category) if r.category else 0, _DROPPED_BY_VERDICT[r.reason]) for r in clip_rejects
               if r.scope is RejectScope.pair and r.reason in _DROPPED_BY_VERDICT]
    return "".join(chr(48 + c) + chr(48 + v) for c, v in kept + dropped)


def review_rank(pairs: str, policy: dict[str, str]) -> int:
    """The review queue's key: the first EVUD category (its index) holding a flagged or dropped pair, -1 for none.
    Annotators start with the pairs verify doubts; a gold answer keeps a dropped pair in the dataset."""
    doubted = [ord(pairs[i]) - 48 for i in range(0, len(pairs), 2)
               if policy.get(VERDICTS[ord(pairs[i + 1]) - 48], "keep") != "keep"]
    return min(doubted, default=-1)


def reject_row(reject: Reject, scopes: Interner, reasons: Interner, categories: Interner) -> list[Any]:
    scope = "prepare" if reject.stage == "prepare" else reject.scope.value
    category = categories(reject.category) if reject.category else -1
    return [scopes(scope), reasons(reject.reason), category, reject.question, reject.detail]


def site_data(manifest: list[ClipRecord], dataset: list[LlavaRecord], rejects: list[Reject],
              answers: dict[str, str], gold: GoldIndex, media: dict[str, ClipMedia],
              clips_href: str, strip_settings: dict[str, int], verdicts: dict[str, ClipVerdicts] | None = None,
              policy: dict[str, str] | None = None, answer_keys: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the page shows, one row per clip of the manifest (sorted by the four ids); verify's verdicts and
    the blind answers beside each pair, joined as postprocess joins them (a line about the clip's answer in
    responses.jsonl, `answer_keys`), and what `post.verdicts` does with each verdict (`policy`)."""
    verdicts, policy, answer_keys = verdicts or {}, policy or {}, answer_keys or {}
    records = {r.id: r for r in dataset}
    by_key: dict[str, list[Reject]] = {}
    for reject in rejects:
        by_key.setdefault(reject.key, []).append(reject)
    known, kept = {clip.key for clip in manifest}, set(records)
    uids, reasons, categories = Interner(), Interner(), Interner(EVUD_CATEGORIES)
    scopes, statuses = Interner(SCOPES), Interner(STATUSES)
    rows = []
    for clip in sorted(manifest, key=lambda c: c.order):
        record = records.get(clip.key)
        clip_rejects = ([r] if (r := prepare_reject(clip)) else []) + by_key.get(clip.key, [])
        shown_pairs = record.category_question_answer_tuples if record is not None else []
        checks = answer_checks(answer_keys.get(clip.key), shown_pairs, verdicts.get(clip.key))
        pairs = [pair_row(clip.key, p, checks.get(p.category), gold, categories) for p in shown_pairs]
        checked = verdict_pairs(pairs, clip_rejects, categories)
        shown = media.get(clip.key, ClipMedia())
        # pairs as a JSON string (the page parses a clip's pairs when it shows them); the categories, one
        # character each, and the gold count are all the filters and counters need.
        rows.append([
            uids(clip.video_uid), uids(clip.clip_uid), uids(clip.annotation_uid), clip.language_query_index,
            statuses(card_status(clip, kept)), clip.window_start, clip.window_end, clip.duration,
            clip.query, clip.template, shown.strip, int(shown.local), int(bool(record and record.human_annotated)),
            compact_json(pairs), "".join(chr(48 + p[0]) for p in pairs), sum(p[3] for p in pairs),
            [reject_row(r, scopes, reasons, categories) for r in clip_rejects],
            answers.get(clip.key) if any(r.scope is not RejectScope.gold for r in by_key.get(clip.key, [])) else None,
            checked, review_rank(checked, policy),
        ])
    orphans = [reject_row(r, scopes, reasons, categories) + [r.key] for r in rejects if r.key not in known]
    return {
        "schema": SCHEMA_VERSION,
        "clip_fields": list(CLIP_FIELDS),
        "pair_fields": list(PAIR_FIELDS),
        "verdicts": list(VERDICTS),
        "verdict_actions": [policy.get(name, "keep") for name in VERDICTS],
        "categories": categories.values,
        "evud_categories": len(EVUD_CATEGORIES),
        "statuses": statuses.values,
        "scopes": scopes.values,
        "reasons": reasons.values,
        "uids": uids.values,
        "clips": rows,
        "orphan_rejects": orphans,
        "gold_columns": list(GOLD_DOWNLOAD_COLUMNS),
        "clips_href": clips_href,
        "strip_settings": strip_settings,
    }


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def data_js(data: dict[str, Any]) -> str:
    """The site data as a script assigning one global: deterministic (sorted keys, no timestamps)."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in _JS_ESCAPES.items():
        text = text.replace(char, escape)
    return f"window.EVUD_BROWSE = {text};\n"
