"""The review sheet: one row per QA pair for annotators, and its round trip through the gold answers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml



def stage(module: str, repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"evud.dataset.{module}", *args], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, "EVUD_PROGRESS": "0"})



def test_exporting_the_review_sheet_over_the_gold_file_keeps_every_gold_answer(reproduced_copy: Path):
    repo = reproduced_copy
    sheet = repo / "data/gold/review.csv"
    export = ["--dataset", "data/ego4d_vqa_gemini.json", "--manifest", "data/clips.jsonl", "--out", str(sheet)]
    assert stage("review_sheet", repo, *export).returncode == 0
    with open(sheet, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    # verify's verdict of each pair, as the dataset carries it: the column to sort by to review doubted pairs first.
    dataset = json.loads((repo / "data/ego4d_vqa_gemini.json").read_text())
    assert [r["verdict"] for r in rows] == [p["verdict"] for d in dataset for p in d["category_question_answer_tuples"]]
    assert {r["verdict"] for r in rows} == {"blind_answerable", "unverified"}
    rows[0]["gold_answer"], rows[8]["gold_answer"] = "a gold answer", "another one"
    with open(sheet, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["post"]["gold_answers"] = "data/gold/review.csv"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    again = stage("review_sheet", repo, *export)  # the README's command, run a second time
    assert again.returncode == 0, again.stderr
    with open(sheet, encoding="utf-8", newline="") as f:
        gold = [r["gold_answer"] for r in csv.DictReader(f) if r["gold_answer"]]
    assert gold == ["a gold answer", "another one"]
