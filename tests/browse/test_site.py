"""The site's data: one row per clip with its status, reasons, pairs and gold marks; safe paths; same bytes twice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from evud.browse.build import build_site
from evud.browse.site import GOLD_DOWNLOAD_COLUMNS, PAIR_FIELDS, data_js, site_data
from evud.core.jsonl import write_jsonl
from evud.core.params import BrowseParams, load_section
from evud.core.records import ClipStatus, Reject, RejectScope
from evud.dataset.gold import GOLD_COLUMNS, GoldAnswer, GoldIndex
from evud.dataset.review_sheet import REVIEW_COLUMNS
from tests.support.browse_data import (blind_answerable_verdicts, clip_record, gemini_text, llava_record, query_ids,
                                       write_inputs)
from tests.support.repo import tree_digest


def read_data_js(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    prefix = "window.EVUD_BROWSE = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix):-2])


def rows_by_key(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each clip row as a dict of its named fields, by its query key."""
    rows = {}
    for row in data["clips"]:
        named = dict(zip(data["clip_fields"], row))
        named["pairs"] = json.loads(named["pairs"])  # a JSON string per clip: the page parses it when shown
        ids = [data["uids"][named["video"]], data["uids"][named["clip"]], data["uids"][named["annotation"]]]
        rows["-".join(ids + [str(named["index"])])] = named
    return rows


def test_the_sample_site_has_a_row_per_query_with_status_reasons_and_strips(reproduced_sample: Path):
    data = read_data_js(reproduced_sample / "data/browse/data.js")
    rows = rows_by_key(data)
    manifest = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    assert set(rows) == {"-".join([m["video_uid"], m["clip_uid"], m["annotation_uid"], str(m["language_query_index"])])
                         for m in manifest}
    statuses = [data["statuses"][r["status"]] for r in rows.values()]
    assert {s: statuses.count(s) for s in set(statuses)} == {"kept": 5, "rejected": 2, "skipped": 4}
    reasons = {data["reasons"][j[1]]: r for r in rows.values() for j in r["rejects"]}
    assert {"response_blocked", "no_qa_blocks", "unsafe_uid"} <= set(reasons)
    assert reasons["no_qa_blocks"]["answer"]  # Gemini's text, to see why nothing parsed
    kept = [r for r in rows.values() if data["statuses"][r["status"]] == "kept"]
    assert all(len(r["pairs"]) == 7 and r["local"] == 1 and r["strip"] for r in kept)
    assert all(r["template"] == "Objects: Where is object X before / after event Y?" for r in kept)
    strips = {p.stem for p in (reproduced_sample / "data/browse/strips").iterdir()}
    assert strips == {r["strip"] for r in rows.values() if r["strip"]} and len(strips) == 7
    # The cache lives in the store at the repository root, outside every DVC out.
    assert len(list((reproduced_sample / ".evud/strips").rglob("*.jpg"))) == 7


def test_gold_answers_are_marked_only_for_their_question():
    a, b = query_ids(0), query_ids(1)
    gold = GoldIndex(answers={
        (a.key, "world knowledge"): GoldAnswer(ego4d_video_uid="v1", ego4d_clip_uid="c1", ego4d_annotation_uid="a0",
                                               ego4d_language_query_index=0, category="world knowledge",
                                               question="world knowledge question 0?", gold_answer="world knowledge answer"),
        (b.key, "world knowledge"): GoldAnswer(ego4d_video_uid="v1", ego4d_clip_uid="c1", ego4d_annotation_uid="a1",
                                               ego4d_language_query_index=1, category="world knowledge",
                                               question="an older question?", gold_answer="world knowledge answer")})
    data = site_data([clip_record(a), clip_record(b)], [llava_record(a, human_annotated=True), llava_record(b)], [], {},
                     gold, {}, "../clips/", {})
    rows = rows_by_key(data)
    assert [p[3] for p in rows[a.key]["pairs"]] == [0, 0, 0, 0, 0, 0, 1]
    assert [p[3] for p in rows[b.key]["pairs"]] == [0] * 7
    assert (rows[a.key]["gold_pairs"], rows[a.key]["pair_cats"]) == (1, "0123456")
    assert (rows[a.key]["human"], rows[b.key]["human"]) == (1, 0)


def test_no_uid_becomes_a_path_unchecked(tmp_path: Path):
    """A clip whose uids or path are not the canonical safe ones gets no strip job and no player link."""
    sneaky = clip_record(query_ids(0).model_copy(update={"annotation_uid": ".."}), sha256="ab" * 32,
                         clip_path="../../outside.mp4")
    odd_path = clip_record(query_ids(1), sha256="cd" * 32, clip_path="v1/c1/a1/../../../../outside.mp4")
    (tmp_path / "outside.mp4").write_bytes(b"x")
    inputs = write_inputs(tmp_path / "in", [sneaky, odd_path], [], [], [])
    report = build_site(inputs, tmp_path / "site", BrowseParams(), None, tmp_path / "store")
    assert (report.strips.made, report.strips.failed) == (0, {})
    rows = rows_by_key(read_data_js(tmp_path / "site/data.js"))
    assert all(r["local"] == 0 and r["strip"] is None for r in rows.values())
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == ["app.js", "data.js", "index.html", "strips",
                                                                     "style.css"]


def test_data_js_escapes_markup_and_round_trips_every_string():
    evil = "</script><script>alert(1)</script> & \u2028 <!--"
    text = data_js({"a": evil})
    assert "</script" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text[len("window.EVUD_BROWSE = "):-2]) == {"a": evil}


def test_the_same_inputs_give_byte_identical_sites(reproduced_sample: Path, tmp_path: Path):
    from evud.browse.build import SiteInputs

    data = reproduced_sample / "data"
    inputs = SiteInputs(data / "clips.jsonl", data / "ego4d_vqa_gemini.json", data / "rejects.jsonl",
                        data / "responses.jsonl", data / "clips", data / "verdicts.jsonl")
    policy = load_section("post", reproduced_sample / "params.yaml").verdicts  # as dvc.yaml's browse passes it
    for name in ("one", "two"):
        build_site(inputs, tmp_path / name / "browse", BrowseParams(), None, tmp_path / f"store-{name}", workers=2,
                   verdict_policy=policy)
    assert tree_digest(tmp_path / "one/browse") == tree_digest(tmp_path / "two/browse")
    # And the same as `dvc repro`'s, but for the relative link to the clips (the site is elsewhere).
    ours, dvc_made = tree_digest(tmp_path / "one/browse"), tree_digest(data / "browse")
    assert {k: v for k, v in ours.items() if k != "data.js"} == {k: v for k, v in dvc_made.items() if k != "data.js"}
    assert dict(read_data_js(tmp_path / "one/browse/data.js"), clips_href="../clips/") == \
        read_data_js(data / "browse/data.js")


def test_rejects_of_unknown_clips_are_kept_aside_and_gemini_text_only_for_clips_with_rejects(tmp_path: Path):
    a, b = query_ids(0), query_ids(1)
    rejects = [Reject(key=b.key, stage="postprocess", reason="missing_categories", detail="missing world knowledge"),
               Reject(key="v9-c9-a9-0", stage="postprocess", scope=RejectScope.gold, reason="gold_unknown_clip")]
    data = site_data([clip_record(a), clip_record(b), clip_record(query_ids(2), status=ClipStatus.failed,
                                                                  reason="source_missing: gone")],
                     [llava_record(a)], rejects, {a.key: "text a", b.key: "text b"}, GoldIndex(), {}, "../clips/", {})
    rows = rows_by_key(data)
    assert (rows[a.key]["answer"], rows[b.key]["answer"]) == (None, "text b")
    assert [data["statuses"][r["status"]] for r in rows.values()] == ["kept", "rejected", "failed"]
    assert [data["reasons"][j[1]] for j in rows[query_ids(2).key]["rejects"]] == ["source_missing"]
    assert [o[-1] for o in data["orphan_rejects"]] == ["v9-c9-a9-0"]


def test_the_downloaded_gold_columns_are_the_review_sheets_that_the_gold_reader_needs():
    assert set(GOLD_COLUMNS) <= set(GOLD_DOWNLOAD_COLUMNS) <= set(REVIEW_COLUMNS)
    assert list(GOLD_DOWNLOAD_COLUMNS) == [c for c in REVIEW_COLUMNS if c in GOLD_DOWNLOAD_COLUMNS]


def test_a_verdict_line_written_for_an_older_answer_shows_no_blind_answer(tmp_path: Path):
    """verify checked an earlier answer of the clip (its answer_key is not the request key of the answer in
    responses.jsonl): the page shows none of that line's blind answers or reasons, as postprocess applies none."""
    a, b = query_ids(0), query_ids(1)
    records = [llava_record(a), llava_record(b)]
    inputs = write_inputs(tmp_path / "in", [clip_record(a), clip_record(b)], records, [],
                          [gemini_text(a, "answer a"), gemini_text(b, "answer b")])
    verdicts = tmp_path / "in/verdicts.jsonl"
    write_jsonl(verdicts, [blind_answerable_verdicts(a, records[0], answer_key="k-of-an-older-answer"),
                           blind_answerable_verdicts(b, records[1], answer_key="k")])  # gemini_text's request key
    build_site(dataclasses.replace(inputs, verdicts=verdicts), tmp_path / "site", BrowseParams(), None,
               tmp_path / "store")
    rows = rows_by_key(read_data_js(tmp_path / "site/data.js"))
    blind, reason = PAIR_FIELDS.index("blind_answer"), PAIR_FIELDS.index("reason")
    assert [(p[blind], p[reason]) for p in rows[a.key]["pairs"]] == [(None, None)] * 7
    assert {p[blind] for p in rows[b.key]["pairs"]} == {"a stale blind answer"}  # the line of this answer shows
