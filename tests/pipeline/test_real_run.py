"""The README's real run, end to end, against the local stand-ins: Ego4D metadata tracked with `dvc add`,
videos read in place from S3 (moto), clips uploaded to GCS (emulator), Gemini on Vertex AI (the fake).

Only endpoints differ from the README: AWS_ENDPOINT_URL_S3, STORAGE_EMULATOR_HOST and gemini.base_url.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
from google.cloud import storage

from tests.support.cloud import gcs_emulator, moto_s3
from tests.support.fake_vertex import FAST_ENV, FakeVertex
from tests.support.numbered_video import make_numbered_video
from tests.support.repo import git_commit_all, run

EGO4D_BUCKET = "ego4d-consortium-sharing"
UIDS = ["4a5b6c7d-0000-4000-8000-00000000000a", "4a5b6c7d-0000-4000-8000-00000000000b"]


def ego4d_metadata(folder: Path) -> None:
    """Ego4D-format metadata whose s3_path points into the (local) Ego4D bucket: 5 windows over 2 videos."""
    videos = [{"video_uid": uid, "duration_sec": 30.0, "s3_path": f"s3://{EGO4D_BUCKET}/public/v2/full_scale/{uid}.mp4",
               "video_metadata": {"fps": 10.0, "num_frames": 300}} for uid in UIDS]
    (folder / "ego4d.json").write_text(json.dumps({"version": "v2", "videos": videos}))
    windows = {UIDS[0]: [(1.2, 6.7), (10.0, 14.5), (20.0, 26.0)], UIDS[1]: [(3.0, 9.0), (15.5, 21.0)]}
    nlq = {"version": "v2", "videos": [{"video_uid": uid, "clips": [{"clip_uid": f"c-{uid[-4:]}", "annotations": [
        {"annotation_uid": f"a-{uid[-4:]}", "language_queries": [
            {"video_start_sec": s, "video_end_sec": e, "query": "where is the cup?", "template": "Objects"}
            for s, e in ws]}]}]} for uid, ws in windows.items()]}
    (folder / "nlq_train.json").write_text(json.dumps(nlq))


def test_real_run_from_the_readme(repo_copy: Path, fake_vertex: FakeVertex, tmp_path: Path):  # noqa: F811
    with moto_s3() as (_, s3_endpoint), gcs_emulator("evud-clips"):
        s3 = boto3.client("s3", endpoint_url=s3_endpoint)
        s3.create_bucket(Bucket=EGO4D_BUCKET)
        for uid in UIDS:
            make_numbered_video(tmp_path / f"{uid}.mp4", 30)
            s3.upload_file(str(tmp_path / f"{uid}.mp4"), EGO4D_BUCKET, f"public/v2/full_scale/{uid}.mp4")
        env = {**FAST_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint}

        # The metadata files are DVC-tracked inputs, not git files.
        ego4d_metadata(repo_copy / "data/ego4d")
        run(["dvc", "add", "data/ego4d/ego4d.json", "data/ego4d/nlq_train.json"], repo_copy)
        git_commit_all(repo_copy, "track Ego4D metadata")
        real = ["-S", "data=ego4d", "-S", "gemini.backend=vertex", "-S", "gemini.project=my-project",
                "-S", "gcs.bucket=evud-clips", "-S", f"gemini.base_url={fake_vertex.base_url}"]

        # A pilot: two clips.
        pilot = run(["dvc", "exp", "run", *real, "-S", "data.limit=2"], repo_copy, env=env)
        assert "estimated" in pilot.stderr.lower() or "estimated" in pilot.stdout.lower()
        assert fake_vertex.total_calls == 2
        assert fake_vertex.checks == {"blind": 2}  # verify's blind check, text only; no blind answer: no judge
        manifest = [json.loads(line) for line in (repo_copy / "data/clips.jsonl").read_text().splitlines()]
        assert [r["status"] for r in manifest] == ["ok", "ok"]
        assert all(r["clip_uri"].startswith("gs://evud-clips/ego4d_vqa_gemini_videos/") for r in manifest)

        # A budget below the estimate refuses to start, and calls nothing.
        refused = run(["dvc", "exp", "run", *real, "-S", "gemini.max_cost_usd=0.000001"], repo_copy, env=env, check=False)
        assert refused.returncode != 0 and "max_cost_usd" in (refused.stdout + refused.stderr)
        assert fake_vertex.total_calls == 2

        # The full run pays only for the three clips the pilot did not ask about.
        run(["dvc", "exp", "run", *real], repo_copy, env=env)
        assert fake_vertex.total_calls == 5
        # One blind check per distinct set of questions: the fake asks the same questions of clips with the same
        # file name (it names a gs:// clip by its file's stem), and a blind request holds no clip, so it is one request.
        texts = {json.loads(line)["text"] for line in (repo_copy / "data/responses.jsonl").read_text().splitlines()}
        assert fake_vertex.checks == {"blind": len(texts)} and 1 < len(texts) < 5
        dataset = json.loads((repo_copy / "data/ego4d_vqa_gemini.json").read_text())
        assert len(dataset) == 5
        assert {r["ego4d_video_uid"] for r in dataset} == set(UIDS)
        blobs = [b.name for b in storage.Client().bucket("evud-clips").list_blobs()]
        assert len(blobs) == 5
        # Credentials came from the standard chains (env): none reaches params, logs or outputs.
        secrets = [os.environ["AWS_SECRET_ACCESS_KEY"], FAST_ENV["GOOGLE_OAUTH_ACCESS_TOKEN"]]
        written = [pilot.stdout, pilot.stderr] + [(repo_copy / name).read_text() for name in
                   ("params.yaml", "data/clips.jsonl", "data/responses.jsonl", "data/ego4d_vqa_gemini.json",
                    "data/verdicts.jsonl", "metrics/prepare.json", "metrics/generate.json", "metrics/verify.json")]
        written += [p.read_text() for p in (repo_copy / ".evud").rglob("*.json")]  # answers, clips, run reports
        assert len(list((repo_copy / ".evud/answers").rglob("*.json"))) == 5 + len(texts)  # answers, blind checks
        assert not [s for s in secrets for text in written if s in text]
