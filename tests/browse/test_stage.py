"""The `browse` stage as DVC runs it: after postprocess, with its strips cached outside every out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.fixtures import golden_repro_output
from tests.support.repo import run


def strips_line(output: str) -> tuple[int, int]:
    """(made, reused) from the stage's summary line."""
    found = re.search(r"browse: \d+ clips, (\d+) strips made, (\d+) reused", output)
    assert found, output
    return int(found[1]), int(found[2])


def add_query(repo: Path, start: float, end: float, text: str) -> None:
    """One more NLQ query on the sample's first annotation (a new window, so a new clip)."""
    path = repo / "data/sample/nlq_train.json"
    nlq = json.loads(path.read_text())
    queries = nlq["videos"][0]["clips"][0]["annotations"][0]["language_queries"]
    queries.append(dict(queries[0], video_start_sec=start, video_end_sec=end, clip_start_sec=start, clip_end_sec=end,
                        query=text))
    path.write_text(json.dumps(nlq, indent=2))


def test_a_rerun_with_one_new_clip_draws_one_new_strip(golden_sample: Path, reproduced_copy: Path):
    repo = reproduced_copy  # a copy of a fresh clone's first `dvc repro`, its store (.evud/) included
    assert strips_line(golden_repro_output(golden_sample)) == (7, 0)
    add_query(repo, 30.2, 35.7, "where did I put the lid?")
    second = run(["dvc", "repro"], repo)
    assert "Running stage 'browse'" in second.stdout
    assert strips_line(second.stderr) == (1, 7)  # data/browse was deleted by DVC; the store in .evud/ was not
    assert len(list((repo / "data/browse/strips").iterdir())) == 8
    assert "where did I put the lid?" in (repo / "data/browse/data.js").read_text()
