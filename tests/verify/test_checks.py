"""The checks' answer schemas, derived from the models that read the answers."""

from __future__ import annotations

import json

from evud.verify.checks import BLIND, BLIND_SCHEMA, GROUND_SCHEMA, JUDGE_SCHEMA, UnreadableAnswer, read_items

# The schemas sent until they were derived from the models: part of every check's request key, so a derivation that
# changed them would make every check already paid for be asked (and paid) again.
_SENT_BEFORE = {
    "blind": {"type": "object", "properties": {"answers": {"type": "array", "items": {
        "type": "object", "properties": {"id": {"type": "integer"}, "answer": {"type": "string"},
                                         "cannot_tell": {"type": "boolean"}},
        "required": ["id", "answer", "cannot_tell"]}}}, "required": ["answers"]},
    "judge": {"type": "object", "properties": {"verdicts": {"type": "array", "items": {
        "type": "object", "properties": {"id": {"type": "integer"},
                                         "verdict": {"type": "string", "enum": ["agree", "disagree"]}},
        "required": ["id", "verdict"]}}}, "required": ["verdicts"]},
    "ground": {"type": "object", "properties": {"verdicts": {"type": "array", "items": {
        "type": "object", "properties": {"id": {"type": "integer"}, "support": {
            "type": "string", "enum": ["supported", "contradicted", "not visible"]}},
        "required": ["id", "support"]}}}, "required": ["verdicts"]},
}


def keywords(node: object) -> set[str]:
    if isinstance(node, list):
        return {k for item in node for k in keywords(item)}
    if not isinstance(node, dict):
        return set()
    own = set(node) - {"properties"}
    nested = [*node.get("properties", {}).values(), *(v for k, v in node.items() if k != "properties")]
    return own | {k for child in nested for k in keywords(child)}


def test_the_derived_schemas_are_the_ones_sent_before_so_no_check_is_paid_again():
    derived = {"blind": BLIND_SCHEMA, "judge": JUDGE_SCHEMA, "ground": GROUND_SCHEMA}
    for purpose, schema in derived.items():
        assert json.dumps(schema, sort_keys=True) == json.dumps(_SENT_BEFORE[purpose], sort_keys=True), purpose


def test_the_schemas_use_only_what_vertex_and_openai_servers_accept():
    for schema in (BLIND_SCHEMA, JUDGE_SCHEMA, GROUND_SCHEMA):
        assert keywords(schema) <= {"type", "properties", "items", "required", "enum"}, keywords(schema)


def test_the_model_reads_leniently_what_the_schema_asks_strictly():
    items = read_items(BLIND, '{"answers": [{"id": 1, "answer": " a mug "}, {"id": 2, "cannot_tell": true}]}')
    assert items[1].answer == "a mug" and items[2].cannot_tell
    try:
        read_items(BLIND, '{"answers": [{"answer": "no id"}]}')
    except UnreadableAnswer as err:
        assert "id" in str(err)
    else:
        raise AssertionError("an item without an id was read")
