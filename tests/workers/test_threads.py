"""Breakage threads in Redis: keyed like the transitions, one breakage at a time, with the transitions' TTL."""

from __future__ import annotations

import fakeredis
import pytest

from workers.threads import Thread, ThreadStore, thread_key
from workers.transition import ref_of

EVENT = {
    "project": {"slug": "gh/acme/api"},
    "vcs": {"branch": "feature/x:y", "tag": None},
    "workflow": {"name": "build"},
}


@pytest.fixture
def store() -> ThreadStore:
    return ThreadStore(fakeredis.FakeRedis(), ttl=3600)


def test_keys_follow_the_transition_key_with_the_handler_first() -> None:
    assert thread_key("ops/slack", EVENT) == "cie:thread:ops%2Fslack:gh%2Facme%2Fapi:feature%2Fx%3Ay:build"
    tagged = {**EVENT, "vcs": {"branch": None, "tag": "v1"}}
    assert ref_of(tagged) == ("gh/acme/api", "tag:v1", "build")


@pytest.mark.parametrize(
    "event",
    [{**EVENT, "vcs": {"branch": None, "tag": None}}, {**EVENT, "workflow": None}, {}],
    ids=["no ref", "job without workflow", "empty"],
)
def test_an_event_without_ref_or_workflow_has_no_thread(event: dict) -> None:
    assert thread_key("h", event) is None


def test_start_records_the_root_and_a_note_adds_to_it(store: ThreadStore) -> None:
    key = "cie:thread:h:k"
    store.start(key, Thread(since=11, channel="C1", ts="1.1", root={"text": "t"}, event_id="e11"))
    store.note(key, **{"reply:e12": "1.2"}, latest=12)
    thread = store.get(key)
    assert thread == Thread(
        since=11, channel="C1", ts="1.1", root={"text": "t"}, event_id="e11", latest=12, notes={"reply:e12": "1.2"}
    )
    assert 3590 < store.redis.ttl(key) <= 3600


def test_a_new_breakage_replaces_the_whole_thread(store: ThreadStore) -> None:
    key = "cie:thread:h:k"
    store.start(key, Thread(since=11, channel="C1", ts="1.1"))
    store.note(key, **{"reply:e12": "1.2"}, fixed="1")
    store.start(key, Thread(since=20, channel="C1", ts="2.1"))
    assert store.get(key) == Thread(since=20, channel="C1", ts="2.1", latest=20)


def test_nothing_stored_is_no_thread(store: ThreadStore) -> None:
    assert store.get("cie:thread:h:none") is None


def test_the_lock_is_one_delivery_at_a_time(store: ThreadStore) -> None:
    lock = store.lock("cie:thread:h:k", "e1:h")
    assert lock.acquire(5000)
    assert not store.lock("cie:thread:h:k", "e2:h").acquire(5000)
    assert lock.extend(5000)
    lock.release()
    assert store.lock("cie:thread:h:k", "e2:h").acquire(5000)


def test_a_run_of_the_same_delivery_takes_the_lock_over_and_the_earlier_run_loses_it(store: ThreadStore) -> None:
    earlier, again = store.lock("cie:thread:h:k", "e1:h"), store.lock("cie:thread:h:k", "e1:h")
    assert earlier.acquire(60_000) and again.acquire(60_000)
    assert not earlier.extend(5000)
    earlier.release()  # not its own any more: nothing happens
    assert not store.lock("cie:thread:h:k", "e2:h").acquire(5000)
