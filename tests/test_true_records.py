"""Every record true: bad inputs caught with a reason, short clips refused, edited clips noticed, a clone
reproduces the committed lock, annotators' work never erased, setup mistakes stop a stage in one line."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
import yaml

from conftest import PROJECT_ROOT, make_repo_copy, run
from numbered_video import make_numbered_video
from stages import prepare
from stages.ego4d import MetadataError
from stages.params import ClipParams, DataParams, GcsParams
from stages.progress import StageIncomplete

FPS = 10
VIDEO = "5a5a5a5a-0000-4000-8000-000000000001"


def data_params(folder: Path, nlq: dict, videos: list[dict], video_url: str) -> DataParams:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ego4d.json").write_text(json.dumps({"videos": videos}))
    (folder / "nlq_train.json").write_text(json.dumps(nlq))
    return DataParams(name="t", root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=video_url, window_rounding="exact")


def one_annotation(queries: list[dict], clip_uid: str | None = "clip-1", annotation_uid: str | None = "ann-1",
                   video_uid: str | None = VIDEO) -> dict:
    annotation = {"language_queries": queries}
    if annotation_uid is not None:
        annotation["annotation_uid"] = annotation_uid
    clip = {"annotations": [annotation]}
    if clip_uid is not None:
        clip["clip_uid"] = clip_uid
    video = {"clips": [clip]}
    if video_uid is not None:
        video["video_uid"] = video_uid
    return video


def window(start: float, end: float) -> dict:
    return {"video_start_sec": start, "video_end_sec": end, "query": "where is the cup?", "template": "Objects"}


def prepare_records(tmp: Path, data: DataParams, clip: ClipParams | None = None) -> dict[str, dict]:
    """prepare in `tmp` (its failures accepted); records by `<clip_uid>/<annotation_uid>/<index>`."""
    os.environ["EVUD_ALLOW_FAILED"] = "1"
    try:
        records = prepare.run(data, clip or ClipParams(), GcsParams(), tmp / "clips", tmp / "clips.jsonl",
                              tmp / "metrics.json", 1).records
    except StageIncomplete:
        records = []
    finally:
        del os.environ["EVUD_ALLOW_FAILED"]
    lines = [json.loads(line) for line in (tmp / "clips.jsonl").read_text().splitlines()]
    return {f"{r['clip_uid']}/{r['annotation_uid']}/{r['language_query_index']}": r for r in lines}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / f"{VIDEO}.mp4"
    make_numbered_video(path, 40, fps=FPS, faststart=True)
    return path


# --- 1. ids -------------------------------------------------------------------------------------------


def test_queries_without_ids_are_skipped_naming_the_field_and_position(source: Path, tmp_path: Path):
    nlq = {"videos": [one_annotation([window(1, 3), window(4, 6)], annotation_uid=None),
                      one_annotation([window(7, 9)], clip_uid=""),
                      one_annotation([window(10, 12)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    records = list(prepare_records(tmp_path, data).values())
    skipped = sorted(r["reason"] for r in records if r["status"] == "skipped")
    assert skipped == [
        "missing_uid: annotation_uid is missing or empty at videos[0].clips[0].annotations[0].language_queries[0]",
        "missing_uid: annotation_uid is missing or empty at videos[0].clips[0].annotations[0].language_queries[1]",
        "missing_uid: clip_uid is missing or empty at videos[1].clips[0].annotations[0].language_queries[0]",
    ]
    assert [r["status"] for r in records].count("ok") == 1
    assert "None" not in json.dumps(records)


def test_a_query_listed_twice_is_recorded_never_cut_over_the_first(source: Path, tmp_path: Path):
    nlq = {"videos": [one_annotation([window(1, 3)]), one_annotation([window(20, 25)])]}  # same four ids
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    prepare_records(tmp_path, data)
    lines = [json.loads(line) for line in (tmp_path / "clips.jsonl").read_text().splitlines()]
    assert [(r["status"], r["window_start"]) for r in lines if r["status"] == "ok"] == [("ok", 1.0)]
    (duplicate,) = [r for r in lines if r["status"] == "skipped"]
    assert duplicate["reason"] == ("duplicate_query: videos[1].clips[0].annotations[0].language_queries[0] has the "
                                   "ids of videos[0].clips[0].annotations[0].language_queries[0]")


# --- 2. short clips --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["copy", "reencode"])
def test_a_truncated_source_never_gives_an_ok_clip(source: Path, tmp_path: Path, mode: str):
    truncated = tmp_path / f"{VIDEO}.mp4"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])  # the header says 40 s
    nlq = {"videos": [one_annotation([window(2, 6), window(16, 24)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(truncated))
    records = prepare_records(tmp_path, data, ClipParams(mode=mode, height=144))
    assert records["clip-1/ann-1/0"]["status"] == "ok"
    short = records["clip-1/ann-1/1"]
    assert short["status"] == "skipped" and short["reason"].startswith("short_clip: the file holds ["), short
    assert "of the window [16.0, 24.0] s" in short["reason"] and "truncated or corrupt" in short["reason"]


@pytest.mark.parametrize("mode", ["copy", "reencode"])
def test_metadata_longer_than_the_video_skips_the_window_it_cannot_fill(source: Path, tmp_path: Path, mode: str):
    nlq = {"videos": [one_annotation([window(30, 38), window(36, 45)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 60.0}], str(source))
    records = prepare_records(tmp_path, data, ClipParams(mode=mode, height=144))
    assert records["clip-1/ann-1/0"]["status"] == "ok"
    short = records["clip-1/ann-1/1"]
    assert short["status"] == "skipped" and short["reason"].startswith("source_shorter_than_metadata: "), short
    assert "ends at 40.0 s" in short["reason"] and "[36.0, 45.0]" in short["reason"]


def test_an_audio_only_source_is_skipped_not_failed(tmp_path: Path):
    audio = tmp_path / f"{VIDEO}.mp4"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        import numpy as np
        from fractions import Fraction

        for second in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, second * 16000, Fraction(1, 16000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    nlq = {"videos": [one_annotation([window(1, 3)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 5.0}], str(audio))
    (record,) = prepare_records(tmp_path, data).values()
    assert record["status"] == "skipped" and record["reason"].startswith("no_video_stream")


# --- 3. encodings, params, knobs -------------------------------------------------------------------


def test_metadata_in_another_encoding_stops_naming_the_file_and_byte_offset(source: Path, tmp_path: Path):
    nlq = {"videos": [one_annotation([{**window(1, 3), "query": "où est la tasse?"}])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    text = json.dumps(nlq, ensure_ascii=False)
    Path(data.nlq_json).write_bytes(text.encode("latin-1"))
    with pytest.raises(MetadataError) as err:
        prepare_records(tmp_path, data)
    offset = text.encode("latin-1").index("où".encode("latin-1")) + 1
    assert f"nlq_train.json is not UTF-8: byte {offset}" in str(err.value) and "iconv" in str(err.value)
    Path(data.nlq_json).write_text(text)
    ego4d = json.dumps({"videos": [{"video_uid": VIDEO, "duration_sec": 40.0, "note": "café"}]}, ensure_ascii=False)
    Path(data.ego4d_json).write_bytes(ego4d.encode("latin-1"))
    with pytest.raises(MetadataError, match=r"ego4d.json is not UTF-8: byte \d+"):
        prepare_records(tmp_path, data)


def test_metadata_with_a_byte_order_mark_is_read(source: Path, tmp_path: Path):
    nlq = {"videos": [one_annotation([window(1, 3)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    for name in (data.nlq_json, data.ego4d_json):
        Path(name).write_bytes(b"\xef\xbb\xbf" + Path(name).read_bytes())  # as some editors save JSON
    assert [r["status"] for r in prepare_records(tmp_path, data).values()] == ["ok"]


def stage(module: str, repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "EVUD_PROGRESS": "0", **(env or {})})


PREPARE_ARGS = ("--clips-dir", "data/clips", "--manifest", "data/clips.jsonl", "--metrics", "metrics/prepare.json")


@pytest.mark.parametrize(("module", "args", "change", "expected"), [
    ("prepare", PREPARE_ARGS, ("clip", "mode", "fast"), "params.yaml: clip.mode='fast': Input should be 'copy' or 'reencode'"),
    ("postprocess", ("--manifest", "m", "--responses", "r", "--out", "o", "--rejects", "x", "--metrics", "y"),
     ("post", "min_pairs", 0), "params.yaml: post.min_pairs=0: Input should be greater than or equal to 1"),
    ("prepare", PREPARE_ARGS, ("clip", "speed", 2), "params.yaml: clip.speed=2: Extra inputs are not permitted"),
])
def test_a_bad_param_stops_the_stage_in_one_line_naming_it(tmp_path: Path, module, args, change, expected):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    section, key, value = change
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = stage(module, PROJECT_ROOT, *args, "--params", str(tmp_path / "params.yaml"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"{module}: {expected.replace('params.yaml', str(tmp_path / 'params.yaml'))}"


def test_a_bad_runtime_knob_stops_the_stage_in_one_line_naming_it(tmp_path: Path):
    result = stage("prepare", PROJECT_ROOT, "--clips-dir", str(tmp_path / "c"), "--manifest", str(tmp_path / "m"),
                   "--metrics", str(tmp_path / "x"), env={"EVUD_WORKERS": "abc"})
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "prepare: EVUD_WORKERS='abc' is not a whole number of at least 1"


@pytest.mark.parametrize("module", ["prepare", "generate", "postprocess", "review_sheet"])
def test_help_keeps_the_usage_examples_line_breaks(module: str):
    result = stage(module, PROJECT_ROOT, "--help")
    assert result.returncode == 0
    example = next(line for line in result.stdout.splitlines() if f"python -m stages.{module}" in line)
    assert len(example) < 120, example  # the example wraps where its docstring does


# --- 4. edited clips ---------------------------------------------------------------------------------


def manifest_matches_clips(repo: Path) -> None:
    manifest = [json.loads(line) for line in (repo / "data/clips.jsonl").read_text().splitlines()]
    for record in (r for r in manifest if r["status"] == "ok"):
        data = (repo / "data/clips" / record["clip_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"], record["clip_path"]


@pytest.mark.parametrize("how", [["dvc", "repro"], ["dvc", "repro", "--force", "--single-item", "prepare"]])
def test_a_clip_edited_on_disk_is_never_recorded_with_another_files_sha256(tmp_path: Path, how: list[str]):
    repo = make_repo_copy(tmp_path / "repo")
    run(["dvc", "repro"], repo)
    victim = sorted((repo / "data/clips").rglob("*.mp4"))[0]
    with open(victim, "ab") as f:  # edited in place: a hard link into the clip store sees it too
        f.write(b"edited")
    assert "modified" in run(["dvc", "status"], repo).stdout
    run(how, repo)  # DVC's run cache restores the clips, or prepare re-checks them against the store
    manifest_matches_clips(repo)
    assert b"edited" not in victim.read_bytes()
    run(["dvc", "repro"], repo)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout


# --- 5. the review sheet never erases gold answers --------------------------------------------------------


def test_exporting_the_review_sheet_over_the_gold_file_keeps_every_gold_answer(reproduced_sample: Path, tmp_path: Path):
    repo = make_repo_copy(tmp_path / "repo")
    for name in ("data/clips.jsonl", "data/ego4d_vqa_gemini.json"):
        (repo / name).write_bytes((reproduced_sample / name).read_bytes())
    sheet = repo / "data/gold/review.csv"
    export = ["--dataset", "data/ego4d_vqa_gemini.json", "--manifest", "data/clips.jsonl", "--out", str(sheet)]
    assert stage("review_sheet", repo, *export).returncode == 0
    with open(sheet, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
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


# --- 6. reproducible from a clone -------------------------------------------------------------------------

# The sample's clips, as the cutter of this version makes them. A change to the cutter that changes these
# bytes must bump video.CUTTER_VERSION (which is part of every cut key, so old clips are cut again) and
# update this table in the same commit.
PINNED_CUTTER_VERSION = 2
PINNED_SAMPLE_CLIPS = {
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/0.mp4":
        "dcd2bcd1b0750a9fe46d7dac497fc5c23c76cfd1eb0252028450bbd56ee66bb9",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/1.mp4":
        "362b9651a3b470b1d26c001ed8ddef781e7f736e7ef2d90566b2da4a82e38eee",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/2.mp4":
        "36bc919cf68649b8dc17d93f2c68b7a5606a7a2ecde795c1680cb8f63aa05378",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/0.mp4":
        "75f3c10d1505caec782acd75901ed127b5bae487babcb58974157d7a44a59b7c",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/1.mp4":
        "56b1d1b010b3440262d694d3f98b67e15b1005abb0b037f91bec238c202d1d8d",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/2.mp4":
        "59a6ace139b5eea57d2196165d0423b7ae0201f2f96646025b2835a98be3e09c",
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d/a1b2c3d4-0003-4000-8000-00000000c301/e5f6a7b8-0003-4000-8000-00000000a301/0.mp4":
        "3a39c85f1bfd6f87577c70f6acf39a0bbf6e040044d974d9b4f7fed3cba5bf71",
}


def test_the_cutter_version_pins_the_sample_clips(reproduced_sample: Path):
    from stages.video import CUTTER_VERSION

    manifest = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    clips = {r["clip_path"]: r["sha256"] for r in manifest if r["status"] == "ok"}
    assert (CUTTER_VERSION, clips) == (PINNED_CUTTER_VERSION, PINNED_SAMPLE_CLIPS)


def test_a_fresh_clone_reproduces_the_committed_lock_and_metrics(reproduced_sample: Path):
    status = run(["git", "status", "--porcelain"], reproduced_sample).stdout
    assert status == "", f"`dvc repro` in a fresh clone changed tracked files:\n{status}"


def test_tracked_metrics_hold_facts_of_the_data_only(reproduced_sample: Path):
    before = {p.name: p.read_bytes() for p in (reproduced_sample / "metrics").glob("*.json")}
    run(["dvc", "repro", "--force"], reproduced_sample)
    assert {p.name: p.read_bytes() for p in (reproduced_sample / "metrics").glob("*.json")} == before
    names = {stage_name: set(json.loads(data)) for stage_name, data in before.items()}
    shared = names["prepare.json"] & names["postprocess.json"]
    assert shared <= {"queries", "clips_ok"}  # a name means one thing across stages


# --- 8. smaller items --------------------------------------------------------------------------------


def test_an_answer_without_candidates_or_reason_is_asked_again(reproduced_sample: Path, tmp_path: Path, fake_vertex):
    from test_vertex import manifest_clips, run_generate, vertex_params

    glitch = manifest_clips(reproduced_sample)[0]["sha256"]
    fake_vertex.script(glitch, "no_candidates")
    _, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert responses[glitch]["status"] == "failed" and responses[glitch]["retryable"]
    assert responses[glitch]["error"].startswith("no_candidates")
    fake_vertex.reset_counts()
    _, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert responses[glitch]["status"] == "ok" and dict(fake_vertex.calls) == {glitch: 1}


def test_clips_with_the_same_bytes_are_each_named_in_their_own_failure(reproduced_sample: Path, tmp_path: Path,
                                                                       fake_vertex, monkeypatch):
    from stages import generate
    from test_vertex import vertex_params

    records = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    original = next(r for r in records if r["status"] == "ok")
    twin = {**original, "clip_uid": "twin-clip"}  # another query whose window gave the very same bytes
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in (original, twin)))
    os.environ["EVUD_ALLOW_FAILED"] = "1"
    try:
        # Every clip is too large to send inline.
        generate.run(vertex_params(fake_vertex, video_source="inline", inline_limit_mb=0.001), load_prompt(),
                     manifest, reproduced_sample / "data/clips", tmp_path / "out.jsonl", tmp_path / "m.json", 2)
    except StageIncomplete:
        pass
    finally:
        del os.environ["EVUD_ALLOW_FAILED"]
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["clip_uid"] for r in results} == {original["clip_uid"], "twin-clip"}
    for result in results:
        assert result["status"] == "failed" and result["error"].startswith("inline_too_large: the clip file is")
        assert original["clip_uid"] not in result["error"] and "twin-clip" not in result["error"]


def load_prompt():
    from stages.params import load_section

    return load_section("prompt", PROJECT_ROOT / "params.yaml")
