"""The transition state read through its index: every (project, ref, workflow) with its streak, no scan."""

from __future__ import annotations

import time

import pytest
import redis

from workers.ref_states import read_states, trim_states, triple_of
from workers.transition import STATES_INDEX, TransitionStore, transition_key

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis: redis.Redis) -> redis.Redis:  # the real Redis (tests/workers/conftest.py)
    return redis


def record(store: TransitionStore, status: str, number: int, ref: str = "main", **kw: str) -> None:
    store.record(project=kw.get("project", "gh/acme/api"), ref=ref, workflow=kw.get("workflow", "build"),
                 status=status, pipeline_number=number, happened_at=f"2026-12-01T10:00:{number:02d}Z",
                 web_url=kw.get("web_url"))  # fmt: skip


def test_each_recorded_ref_is_indexed_once(client: redis.Redis) -> None:
    store = TransitionStore(client)
    for number in range(1, 4):
        record(store, "success", number)
    record(store, "failed", 1, ref="feature/ü:x")
    assert client.zcard(STATES_INDEX) == 2
    assert [(s.ref, s.pipeline_number) for s in read_states(client)] == [("feature/ü:x", 1), ("main", 3)]


def test_a_failing_ref_shows_its_streak_and_last_good_pipeline(client: redis.Redis) -> None:
    store = TransitionStore(client)
    record(store, "success", 10, web_url="https://app.circleci.com/pipelines/x/10")
    record(store, "failed", 11)
    record(store, "failed", 12)
    [state] = read_states(client)
    assert (state.status, state.pipeline_number, state.kind) == ("failed", 12, "still_failing")
    assert (state.failing_since_pipeline_number, state.failed_pipelines) == (11, 2)
    assert state.failing_since == "2026-12-01T10:00:11Z"
    assert state.last_success_pipeline_number == 10
    assert state.web_url == "https://app.circleci.com/pipelines/x/10"  # kept from the last event that had one
    record(store, "success", 13)
    [state] = read_states(client)
    assert (state.status, state.failing_since_pipeline_number, state.last_success_pipeline_number) == (
        "success",
        None,
        13,
    )


def test_canceled_and_stale_events_neither_index_nor_change_a_ref(client: redis.Redis) -> None:
    store = TransitionStore(client)
    record(store, "canceled", 5)
    assert read_states(client) == []
    record(store, "success", 6)
    record(store, "failed", 4)  # older pipeline: stale
    assert [s.status for s in read_states(client)] == ["success"]


def test_project_and_ref_filter_the_states(client: redis.Redis) -> None:
    store = TransitionStore(client)
    record(store, "success", 1)
    record(store, "success", 1, ref="dev")
    record(store, "success", 1, project="gh/acme/web")
    assert [(s.project, s.ref) for s in read_states(client, project="gh/acme/api", ref="dev")] == [
        ("gh/acme/api", "dev")
    ]


def test_an_expired_state_is_skipped_and_trimmed_from_the_index(client: redis.Redis) -> None:
    store = TransitionStore(client)
    record(store, "success", 1)
    record(store, "success", 1, ref="gone")
    client.delete(transition_key("gh/acme/api", "gone", "build"))
    assert [s.ref for s in read_states(client)] == ["main"]
    client.zadd(STATES_INDEX, {transition_key("gh/acme/api", "gone", "build"): 1.0})  # written long ago
    assert trim_states(client, ttl=3600, now=time.time()) == 1  # the script scores with Redis TIME
    assert client.zcard(STATES_INDEX) == 1


@pytest.mark.parametrize(
    ("key", "triple"),
    [
        (transition_key("gh/a/b", "feature/x:y", "wf"), ("gh/a/b", "feature/x:y", "wf")),
        (transition_key("gh/a/b", "tag:v1", "w:f"), ("gh/a/b", "tag:v1", "w:f")),
        ("cie:transition:only:two", None),
        ("cie:other:a:b:c", None),
    ],
)
def test_a_key_names_its_triple(key: str, triple: tuple[str, str, str] | None) -> None:
    assert triple_of(key) == triple
