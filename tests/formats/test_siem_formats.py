"""sensctl's ECS and OCSF projections (`sensctl convert`, the same code as `sensctl monitor --format`),
checked against the schemas.

OCSF: each line is validated with jsonschema against the Authentication class (3002) of OCSF 1.5.0, as
the ocsf-json-schema package publishes it (generated from OCSF's own schema files): required attributes,
types, enumerations. ECS publishes no schema package for Python or Debian; the ECS lines are checked
against ECS 8.11's rules, written here: the base fields, and the categorization fields' allowed values
(event.kind, event.category, event.type per category, event.outcome).

Run by `make formats-check` (in `make check`), which installs the two packages from PyPI first."""

import json
import os
import subprocess

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

HERE = os.path.dirname(__file__)
SENSCTL = os.environ.get("SENSCTL", os.path.join(HERE, "..", "..", ".build", "debug", "sensctl"))
EVENTS = os.path.join(HERE, "events.jsonl")


def convert(fmt):
    result = subprocess.run([SENSCTL, "convert", "--format", fmt], stdin=open(EVENTS), capture_output=True, text=True, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def source_events():
    return [json.loads(line) for line in open(EVENTS) if line.startswith('{"event":')]


def test_every_event_is_valid_ocsf_authentication():
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.5.0")).get_class_schema("authentication")
    validator = jsonschema.Draft202012Validator(schema)
    lines = convert("ocsf")
    assert len(lines) == len(source_events())
    for line, event in zip(lines, source_events()):
        errors = sorted(validator.iter_errors(line), key=str)
        assert not errors, f"{event['event']} seq {event['seq']}: {[e.message for e in errors]}"
        assert line["class_uid"] == 3002 and line["type_uid"] == 300200 + line["activity_id"]
        assert line["metadata"]["sequence"] == event["seq"]
        assert line["unmapped"] == event, "sensd's own event, whole"


def test_ocsf_activity_status_and_logon_type_follow_the_mapping():
    by_seq = {line["metadata"]["sequence"]: line for line in convert("ocsf")}
    assert (by_seq[1]["activity_id"], by_seq[1]["status_id"], by_seq[1]["logon_type_id"]) == (1, 1, 10)
    assert by_seq[1]["src_endpoint"] == {"ip": "192.0.2.7"} and by_seq[1]["session"]["uid"] == "c1" and by_seq[1]["is_remote"] is True
    assert (by_seq[2]["activity_id"], by_seq[2]["activity_name"]) == (99, "DisplayLock")
    assert by_seq[3]["status_detail"] == "LOGOFF_USER_INITIATED" and by_seq[3]["activity_id"] == 2
    assert by_seq[4]["status_detail"] == "LOGOFF_USER_INITIATED"
    assert by_seq[5]["status_detail"] == "LOGOFF_OTHER", "a Logoff for a reboot"
    assert by_seq[6]["user"] == {"name": "-"}, "a session whose user sensd could not learn, named as Windows does"
    failed = by_seq[7]
    assert (failed["activity_id"], failed["status_id"], failed["status_detail"], failed["user"]) == (1, 2, "bad-password", {"name": "alice", "uid": "1000"})
    assert "session" not in failed, "a failed logon made no session"
    assert by_seq[8]["count"] == 9995 and by_seq[8]["src_endpoint"] == {"ip": "2001:db8::5", "port": 50022}
    assert by_seq[9]["logon_type_id"] == 2 and by_seq[9]["service"] == {"name": "su"}


# ECS 8.11, "ECS Categorization Fields": the allowed values, and the event.type values each category allows.
ECS_KINDS = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
ECS_TYPES_BY_CATEGORY = {
    "authentication": {"start", "end", "info"},
    "session": {"start", "end", "info"},
}
ECS_OUTCOMES = {"success", "failure", "unknown"}


def test_every_event_follows_ecs_base_and_categorization_rules():
    lines = convert("ecs")
    assert len(lines) == len(source_events())
    for line, event in zip(lines, source_events()):
        what = f"{event['event']} seq {event['seq']}"
        assert line["@timestamp"] == event["time"], what
        assert line["ecs"]["version"] == "8.11.0", what
        e = line["event"]
        assert e["kind"] in ECS_KINDS, what
        assert e["category"] and all(c in ECS_TYPES_BY_CATEGORY for c in e["category"]), what
        for category in e["category"]:
            assert set(e["type"]) <= ECS_TYPES_BY_CATEGORY[category], f"{what}: {e['type']} not allowed in {category}"
        assert e["outcome"] in ECS_OUTCOMES, what
        assert e["sequence"] == event["seq"] and isinstance(e["sequence"], int), what
        assert isinstance(line["message"], str), what
        if event.get("userName"):
            assert line["user"]["name"] == event["userName"] and line["related"]["user"] == [event["userName"]], what
        if event.get("uid") is not None:
            assert line["user"]["id"] == str(event["uid"]), what
        assert line["sensd"] == event, "vendor fields: sensd's own event, whole"


def test_ecs_failed_logon_fields():
    by_seq = {line["event"]["sequence"]: line for line in convert("ecs")}
    failed = by_seq[7]
    assert failed["event"]["category"] == ["authentication"] and failed["event"]["type"] == ["start"]
    assert (failed["event"]["outcome"], failed["event"]["action"], failed["event"]["reason"], failed["event"]["code"]) == ("failure", "logon-failed", "bad-password", "4625")
    assert failed["source"] == {"ip": "192.0.2.7", "address": "192.0.2.7"} and failed["host"] == {"name": "vm"}
    assert by_seq[8]["source"] == {"ip": "2001:db8::5", "address": "2001:db8::5", "port": 50022}
    assert by_seq[4]["event"]["action"] == "logged-out" and by_seq[4]["event"]["type"] == ["end"]


def test_lines_that_are_not_events_are_left_out_and_garbage_is_reported(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"gap":"not-retained"}\nnot json\n' + open(EVENTS).read().splitlines()[1] + "\n")
    result = subprocess.run([SENSCTL, "convert", "--format", "ecs"], stdin=open(path), capture_output=True, text=True)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    assert "line 2: not an event this version reads" in result.stderr
