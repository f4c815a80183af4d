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
        "72184fdcbc38c3a1ec120d23a39877ea1fd23d0b4a3401ef425e3c56dc0a4934",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/1.mp4":
        "53f12f1ef3134cc42199ea65e4fd0ae79f15860874c2126a211efba222acc11e",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/2.mp4":
        "78916ccd146ceded5f69f4267570519fb7e312c17a1cd83bb9ffb6d52f46765d",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/0.mp4":
        "4b0096d29b1608d6370649517b39e64d3307a34f655aec3ecdb2ef33bed28087",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/1.mp4":
        "15f4eb5d880196433d766ac1efc2a38b1f3f230808dd86a55f7e86e4fe64cdf9",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/2.mp4":
        "ef77cfcf042162a81e762de77ff8d546d326f6fd59e4bc9b5d9407e2cdc54158",
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d/a1b2c3d4-0003-4000-8000-00000000c301/e5f6a7b8-0003-4000-8000-00000000a301/0.mp4":
        "17835f4107deb30320ad9d3668cc0958ae49bc478212e2f7a4785391571157db",
}
PINNED_REQUEST_KEYS = {
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/0.mp4":
        "daa006f29f4f06df85a89d869634c8d46e93380f240be7faf9f37d921c6c8742",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/1.mp4":
        "164ec22d2d18231e7b993c7fbe35a7784e0ac63cc651aca39f41eb91963def89",
    "3c0dffd0-e38e-4643-bc48-d513943dc20b/a1b2c3d4-0001-4000-8000-00000000c101/e5f6a7b8-0001-4000-8000-00000000a101/2.mp4":
        "8e5c004de5b09b837ac5c14aebcddec15aae5f081976c108167aa541edcfcbab",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/0.mp4":
        "56e8510b5d6d59ec1de5cc90a16af4b8e3342934fb885ea3216ce0114c048ca1",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/1.mp4":
        "085249c96e7a1603c6c60d5768a4410df9aa7b0894df3ee991f52351741a3642",
    "9a4b6c1e-2f0d-4e7a-8b3c-5d6e7f809102/a1b2c3d4-0002-4000-8000-00000000c201/e5f6a7b8-0002-4000-8000-00000000a201/2.mp4":
        "196623a7292d3a263ab96138771be3f6437db396d66b0195f5233f50aeb9870f",
    "d2f1e0c9-8b7a-4655-9e4d-3c2b1a0f9e8d/a1b2c3d4-0003-4000-8000-00000000c301/e5f6a7b8-0003-4000-8000-00000000a301/0.mp4":
        "450968909abac72d8faac97c62786fc1010a2ad75bc5fb8b9e78b2f4f8be964b",
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
