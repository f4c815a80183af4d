"""prepare against real protocols: videos in a moto S3, clips uploaded to the GCS emulator, bad inputs, crashes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import av
import boto3
import pytest
from google.cloud import storage

from evud.clips import prepare
from evud.clips.clip_store import ClipStore
from evud.clips.ego4d import MetadataError
from evud.core.jsonl import read_jsonl
from evud.core.params import ClipParams, DataParams, GcsParams
from evud.core.progress import StageIncomplete
from evud.core.store import store_root
from tests.support import cloud
from tests.support.claims import claim_holder
from tests.support.cloud import gcs_emulator, moto_s3
from tests.support.fixtures import made_once
from tests.support.edits import edit_in_place
from tests.support.http_source import silent_server, source_server
from tests.support.numbered_video import make_numbered_video, presented_frame_numbers
from tests.support.prepare_runs import prepare_run
from tests.support.repo import make_repo_copy, run

FPS = 10
VIDEO = "0f1e2d3c-0000-4000-8000-000000000001"


def write_metadata(folder: Path, durations: dict[str, float], windows: list[tuple[str, float, float]],
                   s3_paths: dict[str, str] | None = None) -> DataParams:
    """Ego4D-format ego4d.json and nlq_train.json: one clip and annotation per video, queries in order."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = [{"video_uid": uid, "duration_sec": d, "s3_path": (s3_paths or {}).get(uid),
               "video_metadata": {"fps": FPS}} for uid, d in durations.items()]
    (folder / "ego4d.json").write_text(json.dumps({"videos": videos}))
    nlq_videos: dict[str, list] = {}
    for uid, start, end in windows:
        nlq_videos.setdefault(uid, []).append({"video_start_sec": start, "video_end_sec": end, "query": "q"})
    nlq = {"videos": [{"video_uid": uid, "clips": [{"clip_uid": f"clip-{uid[:8]}", "annotations": [
        {"annotation_uid": f"ann-{uid[:8]}", "language_queries": queries}]}]} for uid, queries in nlq_videos.items()]}
    (folder / "nlq_train.json").write_text(json.dumps(nlq))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
                      nlq_json=str(folder / "nlq_train.json"), video_url=None, window_rounding="exact")


def run_prepare(tmp: Path, data: DataParams, clip: ClipParams | None = None, gcs: GcsParams | None = None,
                workers: int = 2) -> dict[str, dict]:
    records = prepare_run(tmp, data, clip, gcs, workers).records
    return {f"{r.language_query_index}@{r.video_uid[:8]}": r.model_dump() for r in records}


@pytest.fixture(scope="module")
def numbered_source(tmp_path_factory, worker_id) -> Path:
    def draw(folder: Path) -> None:
        folder.mkdir()
        make_numbered_video(folder / f"{VIDEO}.mp4", 120, fps=FPS, noise=True, crf=30)

    return made_once(tmp_path_factory, worker_id, "numbered-noise-120s", draw) / f"{VIDEO}.mp4"


@pytest.fixture(scope="module")
def s3_videos(numbered_source: Path):
    with moto_s3() as (server, endpoint):
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="ego4d-videos")
        s3.upload_file(str(numbered_source), "ego4d-videos", f"full_scale/{VIDEO}.mp4")
        yield server, endpoint


def test_cuts_exact_windows_from_s3_reading_a_small_fraction(s3_videos, numbered_source: Path, tmp_path: Path):
    server, endpoint = s3_videos
    data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 12.0, 17.0), (VIDEO, 40.0, 44.5)],
                          {VIDEO: f"s3://ego4d-videos/full_scale/{VIDEO}.mp4"})
    data = data.model_copy(update={"s3_endpoint_url": endpoint})
    server.reset_count()
    outcome = prepare_run(tmp_path, data)
    records = {r.language_query_index: r.model_dump() for r in outcome.records}
    assert [r["status"] for r in records.values()] == ["ok", "ok"]
    fetched = server.bytes_sent
    assert fetched < 0.45 * numbered_source.stat().st_size, f"read {fetched} of {numbered_source.stat().st_size} bytes"
    assert outcome.facts["source_bytes_read"] == pytest.approx(fetched, rel=0.05)
    for record in records.values():
        start, end = record["window_start"], record["window_end"]
        shown = presented_frame_numbers(tmp_path / "clips" / record["clip_path"], until=end - start)
        assert shown == list(range(round(start * FPS), round(end * FPS)))
        assert record["file_start"] <= start and record["file_end"] >= end


def test_the_exact_cut_holds_exactly_the_window(s3_videos, tmp_path: Path):
    _, endpoint = s3_videos
    data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 12.3, 15.0)],
                          {VIDEO: f"s3://ego4d-videos/full_scale/{VIDEO}.mp4"}).model_copy(update={"s3_endpoint_url": endpoint})
    (record,) = run_prepare(tmp_path, data, ClipParams(mode="exact", height=72)).values()
    assert presented_frame_numbers(tmp_path / "clips" / record["clip_path"]) == list(range(123, 150))
    assert (record["file_start"], record["file_end"]) == (12.3, 15.0)


def test_endpoint_from_the_standard_environment_variable(s3_videos, tmp_path: Path, monkeypatch):
    _, endpoint = s3_videos
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 1.0, 3.0)],
                          {VIDEO: f"s3://ego4d-videos/full_scale/{VIDEO}.mp4"})
    assert [r["status"] for r in run_prepare(tmp_path, data).values()] == ["ok"]


def test_bad_inputs_each_end_as_a_record_with_a_reason(s3_videos, numbered_source: Path, tmp_path: Path):
    _, endpoint = s3_videos
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(50_000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(numbered_source.read_bytes()[:200_000])  # moov is at the end: unreadable
    uids = {name: f"{i:08d}-0000-4000-8000-00000000000{i}" for i, name in
            enumerate(["ok", "missing", "corrupt", "truncated", "unlisted"], 1)}
    paths = {uids["ok"]: f"s3://ego4d-videos/full_scale/{VIDEO}.mp4",
             uids["missing"]: "s3://ego4d-videos/full_scale/not-there.mp4",
             uids["corrupt"]: str(corrupt), uids["truncated"]: str(truncated)}
    durations = {uids[n]: 60.0 for n in ("ok", "missing", "corrupt", "truncated")}
    durations[uids["ok"]] = 200.0  # ego4d.json says longer than the file really is (120 s)
    windows = [(uids["ok"], 5.0, 8.0), (uids["ok"], 210.0, 215.0), (uids["ok"], 9.0, 9.0), (uids["ok"], 9.0, 4.0),
               (uids["ok"], 150.0, 155.0),
               (uids["missing"], 1.0, 2.0), (uids["corrupt"], 1.0, 2.0), (uids["truncated"], 1.0, 2.0),
               (uids["unlisted"], 1.0, 2.0)]
    data = write_metadata(tmp_path / "meta", durations, windows, paths).model_copy(update={"s3_endpoint_url": endpoint})
    records = run_prepare(tmp_path, data)
    reasons = {key: (r["status"], (r["reason"] or "").split(":")[0]) for key, r in records.items()}
    assert reasons == {
        "0@00000001": ("ok", ""),
        "1@00000001": ("skipped", "window_outside_video"),
        "2@00000001": ("skipped", "empty_window"),
        "3@00000001": ("skipped", "empty_window"),
        "4@00000001": ("skipped", "no_frames_in_window"),
        # Input problems a re-run cannot fix are `skipped` (they never block the pipeline).
        "0@00000002": ("skipped", "source_missing"),
        "0@00000003": ("skipped", "unreadable_video"),
        "0@00000004": ("skipped", "unreadable_video"),
        "0@00000005": ("skipped", "unknown_video"),
    }
    assert "not-there.mp4" in records["0@00000002"]["reason"]


def test_missing_bucket_is_named(tmp_path: Path):
    with moto_s3() as (_, endpoint):
        data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 1.0, 2.0)],
                              {VIDEO: "s3://no-such-bucket-x/v.mp4"}).model_copy(update={"s3_endpoint_url": endpoint})
        (record,) = run_prepare(tmp_path, data).values()
    assert record["status"] == "skipped" and record["reason"].startswith("source_missing")
    assert "no-such-bucket-x" in record["reason"]


def test_access_denied_is_named_and_retried(numbered_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real denial: moto checks IAM, and the credentials in the environment may list the bucket, not read it."""
    import s3fs
    from moto import settings as moto_settings
    from moto.core.responses import ActionAuthenticatorMixin

    with moto_s3() as (_, endpoint):
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="ego4d-private")
        boto3.client("s3", endpoint_url=endpoint).upload_file(str(numbered_source), "ego4d-private", "v.mp4")
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="list-only", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "*"}]}))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # from now on moto checks IAM
        monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
        s3fs.S3FileSystem.clear_instance_cache()  # no filesystem object holding earlier credentials
        data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 1.0, 2.0)],
                              {VIDEO: "s3://ego4d-private/v.mp4"}).model_copy(update={"s3_endpoint_url": endpoint})
        (record,) = run_prepare(tmp_path, data).values()
    assert record["status"] == "failed"  # credentials can be fixed: the next run tries again
    assert record["reason"].startswith("source_denied: s3://ego4d-private/v.mp4: access denied"), record["reason"]


@pytest.mark.parametrize(("content", "field"), [("{not json", "not valid JSON"), ('{"clips": []}', "'videos'"),
                                                ('{"videos": [{"clips": 3}]}', "videos[0].clips")])
def test_malformed_metadata_fails_fast_naming_file_and_field(tmp_path: Path, content: str, field: str):
    data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 1.0, 2.0)])
    Path(data.nlq_json).write_text(content)
    with pytest.raises(MetadataError, match="nlq_train.json") as err:
        run_prepare(tmp_path, data)
    assert field in str(err.value)


def test_uploads_to_gcs_skip_existing_and_keep_local_false(numbered_source: Path, tmp_path: Path):
    data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 2.0, 5.0), (VIDEO, 30.0, 33.0)],
                          {VIDEO: str(numbered_source)})
    with gcs_emulator("evud-clips"):
        gcs = GcsParams(bucket="evud-clips", prefix="clips/v1")
        records = run_prepare(tmp_path, data, ClipParams(keep_local=False), gcs)
        uris = sorted(r["clip_uri"] for r in records.values())
        assert uris == [f"gs://evud-clips/clips/v1/{VIDEO}/clip-{VIDEO[:8]}/ann-{VIDEO[:8]}/{i}.mp4" for i in (0, 1)]
        assert not list((tmp_path / "clips").rglob("*.mp4"))  # removed once the upload verified
        bucket = storage.Client().bucket("evud-clips")
        blobs = {b.name: b for b in bucket.list_blobs(prefix="clips/v1/")}
        assert {b.md5_hash for b in blobs.values()} == {_md5_of(tmp_path, r) for r in records.values()}
        generations = {name: b.generation for name, b in blobs.items()}
        again = prepare_run(tmp_path, data, ClipParams(keep_local=False), gcs)
        assert again.facts["cut"] == 0  # nothing re-cut: the verified blobs count as done
        assert {r.sha256 for r in again.records} == {r["sha256"] for r in records.values()}
        assert {b.name: b.generation for b in bucket.list_blobs(prefix="clips/v1/")} == generations


def _md5_of(tmp_path: Path, record: dict) -> str:
    return ClipStore(store_root() / "clips").get(record["cut_key"]).md5_b64


def test_existing_blob_with_same_bytes_is_not_uploaded_again(numbered_source: Path, tmp_path: Path):
    data = write_metadata(tmp_path / "meta", {VIDEO: 120.0}, [(VIDEO, 2.0, 5.0)], {VIDEO: str(numbered_source)})
    with gcs_emulator("evud-clips"):
        run_prepare(tmp_path / "a", data, gcs=GcsParams(bucket="evud-clips"))
        generation = next(storage.Client().bucket("evud-clips").list_blobs()).generation
        run_prepare(tmp_path / "b", data, gcs=GcsParams(bucket="evud-clips"))  # another machine, same clip
        assert next(storage.Client().bucket("evud-clips").list_blobs()).generation == generation


def test_http_and_gs_sources_are_read_in_place(numbered_source: Path, tmp_path: Path):
    with source_server(numbered_source.parent) as server, gcs_emulator("ego4d-mirror"):
        storage.Client().bucket("ego4d-mirror").blob(f"v/{VIDEO}.mp4").upload_from_filename(str(numbered_source))
        for name, url in [("http", f"{server.url}/{{video_uid}}.mp4"), ("gs", "gs://ego4d-mirror/v/{video_uid}.mp4")]:
            data = write_metadata(tmp_path / name / "meta", {VIDEO: 120.0}, [(VIDEO, 30.0, 33.0)])
            (record,) = run_prepare(tmp_path / name, data.model_copy(update={"video_url": url})).values()
            assert record["status"] == "ok", (name, record["reason"])
            shown = presented_frame_numbers(tmp_path / name / "clips" / record["clip_path"], until=3.0)
            assert shown == list(range(300, 330)), name


def test_an_http_source_that_fails_is_failed_with_its_status_and_only_404_or_410_is_missing(numbered_source: Path,
                                                                                           tmp_path: Path):
    """A CDN answering 503, or not answering at all, is a failure a re-run fixes (the stage exits 1 and the next
    `dvc repro` cuts it); only 404 and 410 say the video is not there."""
    uids = {name: f"{i:08d}-0000-4000-8000-0000000000a{i}" for i, name in
            enumerate(["sick", "gone", "removed", "fine", "down"], 1)}
    served = tmp_path / "served"
    served.mkdir()
    for name in ("sick", "fine"):
        (served / f"{uids[name]}.mp4").write_bytes(numbered_source.read_bytes())
    closed_port = cloud.free_port()  # nothing listens there
    with source_server(served) as server:
        server.statuses = {f"{uids['sick']}.mp4": 503, f"{uids['removed']}.mp4": 410}
        paths = {uid: f"{server.url}/{uid}.mp4" for uid in uids.values()}
        paths[uids["down"]] = f"http://127.0.0.1:{closed_port}/{uids['down']}.mp4"
        data = write_metadata(tmp_path / "meta", {uid: 120.0 for uid in uids.values()},
                              [(uid, 10.0 + i, 12.0 + i) for i, uid in enumerate(uids.values())], paths)
        with pytest.raises(StageIncomplete, match=r"2 of 5 clip\(s\) failed for a reason a retry can fix"):
            prepare.run(data, ClipParams(), GcsParams(), tmp_path / "clips", tmp_path / "clips.jsonl",
                        tmp_path / "metrics.json", 2)
        records = {r["video_uid"]: r for r in read_jsonl(tmp_path / "clips.jsonl")}
        outcome = {name: (records[uid]["status"], (records[uid]["reason"] or "")) for name, uid in uids.items()}
        assert outcome["fine"][0] == "ok"
        assert outcome["sick"][0] == "failed" and "HTTP 503" in outcome["sick"][1], outcome["sick"]
        assert outcome["down"][0] == "failed" and "cannot connect" in outcome["down"][1], outcome["down"]
        assert outcome["gone"] == ("skipped", f"source_missing: {paths[uids['gone']]} does not exist (HTTP 404)")
        assert outcome["removed"] == ("skipped", f"source_missing: {paths[uids['removed']]} does not exist (HTTP 410)")
        server.statuses = {f"{uids['removed']}.mp4": 410}  # the CDN healed
        again = prepare_run(tmp_path, data)
        healed = {r.video_uid: r.status.value for r in again.records}
        assert healed[uids["sick"]] == "ok" and again.facts["cut"] == 1


def data_params(folder: Path, nlq: dict, videos: list[dict], video_url: str) -> DataParams:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ego4d.json").write_text(json.dumps({"videos": videos}))
    (folder / "nlq_train.json").write_text(json.dumps(nlq))
    return DataParams(root=str(folder), ego4d_json=str(folder / "ego4d.json"),
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
    prepare_run(tmp, data, clip, workers=1)
    lines = [json.loads(line) for line in (tmp / "clips.jsonl").read_text().splitlines()]
    return {f"{r['clip_uid']}/{r['annotation_uid']}/{r['language_query_index']}": r for r in lines}


@pytest.fixture(scope="module")
def source(tmp_path_factory, worker_id) -> Path:
    def draw(folder: Path) -> None:
        folder.mkdir()
        make_numbered_video(folder / f"{VIDEO}.mp4", 40, fps=FPS, faststart=True)

    return made_once(tmp_path_factory, worker_id, "numbered-40s-faststart", draw) / f"{VIDEO}.mp4"


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


@pytest.mark.parametrize("mode", ["copy", "exact"])
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


@pytest.mark.parametrize("mode", ["copy", "exact"])
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
        from fractions import Fraction

        import numpy as np

        for second in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, second * 16000, Fraction(1, 16000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    nlq = {"videos": [one_annotation([window(1, 3)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 5.0}], str(audio))
    (record,) = prepare_records(tmp_path, data).values()
    assert record["status"] == "skipped" and record["reason"].startswith("no_video_stream")


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


def test_two_http_videos_of_the_same_size_without_a_checksum_are_never_the_same_source(tmp_path: Path):
    """An HTTP server's ETag and size say nothing about content across servers and paths: the URL is part of what
    identifies such a source, or two videos of one size would share their clips."""
    from evud.clips.sources import source_fingerprint

    served = tmp_path / "served"
    served.mkdir()
    (served / "a.mp4").write_bytes(b"\x00" * 1000)
    (served / "b.mp4").write_bytes(b"\x01" * 1000)
    with source_server(served) as server:
        a, b = (source_fingerprint(f"{server.url}/{name}.mp4", {}) for name in ("a", "b"))
    assert a != b


def test_a_clip_another_live_run_is_cutting_is_waited_for_saying_so_and_failed_after_the_cap(source: Path,
                                                                                            tmp_path: Path, capfd,
                                                                                            monkeypatch):
    """A live run holding a clip's claim: this run says which clip it waits for and who holds it, gives up after
    EVUD_CLAIM_WAIT_S with a retryable `failed` (the stage exits 1), and cuts it once the holder is gone."""
    data = data_params(tmp_path / "meta", {"videos": [one_annotation([window(4, 6)])]},
                       [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    (first,) = prepare_records(tmp_path / "a", data).values()
    store = ClipStore(store_root() / "clips")
    store.clip_file(first["cut_key"]).unlink()  # the store lost it: it must be cut again, but another run cuts it
    monkeypatch.setenv("EVUD_CLAIM_WAIT_S", "0")
    with claim_holder(store.root / "claims", first["cut_key"]) as holder:
        capfd.readouterr()
        with pytest.raises(StageIncomplete, match=r"1 of 1 clip\(s\) failed .*claim_wait x1"):
            prepare.run(data, ClipParams(), GcsParams(), tmp_path / "b/clips", tmp_path / "b/clips.jsonl",
                        tmp_path / "b/metrics.json", 1)
        said = capfd.readouterr().err
        assert f"prepare: waiting for clip {first['clip_path']}: another run (pid {holder.pid} on " in said
        (record,) = read_jsonl(tmp_path / "b/clips.jsonl")
        assert record["status"] == "failed"
        assert record["reason"].startswith(f"claim_wait: clip {first['clip_path']} was still being done by another "
                                           f"run (pid {holder.pid} on ")
    (again,) = prepare_records(tmp_path / "c", data).values()  # the holder is gone (killed): cut here at once
    assert again["status"] == "ok" and again["sha256"] == first["sha256"]


@pytest.mark.parametrize("answer", ["never", "headers only"])
def test_a_source_that_stops_answering_fails_its_windows_with_the_reason_instead_of_hanging(source: Path,
                                                                                            tmp_path: Path, answer: str,
                                                                                            monkeypatch):
    """A URL that accepts the connection and never answers (or answers HEAD and then never sends the bytes) is
    given up after the source read timeout (EVUD_SOURCE_TIMEOUT_S, lowered here): `failed` with the reason, exit 1."""
    monkeypatch.setenv("EVUD_SOURCE_TIMEOUT_S", "0.5")
    with silent_server() as silent, source_server(source.parent) as served:
        served.stalled = {source.name}
        base = silent if answer == "never" else served.url
        data = data_params(tmp_path / "meta", {"videos": [one_annotation([window(4, 6)])]},
                           [{"video_uid": VIDEO, "duration_sec": 40.0}], f"{base}/{{video_uid}}.mp4")
        with pytest.raises(StageIncomplete, match=r"1 of 1 clip\(s\) failed for a reason a retry can fix"):
            prepare.run(data, ClipParams(), GcsParams(), tmp_path / "clips", tmp_path / "clips.jsonl",
                        tmp_path / "metrics.json", 1)
    (record,) = read_jsonl(tmp_path / "clips.jsonl")
    assert record["status"] == "failed", record
    assert record["reason"].startswith(f"source_unreadable: {base}/{VIDEO}.mp4: "), record["reason"]
    assert "no answer within 0.5 s" in record["reason"], record["reason"]


@pytest.mark.parametrize("keep_size_and_mtime", [False, True], ids=["appended", "same size and mtime"])
def test_a_clip_edited_in_place_is_noticed_named_and_cut_again_into_a_new_file(source: Path, tmp_path: Path, capfd,
                                                                               keep_size_and_mtime: bool):
    data = data_params(tmp_path / "meta", {"videos": [one_annotation([window(4, 6), window(10, 12)])]},
                       [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    first = {r.clip_path: r for r in prepare_run(tmp_path, data).records}
    victim_path = sorted(first)[0]
    victim = tmp_path / "clips" / victim_path
    stored = ClipStore(store_root() / "clips").clip_file(first[victim_path].cut_key)
    assert victim.stat().st_ino == stored.stat().st_ino  # one file, two names (a hard link on this file system)
    edit_in_place(victim, keep_size_and_mtime)
    edited_inode = victim.stat().st_ino
    capfd.readouterr()
    again = prepare_run(tmp_path, data)
    said = capfd.readouterr().err
    assert f"clip {victim_path} was edited in place" in said, said
    assert again.facts["cut"] == 1 and again.facts["reused"] == 1
    records = {r.clip_path: r for r in again.records}
    for clip_path, record in records.items():
        assert record.sha256 == first[clip_path].sha256
        assert hashlib.sha256((tmp_path / "clips" / clip_path).read_bytes()).hexdigest() == record.sha256, clip_path
    assert edited_inode not in (victim.stat().st_ino, stored.stat().st_ino), "never written into the edited file"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == records[victim_path].sha256


def test_under_dvc_a_clip_edited_in_place_is_healed_in_the_store_the_workspace_and_dvcs_cache(tmp_path: Path):
    """The three names of one file (data/clips, the clip store, DVC's cache object): DVC cannot see an edit that kept
    the size and mtime, and never re-checks an object it has; a re-run of prepare cuts the clip again and takes the
    edited object out of DVC's cache, so the commit stores the clip cut now and `dvc checkout --force` restores it."""
    repo = make_repo_copy(tmp_path / "repo")
    run(["dvc", "repro", "prepare"], repo)
    record = next(r for r in read_jsonl(repo / "data/clips.jsonl") if r["status"] == "ok")
    victim = repo / "data/clips" / record["clip_path"]
    md5 = hashlib.md5(victim.read_bytes()).hexdigest()
    cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    assert victim.stat().st_ino == cached.stat().st_ino  # hard links (the cache type this test is about)
    edit_in_place(victim, keep_size_and_mtime=True)
    # What DVC's state says: it keys a file's hash on its inode, mtime and size.
    assert "Data and pipelines are up to date" in run(["dvc", "status", "prepare"], repo).stdout
    healed = run(["dvc", "repro", "--force", "--single-item", "prepare"], repo)
    assert f"clip {record['clip_path']} was edited in place" in healed.stderr, healed.stderr
    for how in ("repro", "checkout"):
        for clip in (r for r in read_jsonl(repo / "data/clips.jsonl") if r["status"] == "ok"):
            data = (repo / "data/clips" / clip["clip_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == clip["sha256"], (how, clip["clip_path"])
        assert hashlib.md5(cached.read_bytes()).hexdigest() == md5, how
        run(["dvc", "checkout", "--force", "prepare"], repo)
    assert "Data and pipelines are up to date" in run(["dvc", "status", "prepare"], repo).stdout


def test_a_uid_too_long_for_a_file_name_is_skipped_with_its_reason_and_the_run_goes_on(source: Path, tmp_path: Path):
    """A path component holds at most 255 bytes: such a uid cannot name the clip's folder, on any run."""
    long_uid = "a" * 300
    nlq = {"videos": [one_annotation([window(1, 3)], annotation_uid=long_uid), one_annotation([window(4, 6)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    for _ in range(2):  # and the re-run
        records = prepare_records(tmp_path, data)
        assert records["clip-1/ann-1/0"]["status"] == "ok"
        refused = records[f"clip-1/{long_uid}/0"]
        assert refused["status"] == "skipped", refused
        assert refused["reason"].startswith(f"unsafe_uid: annotation_uid '{long_uid[:20]}"), refused["reason"]
        assert "300 bytes" in refused["reason"] and "255" in refused["reason"]


def test_clips_kept_nowhere_are_refused_before_any_cut(source: Path, tmp_path: Path):
    """clip.keep_local=false drops the local copy once uploaded: without gcs.bucket, a clip would be kept nowhere."""
    from evud.core.errors import UserError

    nlq = {"videos": [one_annotation([window(1, 3), window(4, 6)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    store = tmp_path / "store"
    with pytest.raises(UserError) as refused:
        prepare.run(data, ClipParams(keep_local=False), GcsParams(), tmp_path / "clips", tmp_path / "clips.jsonl",
                    tmp_path / "metrics.json", 1, store_dir=store)
    assert str(refused.value) == ("clip.keep_local=false keeps clips only in gcs.bucket, and gcs.bucket is not set: set "
                                  "gcs.bucket, or clip.keep_local=true")
    assert not (tmp_path / "clips.jsonl").exists() and not list(store.rglob("*.mp4"))


def test_a_re_run_never_compares_every_window_with_every_other(source: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    """A re-run's cost is linear in the windows (bench/bench_rerun.py times it at 14,000): counted here, not timed,
    as the comparisons of one window's plan with another's (a list membership test was 2 min at 14,000)."""
    from evud.clips.ego4d import ClipPlan

    nlq = {"videos": [one_annotation([window(i, i + 1) for i in range(36)])]}
    data = data_params(tmp_path / "meta", nlq, [{"video_uid": VIDEO, "duration_sec": 40.0}], str(source))
    assert prepare_run(tmp_path, data, ClipParams(mode="copy")).facts["cut"] == 36
    compared = []
    plain_eq = ClipPlan.__eq__
    monkeypatch.setattr(ClipPlan, "__eq__", lambda a, b: compared.append(1) or plain_eq(a, b))
    again = prepare_run(tmp_path, data, ClipParams(mode="copy"))
    assert again.facts["reused"] == 36 and again.facts["cut"] == 0
    assert len(compared) < 36, f"{len(compared)} comparisons of plans for 36 windows"
