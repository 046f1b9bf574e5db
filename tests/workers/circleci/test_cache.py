"""The API cache: what is known of a job, in one entry per job."""

from __future__ import annotations

import fakeredis

from workers.circleci.cache import FLAKY, ApiCache

SLUG = "gh/acme/api"


def test_answers_come_back_as_they_were_asked_for() -> None:
    cache = ApiCache(fakeredis.FakeRedis(), ttl_seconds=60)
    cache.put_many(SLUG, {(7, "tests"): [{"name": "t"}], (7, "artifacts"): [], (8, "step"): {"name": "Run"}})
    wanted = [(7, "tests"), (7, "artifacts"), (7, "details"), (8, "step"), (9, "tests")]
    assert cache.get_many(SLUG, wanted) == {
        (7, "tests"): [{"name": "t"}],
        (7, "artifacts"): [],
        (8, "step"): {"name": "Run"},
    }
    assert cache.get_many("gh/acme/other", wanted) == {}


def test_a_write_is_one_set_per_job_with_what_was_known_of_it() -> None:
    """A failed job's tests, artifacts and step were three SETs with every event; now one."""
    redis = fakeredis.FakeRedis()
    cache = ApiCache(redis, ttl_seconds=60)
    cache.put_many(SLUG, {(7, "details"): {"web_url": "u"}})
    known = cache.get_many(SLUG, [(7, "details"), (7, "tests")])
    with redis.pipeline(transaction=False) as pipe:
        cache.put_many(SLUG, {(7, "tests"): [], (7, "step"): None, (8, "tests"): []}, pipe, known=known)
        assert [c[0][0] for c in pipe.command_stack] == ["SET", "SET"]
        pipe.execute()
    assert cache.get_many(SLUG, [(7, "details"), (7, "tests"), (7, "step")]) == {
        (7, "details"): {"web_url": "u"},
        (7, "tests"): [],
        (7, "step"): None,
    }
    assert 0 < redis.ttl(ApiCache.key(SLUG, 7)) <= 60


def test_what_is_known_of_other_jobs_is_not_written_again() -> None:
    redis = fakeredis.FakeRedis()
    cache = ApiCache(redis, ttl_seconds=60)
    cache.put_many(SLUG, {(8, "tests"): []}, known={(7, "tests"): [{"name": "t"}]})
    assert redis.exists(ApiCache.key(SLUG, 7)) == 0


def test_a_projects_known_flaky_tests_are_read_with_the_jobs_in_one_command() -> None:
    redis = fakeredis.FakeRedis()
    cache = ApiCache(redis, ttl_seconds=60)
    assert cache.get_many(SLUG, [(7, "tests")], flaky=True) == {FLAKY: None}
    cache.put_flaky_tests(SLUG, [{"test_name": "t"}], ttl_seconds=60)
    cache.put_many(SLUG, {(7, "tests"): []})
    sent: list[str] = []
    execute = redis.execute_command
    redis.execute_command = lambda *args, **kw: sent.append(args[0]) or execute(*args, **kw)  # type: ignore[method-assign]
    assert cache.get_many(SLUG, [(7, "tests")], flaky=True) == {(7, "tests"): [], FLAKY: [{"test_name": "t"}]}
    assert sent == ["MGET"]
    assert cache.get_many(SLUG, [(7, "tests")]) == {(7, "tests"): []}
