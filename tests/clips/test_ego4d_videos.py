"""Cutting Ego4D from its 540p videos (video_540ss) where Ego4D has them, in the S3 stand-in: the manifest found as the
Ego4D CLI finds it, a video it does not list or whose 540p file disagrees in duration cut from full scale, and the
full-scale object of a video cut from its 540p file never read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from evud.clips import prepare
from evud.core.errors import UserError
from evud.core.params import ClipParams, DataParams, GcsParams
from evud.core.records import ClipRecord
from tests.support.cloud import moto_s3
from tests.support.fixtures import made_once
from tests.support.numbered_video import make_numbered_video, presented_frame_numbers

FPS = 10
LISTED = "a1b2c3d4-0000-4000-8000-000000000540"
UNLISTED = "b1b2c3d4-0000-4000-8000-000000001080"
VIDEOS_BUCKET, CONSORTIUM = "ego4d-videos", "ego4d-consortium-sharing"
WINDOWS = [(12.3, 15.0), (40.0, 44.5)]
LISTED_540SS = f"s3://{VIDEOS_BUCKET}/video_540ss/{LISTED}.mp4"


def full_scale_key(uid: str) -> str:
    return f"full_scale/{uid}.mp4"


@pytest.fixture(scope="module")
def sources(tmp_path_factory, worker_id) -> Path:
    """60 s numbered videos: the full-scale file, a '540p' file of the same timeline (other bytes), a short one."""
    def draw(folder: Path) -> None:
        folder.mkdir()
        make_numbered_video(folder / "full.mp4", 60, fps=FPS, crf=18)
        make_numbered_video(folder / "540ss.mp4", 60, fps=FPS, crf=32)
        make_numbered_video(folder / "540ss-short.mp4", 30, fps=FPS, crf=32)

    return made_once(tmp_path_factory, worker_id, "ego4d-variants", draw)


@pytest.fixture(scope="module")
def s3(sources: Path):
    with moto_s3() as (server, endpoint):
        client = boto3.client("s3", endpoint_url=endpoint)
        for bucket in (VIDEOS_BUCKET, CONSORTIUM):
            client.create_bucket(Bucket=bucket)
        for uid in (LISTED, UNLISTED):
            client.upload_file(str(sources / "full.mp4"), VIDEOS_BUCKET, full_scale_key(uid))
        client.upload_file(str(sources / "540ss.mp4"), VIDEOS_BUCKET, f"video_540ss/{LISTED}.mp4")
        client.upload_file(str(sources / "540ss-short.mp4"), VIDEOS_BUCKET, f"video_540ss/short-{LISTED}.mp4")
        yield server, endpoint, client


def put_manifest(client, version: str, text: str) -> str:
    """The manifest where the Ego4D CLI looks for it: public/<version>/video_540ss/manifest.csv."""
    key = f"public/{version}/video_540ss/manifest.csv"
    client.put_object(Bucket=CONSORTIUM, Key=key, Body=text.encode())
    return f"s3://{CONSORTIUM}/{key}"


def metadata(folder: Path, version: str, endpoint: str, **params: object) -> DataParams:
    """ego4d.json (with its version) and nlq_train.json: both videos 60 s, read from ego4d.json's s3_path."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = [{"video_uid": uid, "duration_sec": 60.0, "s3_path": f"s3://{VIDEOS_BUCKET}/{full_scale_key(uid)}",
               "video_metadata": {"fps": FPS}} for uid in (LISTED, UNLISTED)]
    (folder / "ego4d.json").write_text(json.dumps({"date": "2026-12-03", "version": version, "videos": videos}))
    nlq = {"videos": [{"video_uid": uid, "clips": [{"clip_uid": f"clip-{uid[:8]}", "annotations": [{
        "annotation_uid": f"ann-{uid[:8]}", "language_queries": [
            {"video_start_sec": start, "video_end_sec": end, "query": "q"} for start, end in WINDOWS]}]}]}
        for uid in (LISTED, UNLISTED)]}
    (folder / "nlq_train.json").write_text(json.dumps(nlq))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=None, window_rounding="exact",
                      s3_endpoint_url=endpoint, **params)


def run_prepare(tmp: Path, data: DataParams, height: int = 72) -> prepare.PrepareRun:
    return prepare.run(data, ClipParams(height=height), GcsParams(), tmp / "clips", tmp / "clips.jsonl",
                       tmp / "metrics.json", 2)


def by_video(records: list[ClipRecord]) -> dict[str, list[ClipRecord]]:
    grouped: dict[str, list[ClipRecord]] = {}
    for record in records:
        grouped.setdefault(record.video_uid, []).append(record)
    return grouped


def assert_exact(tmp: Path, records: list[ClipRecord]) -> None:
    for record in records:
        assert record.status.value == "ok", record.reason
        shown = presented_frame_numbers(tmp / "clips" / record.clip_path)
        assert shown == list(range(round(record.window_start * FPS), round(record.window_end * FPS)))


def test_a_listed_video_is_cut_from_its_540p_file_without_reading_its_full_scale_object(s3, tmp_path: Path, capsys):
    server, endpoint, client = s3
    put_manifest(client, "v1", f"video_uid,canonical_s3_location\n{LISTED},{LISTED_540SS}\n")
    server.reset_count()
    run = run_prepare(tmp_path, metadata(tmp_path / "meta", "v1", endpoint))
    videos = by_video(run.records)
    assert {r.video_variant for r in videos[LISTED]} == {"video_540ss"}
    assert {r.video_variant for r in videos[UNLISTED]} == {"full_scale"}
    assert server.touched(VIDEOS_BUCKET, full_scale_key(LISTED)) == []  # never a HEAD, never a GET
    assert "GET" in server.touched(VIDEOS_BUCKET, f"video_540ss/{LISTED}.mp4")
    assert "GET" in server.touched(VIDEOS_BUCKET, full_scale_key(UNLISTED))
    assert server.touched(CONSORTIUM, "public/v1/video_540ss/manifest.csv").count("GET") == 1  # read once a run
    assert_exact(tmp_path, run.records)  # frame-exact from either variant
    assert run.facts["video_variants"] == {"full_scale": 1, "video_540ss": 1}
    assert "cut from video_540ss: 1, from full_scale: 1 (1 not in the video_540ss manifest)" in capsys.readouterr().err

    # The variant decides the clip's bytes, so its cut key: asked for full scale, every clip is cut (and asked) anew.
    full = run_prepare(tmp_path / "full", metadata(tmp_path / "meta-full", "v1", endpoint, ego4d_videos="full_scale"))
    assert {r.video_variant for r in full.records} == {"full_scale"}
    keys = {r.key: (r.cut_key, r.sha256) for r in run.records}
    for record in full.records:
        if record.video_uid == LISTED:
            assert keys[record.key][0] != record.cut_key and keys[record.key][1] != record.sha256
        else:
            assert keys[record.key] == (record.cut_key, record.sha256)
    assert_exact(tmp_path / "full", full.records)


def test_a_540p_file_whose_duration_disagrees_is_not_used_and_the_summary_says_why(s3, tmp_path: Path, capsys):
    server, endpoint, client = s3
    put_manifest(client, "v2", f"file_uid,s3_path\n{LISTED},s3://{VIDEOS_BUCKET}/video_540ss/short-{LISTED}.mp4\n")
    run = run_prepare(tmp_path, metadata(tmp_path / "meta", "v2", endpoint))
    assert {r.video_variant for r in run.records} == {"full_scale"}
    assert_exact(tmp_path, run.records)
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if LISTED in line)
    assert "30.0 s" in line and "60.0 s" in line and "video_540ss" in line, line
    assert run.facts["video_variant_fallbacks"][LISTED].startswith("540p duration 30.0 s")


@pytest.mark.parametrize("manifest", [None, "uid,location\nx,y\n", "\xff\xfe not a csv"])
def test_a_missing_or_malformed_manifest_means_full_scale_in_one_line(s3, tmp_path: Path, capsys, manifest):
    server, endpoint, client = s3
    version = f"bad-{abs(hash(manifest)) % 10**6}"
    if manifest is not None:
        client.put_object(Bucket=CONSORTIUM, Key=f"public/{version}/video_540ss/manifest.csv",
                          Body=manifest.encode("latin-1"))
    run = run_prepare(tmp_path, metadata(tmp_path / "meta", version, endpoint))
    assert {r.video_variant for r in run.records} == {"full_scale"}
    lines = [line for line in capsys.readouterr().err.splitlines() if "manifest" in line]
    assert len(lines) == 1 and f"public/{version}/video_540ss/manifest.csv" in lines[0], lines
    assert "full scale" in lines[0]


@pytest.mark.parametrize("manifest", [None, "uid,location\nx,y\n"])
def test_a_missing_or_malformed_manifest_stops_prepare_when_video_540ss_was_asked_for(s3, tmp_path: Path, manifest):
    server, endpoint, client = s3
    version = f"asked-{manifest is None}"
    if manifest is not None:
        client.put_object(Bucket=CONSORTIUM, Key=f"public/{version}/video_540ss/manifest.csv", Body=manifest.encode())
    with pytest.raises(UserError, match=f"public/{version}/video_540ss/manifest.csv") as err:
        run_prepare(tmp_path, metadata(tmp_path / "meta", version, endpoint, ego4d_videos="video_540ss"))
    assert "data.ego4d_videos" in str(err.value)
    assert not (tmp_path / "clips.jsonl").exists()


def test_the_manifest_named_by_a_param_is_read_instead(s3, tmp_path: Path):
    server, endpoint, client = s3
    local = tmp_path / "manifest.csv"
    local.write_text(f"video_uid,s3_path\n{UNLISTED},s3://{VIDEOS_BUCKET}/video_540ss/{LISTED}.mp4\n")
    server.reset_count()
    run = run_prepare(tmp_path, metadata(tmp_path / "meta", "nowhere", endpoint, ego4d_manifest=str(local)))
    videos = by_video(run.records)
    assert {r.video_variant for r in videos[UNLISTED]} == {"video_540ss"}
    assert {r.video_variant for r in videos[LISTED]} == {"full_scale"}
    assert not [path for _, path in server.requests if path.startswith(f"/{CONSORTIUM}")]


def test_clips_taller_than_540_or_full_scale_asked_for_never_look_for_a_manifest(s3, tmp_path: Path):
    server, endpoint, client = s3
    server.reset_count()
    tall = run_prepare(tmp_path / "tall", metadata(tmp_path / "meta", "v1", endpoint), height=720)
    asked = run_prepare(tmp_path / "asked", metadata(tmp_path / "meta2", "v1", endpoint, ego4d_videos="full_scale"))
    assert {r.video_variant for r in tall.records + asked.records} == {"full_scale"}
    assert not [path for _, path in server.requests if path.startswith(f"/{CONSORTIUM}")]


def test_videos_named_by_video_url_look_for_no_manifest_and_keep_their_records(s3, sources: Path, tmp_path: Path):
    server, endpoint, _ = s3
    folder = tmp_path / "videos"
    folder.mkdir()
    for uid in (LISTED, UNLISTED):
        os.link(sources / "full.mp4", folder / f"{uid}.mp4")
    server.reset_count()
    data = metadata(tmp_path / "meta", "v1", endpoint).model_copy(update={"video_url": str(folder / "{video_uid}.mp4")})
    run = run_prepare(tmp_path, data)
    assert server.requests == []
    assert {r.video_variant for r in run.records} == {None}
    assert all("video_variant" not in line for line in (tmp_path / "clips.jsonl").read_text().splitlines())


def test_ego4d_moments_windows_are_cut_from_the_540p_files_too(s3, tmp_path: Path):
    server, endpoint, client = s3
    put_manifest(client, "moments", f"video_uid,canonical_s3_location\n{LISTED},{LISTED_540SS}\n")
    nlq = metadata(tmp_path / "meta", "moments", endpoint)
    moments = {"videos": [{"video_uid": uid, "clips": [{"clip_uid": f"clip-{uid[:8]}", "annotations": [{
        "annotator_uid": f"ann-{uid[:8]}", "labels": [
            {"label": "wash", "video_start_time": start, "video_end_time": end} for start, end in WINDOWS]}]}]}
        for uid in (LISTED, UNLISTED)]}
    (tmp_path / "meta" / "moments_train.json").write_text(json.dumps(moments))
    data = nlq.model_copy(update={"source": "ego4d_moments", "nlq_json": None,
                                  "annotations": str(tmp_path / "meta" / "moments_train.json")})
    server.reset_count()
    videos = by_video(run_prepare(tmp_path, data).records)
    assert {r.video_variant for r in videos[LISTED]} == {"video_540ss"}
    assert {r.video_variant for r in videos[UNLISTED]} == {"full_scale"}
    assert server.touched(VIDEOS_BUCKET, full_scale_key(LISTED)) == []
    assert_exact(tmp_path, videos[LISTED] + videos[UNLISTED])
