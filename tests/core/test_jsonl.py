"""JSON Lines and JSON files: canonical lines, tolerant reads, whole-or-nothing writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evud.core.jsonl import dumps, read_jsonl, write_json, write_jsonl
from evud.core.records import QueryIds


def test_equal_records_give_equal_bytes_and_nan_is_refused():
    assert dumps({"b": 1, "a": "é"}) == '{"a": "é", "b": 1}'
    assert dumps(QueryIds(video_uid="v", clip_uid="c", annotation_uid="a", language_query_index=0)) == \
        '{"annotation_uid": "a", "clip_uid": "c", "language_query_index": 0, "video_uid": "v"}'
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_lines_are_read_back_and_a_torn_last_line_is_skipped(tmp_path: Path, capsys):
    path = tmp_path / "log.jsonl"
    write_jsonl(path, [{"n": 1}, {"n": 2}, {"n": 3}])
    with open(path, "a") as f:
        f.write('{"n": 4, "tex')  # a writer killed mid-line
    assert [r["n"] for r in read_jsonl(path)] == [1, 2, 3]
    assert "log.jsonl:4 is not complete JSON" in capsys.readouterr().err
    assert list(read_jsonl(tmp_path / "missing.jsonl")) == []


def test_writes_replace_a_file_whole_and_sort_keys(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    path.write_text("old contents\n")
    assert write_jsonl(path, [{"b": 2, "a": 1}, {"c": 3}]) == 2
    assert path.read_text() == '{"a": 1, "b": 2}\n{"c": 3}\n'
    write_json(tmp_path / "m.json", {"z": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "z": 1}
    assert (tmp_path / "m.json").read_text().startswith('{\n  "a"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "out.jsonl"]  # no temp file left behind
