"""Reproducible from a clone: the committed lock and metrics are what the committed code produces, the sample's
clips and request keys are pinned (answers and clips made before stay valid), tracked metrics hold facts of the
data only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.repo import run

# The sample's clips, as the cutter of this version makes them. A change to the cutter that changes these
# bytes must bump video.CUTTER_VERSION (which is part of every cut key, so old clips are cut again) and
# update this table in the same commit.
PINNED_CUTTER_VERSION = 4
PINNED_SAMPLE_CLIPS = {
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/0.mp4":
        "6ef4d6364bd7e6b8cec7d058c8b6511a582149191553f4a722d6c34730c7f53f",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/1.mp4":
        "64b22b2f080ec4617bdad2e5e9cb8cf15c9b0ab0adc20ed7e680b66fe109a5e5",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/2.mp4":
        "651d45c17c84551a71f6a5dccd94845663f02f04aaa25117583b8af6e80da521",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/0.mp4":
        "a60e5d40cd0df78fc25f278233ef596d9eab75e5d0b2f56ab75da857f8413700",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/1.mp4":
        "e7afe2d40c51674c3af5f51733b968b07123e397c3a1ea1972c78e28c12a14a3",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/2.mp4":
        "ecbbce9fafde81fe0fe7c1a1fea7ad2ff0df1975be4a74fc959171547e2be463",
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d/a1b2c3d4-0003-4000-8000-00000000c301/e5f6a7b8-0003-4000-8000-00000000a301/0.mp4":
        "94abc2a98e75f7fa5d01f9a4cfbe5fa5f2b83ad6865448a57e5b37aa67df71ec",
}


def test_the_cutter_version_pins_the_sample_clips(reproduced_sample: Path):
    from evud.clips.video import CUTTER_VERSION

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


# The sample's cut keys (clip store) and request keys (answer store, vertex backend, default params). A change
# that alters them on purpose (a new default setting, a cutter version) updates these in the same commit and
# says why: every clip or answer stored under the old keys is cut or asked again.
PINNED_CUT_KEYS = {
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/0.mp4":
        "b5179387d3ab39fb7ed19cd77309a3c6b6c3852cbbaee9e8e46e7bea1f3e8e59",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/1.mp4":
        "10648949882a72a4e1428c5a73c24e034e99a87790fbab33be622c300a4beefd",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/2.mp4":
        "582bc322897e54a61e9a0d429a05fb9b65396038cb7afd2ac950192311ba0da4",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/0.mp4":
        "1905a8e0d625ecbdb133cae5a218c033a47d8ae36dffa6d10d44071dc9c62b1e",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/1.mp4":
        "714eb9b2accdf0f94641dfb92675e2a4d5afa739b733a4409b5e4a9cc0a05033",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/2.mp4":
        "5966580eaeb41c211eb61bb7086ea9863f72c93512c2403d4a4c30c23d07b6a7",
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d/a1b2c3d4-0003-4000-8000-00000000c301/e5f6a7b8-0003-4000-8000-00000000a301/0.mp4":
        "723b709888398da1e34c50fcb5548eb3d9fa3b247e5adf6724ece52f17a62858",
}
PINNED_REQUEST_KEYS = {
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/0.mp4":
        "f2d75c3e1bf3a7fbbe66a1e740f021cb5cc9bbc166468bff51d0397fe19bb256",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/1.mp4":
        "ce44f71d3e15c2a55e7ae83bc50f0a58a9ed780d994c5cfedc178d3b64a55265",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/2.mp4":
        "13d6090e7f6b80bf54c4fdeb2a678204d6e67452c21452e627917fd52a353515",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/0.mp4":
        "220418f8596d872d8b2c91c2076ca0a873aae254104565c4bfdea979381ba819",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/1.mp4":
        "4ea0bd24177fd33036d17bb9eeb4d9c3bf5759b6ff5052eded1beb0a6e3c9b66",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/2.mp4":
        "ff607aaacbaf4e8070237622e46d6dad9b8d02e0885530e7a716ac441e7a1ebf",
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d/a1b2c3d4-0003-4000-8000-00000000c301/e5f6a7b8-0003-4000-8000-00000000a301/0.mp4":
        "999d054419c29f4f7e00110c399047e4080e7f85760021990c63e8a9fe6822a8",
}


def test_the_sample_keeps_its_cut_and_request_keys(reproduced_sample: Path):
    from evud.core.params import load_section
    from evud.core.records import ClipRecord
    from evud.gemini.request import build_request

    manifest = [ClipRecord.model_validate_json(line)
                for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    ok = [clip for clip in manifest if clip.status.value == "ok"]
    gemini = load_section("gemini", reproduced_sample / "params.yaml").model_copy(update={"backend": "vertex"})
    prompt = load_section("prompt", reproduced_sample / "params.yaml")
    assert {c.clip_path: c.cut_key for c in ok} == PINNED_CUT_KEYS
    assert {c.clip_path: build_request(c, gemini, prompt).key for c in ok} == PINNED_REQUEST_KEYS
