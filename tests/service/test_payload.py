"""Payload models: the documented shapes, open maps, the header's event type wins."""

from __future__ import annotations

import json

import orjson
import pytest

from config.errors import InvalidJSON, PayloadInvalid
from service.payload import JOB_COMPLETED, MAX_DEPTH, PING, WORKFLOW_COMPLETED, parse_event
from tests.conftest import FIXTURES, load_fixture

SAMPLES = sorted(p.name for p in FIXTURES.glob("*-completed.*.json"))


@pytest.mark.parametrize("name", SAMPLES)
def test_every_documented_and_observed_sample_parses(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    payload = json.loads(body)
    event = parse_event(body, payload["type"])
    assert event.id == payload["id"]
    assert event.type in (WORKFLOW_COMPLETED, JOB_COMPLETED)
    assert event.payload == payload


def test_the_raw_ping_parses_as_ping() -> None:
    event = parse_event((FIXTURES / "ping.observed.raw-body.json").read_bytes(), "ping")
    assert event.type == PING


def test_unknown_fields_are_kept() -> None:
    payload = load_fixture("workflow-completed.github-oauth.docs.json")
    payload["brand_new"] = {"nested": [1, 2]}
    payload["workflow"]["extra"] = "x"
    event = parse_event(json.dumps(payload).encode(), None)
    assert event.payload["brand_new"] == {"nested": [1, 2]}
    assert event.payload["workflow"]["extra"] == "x"


def test_an_event_type_header_that_contradicts_the_signed_body_is_refused() -> None:
    """The header is not signed: relabelling a captured delivery must not change its handling (issue 23 item 7)."""
    payload = load_fixture("job-completed.gitlab.docs.json")
    with pytest.raises(PayloadInvalid, match="header says 'workflow-completed' but the signed body's type") as caught:
        parse_event(json.dumps(payload).encode(), "workflow-completed")
    assert caught.value.details == {"field": "type"}
    assert parse_event(json.dumps(payload).encode(), "job-completed").type == JOB_COMPLETED


def test_a_body_without_a_type_takes_the_headers() -> None:
    payload = load_fixture("job-completed.gitlab.docs.json")
    del payload["type"]
    assert parse_event(json.dumps(payload).encode(), "job-completed").type == JOB_COMPLETED


def test_body_type_is_used_without_the_header() -> None:
    payload = load_fixture("workflow-completed.gitlab.docs.json")
    assert parse_event(json.dumps(payload).encode(), None).type == WORKFLOW_COMPLETED


def test_job_events_without_workflow_object_are_accepted() -> None:
    payload = load_fixture("job-completed.gitlab.docs.json")
    assert "workflow" not in payload
    parse_event(json.dumps(payload).encode(), "job-completed")


def _without(payload: dict, path: str) -> dict:
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    del node[last]
    return payload


def _with(payload: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    node[last] = value
    return payload


@pytest.mark.parametrize(
    ("sample", "field"),
    [
        ("workflow-completed.github-oauth.docs.json", "id"),
        ("workflow-completed.github-oauth.docs.json", "workflow.status"),
        ("workflow-completed.github-oauth.docs.json", "workflow"),
        ("workflow-completed.github-oauth.docs.json", "project.slug"),
        ("workflow-completed.github-oauth.docs.json", "pipeline.number"),
        ("workflow-completed.github-oauth.docs.json", "webhook.id"),
        ("job-completed.github-oauth.docs.json", "job.number"),
        ("job-completed.github-oauth.docs.json", "job.status"),
    ],
)
def test_a_missing_required_field_is_named(sample: str, field: str) -> None:
    payload = _without(load_fixture(sample), field)
    with pytest.raises(PayloadInvalid) as caught:
        parse_event(json.dumps(payload).encode(), None)
    assert caught.value.details["field"] == field
    assert f"'{field}'" in caught.value.message


@pytest.mark.parametrize(
    ("sample", "field", "value", "got"),
    [
        ("job-completed.github-oauth.docs.json", "job.number", "12", "a string"),
        ("job-completed.github-oauth.docs.json", "job.number", True, "a boolean"),
        ("workflow-completed.github-oauth.docs.json", "pipeline.number", 1.5, "a number"),
        ("workflow-completed.github-oauth.docs.json", "workflow", [], "an array"),
        ("workflow-completed.github-oauth.docs.json", "project.slug", 7, "an integer"),
        ("workflow-completed.github-oauth.docs.json", "pipeline.vcs", "github", "a string"),
        ("workflow-completed.github-oauth.docs.json", "id", "  ", None),
    ],
)
def test_a_wrongly_typed_field_is_named(sample: str, field: str, value: object, got: str | None) -> None:
    payload = _with(load_fixture(sample), field, value)
    with pytest.raises(PayloadInvalid) as caught:
        parse_event(json.dumps(payload).encode(), None)
    assert caught.value.details["field"] == field
    if got:
        assert got in caught.value.message


def test_unknown_event_types_need_only_an_id() -> None:
    event = parse_event(b'{"id": "e1", "type": "pipeline-started"}', None)
    assert event.type == "pipeline-started"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b'{"a": 1}x',
        b"\xff\xfe\xfa",
        b"[" * 100_000 + b"]" * 100_000,
        b"\xef\xbb\xbf{}",
        '{"id": "x"}'.encode("utf-16"),
    ],
    ids=["empty", "truncated", "text", "trailing", "bad-bytes", "deeply-nested", "utf8-bom", "utf16"],
)
def test_unparseable_bodies_are_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidJSON):
        parse_event(body, "workflow-completed")


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"1", b"null"])
def test_a_top_level_non_object_is_invalid_payload(body: bytes) -> None:
    with pytest.raises(PayloadInvalid):
        parse_event(body, "workflow-completed")


def test_no_event_type_anywhere_is_invalid_payload() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        parse_event(b'{"id": "x"}', None)
    assert caught.value.details["field"] == "type"


@pytest.mark.parametrize("levels, ok", [(MAX_DEPTH, True), (MAX_DEPTH + 1, False), (1015, False)])
def test_nesting_is_capped_where_the_worker_could_still_decode_it(levels: int, ok: bool) -> None:
    # 1,015 levels once got 202 here (orjson reads 1,024) and a RecursionError in the worker,
    # retried without end. The top-level object is the first level; a field adds the rest.
    text = json.dumps(load_fixture("workflow-completed.github-oauth.docs.json"))
    body = (text[:-1] + ', "deep": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}").encode()
    if ok:
        parse_event(body, None)
    else:
        with pytest.raises(PayloadInvalid, match=f"nested more than {MAX_DEPTH} levels"):
            parse_event(body, None)


@pytest.mark.parametrize(
    "field, value",
    [
        ("id", "a\r\nb"),
        ("id", "évènement"),
        ("id", "../../x"),
        ("id", "a/b"),
        ("id", ".."),
        ("id", "x" * 129),
        ("id", "has space"),
        ("workflow.id", "../../x"),
        ("pipeline.id", "p\nq"),
        ("project.id", "%2e%2e"),
        ("organization.id", "o:rg"),
        ("webhook.id", "\u202ehidden"),
        ("project.slug", "gh/../../x"),
        ("project.slug", "gh/acme/repo\r\n"),
        ("project.slug", "justone"),
        ("project.slug", "gh//repo"),
        ("project.slug", "gh/acme/ré"),
        ("happened_at", "yesterday"),
        ("happened_at", "2026-13-45T99:00:00Z"),
    ],
)
def test_ids_slugs_and_times_that_would_travel_into_keys_paths_and_messages_are_refused(field: str, value: str) -> None:
    payload = _with(load_fixture("workflow-completed.github-oauth.docs.json"), field, value)
    with pytest.raises(PayloadInvalid) as caught:
        parse_event(json.dumps(payload).encode(), None)
    assert caught.value.details == {"field": field}
    assert "\n" not in caught.value.message and "\r" not in caught.value.message


@pytest.mark.parametrize(
    "field, value",
    [
        ("id", "5c1b2e7e-8a51-3b0e-9d7c-2f4b6a1c9e01"),
        ("id", "evt_1.2-3"),
        ("project.slug", "circleci/9z8PamRuKaKWrW91o7Kqvn/AHWysFUuUfBgs6VeUqm6tg"),
        ("project.slug", "bb/acme/payments.api_v2"),
        ("happened_at", "2024-12-18T18:44:38.000100Z"),
    ],
)
def test_ordinary_ids_slugs_and_times_pass(field: str, value: str) -> None:
    payload = _with(load_fixture("workflow-completed.github-oauth.docs.json"), field, value)
    parse_event(json.dumps(payload).encode(), None)


def test_the_id_of_an_unknown_event_type_is_checked_too() -> None:
    with pytest.raises(PayloadInvalid):
        parse_event(b'{"id": "../x", "type": "pipeline-started"}', None)


@pytest.mark.parametrize("slug", ["gh/acme", "gh/acme/repo/envvar", "gh/acme/repo/"])
def test_a_slug_is_three_segments(slug: str) -> None:
    payload = _with(load_fixture("workflow-completed.github-oauth.docs.json"), "project.slug", slug)
    with pytest.raises(PayloadInvalid, match="must be 3 '/'-separated segments"):
        parse_event(json.dumps(payload).encode(), None)


SAMPLE = "workflow-completed.github-oauth.docs.json"


def with_literal(path: str, literal: str) -> bytes:
    """The sample with the JSON number `literal` written at the dotted `path`."""
    payload = json.loads((FIXTURES / SAMPLE).read_bytes())
    payload["extra"] = {"count": 0, "list": [1, 2]}
    _with(payload, path, "@@")
    return json.dumps(payload).replace('"@@"', literal).encode()


@pytest.mark.parametrize(
    ("literal", "field"),
    [("100000000000000000000", "pipeline.number"), ("18446744073709551616", "pipeline.number"),
     ("-9223372036854775809", "extra.count"), ("1" * 300, "extra.list")],
)  # fmt: skip
def test_an_integer_beyond_64_bits_is_refused_naming_its_field(literal: str, field: str) -> None:
    """orjson at the door reads it as a float, the worker's json as an int its encoder refuses (issue 23 item 5)."""
    with pytest.raises(PayloadInvalid, match="outside the 64-bit range") as caught:
        parse_event(with_literal(field, literal), None)
    assert caught.value.details == {"field": field}


@pytest.mark.parametrize("literal", ["18446744073709551615", "-9223372036854775808", "1e30", "1.5e308", "12.0"])
def test_numbers_the_workers_can_encode_again_pass(literal: str) -> None:
    body = with_literal("extra.count", literal)
    assert parse_event(body, None).payload["extra"]["count"] == pytest.approx(float(literal))
    assert orjson.dumps(json.loads(body))  # what the webhook handler does with the worker's decoding
