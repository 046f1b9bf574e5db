"""Fixed/broken transitions: compare a completed workflow with the last one on the same ref.

State lives in Redis per (project slug, branch or tag, workflow name): the last terminal
status, its pipeline number and `happened_at`. Many workers record at once and CircleCI
promises no delivery order (pitfalls A4, A5), so the read-compare-write is one Lua script and
the newest pipeline wins, whatever order events arrive in.

Kinds: `first_seen`, `passing`, `broken`, `fixed`, `still_failing` (the state moved), and
two that leave the state alone:

* `canceled`: a canceled workflow says nothing about the code, and one cancellation can
  arrive as N+1 deliveries (CANNY-CANCEL, pitfalls A4). Redis is not touched.
* `stale`: an older pipeline than the one stored, or the same pipeline with an older or
  equal `happened_at` (a rerun that finished before the stored one). Comparing it with newer
  state would announce a false "broken" or "fixed".

Recording the very same event again (an RQ retry after the write) returns the kind it got the
first time, so retries never turn `broken` into `still_failing`.

The streak of a failing ref is kept with its state and returned with each transition: the
pipeline that broke it and when (`failing_since_pipeline_number`, `failing_since`) and how many
failed pipelines it has counted (`failed_pipelines`, this one included). A `fixed` transition
returns the streak it ended; `passing` and a green `first_seen` none. It identifies a breakage
(the chat threads of workers/threads.py are keyed by it) and says "failing since #11 · 3
pipelines".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from redis import ConnectionError as RedisConnectionError
from redis import Redis
from redis import TimeoutError as RedisTimeoutError

from config.clock import SYSTEM_CLOCK, Clock
from config.errors import ConfigurationError, RedisUnavailable
from workers.event_index import KeyRefresh
from workers.timestamps import parse_time

KEY_PREFIX = "cie:transition:"
# Every state's key scored by when it was last written (epoch seconds), for the console's branch
# grid and the cctray feed: they read this instead of scanning the keyspace. Entries past the TTL
# are trimmed by the worker's maintenance (`trim_states`); an entry whose hash expired is skipped.
STATES_INDEX = "cie:transitions"
DEFAULT_TTL_SECONDS = 90 * 24 * 3600
SUCCESS = "success"
CANCELED = "canceled"
UNCHANGED_KINDS = (CANCELED, "stale")
# Every kind an event's transition can have (a routes file's `transitions:` values are checked against them).
KINDS = ("first_seen", "passing", "broken", "fixed", "still_failing", *UNCHANGED_KINDS)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS: the state hash, the index of states. ARGV: status, pipeline number, happened_at in epoch
# microseconds (the order within a pipeline), happened_at as sent, TTL seconds, "peek" to write
# nothing, the workflow's web URL ("" when unknown), and now in epoch seconds (the index's score:
# the recording worker's clock, one command less than Redis's TIME on every workflow-completed event),
# and "1" to set the state's TTL (a new state gets it whatever this says).
# Returns {kind, previous status, previous pipeline number, failing since pipeline number,
# failing since (happened_at), failed pipelines}; a missing value is false (nil in Python).
RECORD_LUA = """
local prev = redis.call('HMGET', KEYS[1], 'status', 'pipeline_number', 'order',
                        'kind', 'previous_status', 'previous_pipeline_number',
                        'since_number', 'since_at', 'failed_count', 'happened_at')
local status, number, order = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local kind = 'first_seen'
if prev[1] then
  local prev_number, prev_order = tonumber(prev[2]), tonumber(prev[3])
  if number == prev_number and order == prev_order and status == prev[1] then
    return {prev[4], prev[5], prev[6], prev[7], prev[8], prev[9]}
  end
  if number < prev_number or (number == prev_number and order <= prev_order) then
    return {'stale', prev[1], prev[2]}
  end
  if prev[1] == 'success' then
    kind = (status == 'success') and 'passing' or 'broken'
  else
    kind = (status == 'success') and 'fixed' or 'still_failing'
  end
end
-- the streak: started by this failure, continued by it, or ended by this success (state kept
-- before streaks were recorded counts from the previous failure)
local since_number, since_at, failed = false, false, false
if kind == 'still_failing' or kind == 'fixed' then
  since_number = prev[7] or prev[2]
  since_at = prev[8] or prev[10] or false
  failed = tonumber(prev[9]) or 1
  if kind == 'still_failing' then failed = failed + 1 end
elseif status ~= 'success' then
  since_number, since_at, failed = ARGV[2], ARGV[4], 1
end
if ARGV[6] == 'peek' then
  return {kind, prev[1], prev[2], since_number, since_at, failed}
end
local fields = {'status', status, 'pipeline_number', ARGV[2], 'order', ARGV[3], 'happened_at', ARGV[4],
                'kind', kind}
if ARGV[7] ~= '' then
  fields[#fields + 1] = 'web_url'
  fields[#fields + 1] = ARGV[7]
end
if status == 'success' then
  fields[#fields + 1] = 'last_success_number'
  fields[#fields + 1] = ARGV[2]
end
if prev[1] then
  for _, v in ipairs({'previous_status', prev[1], 'previous_pipeline_number', prev[2]}) do
    fields[#fields + 1] = v
  end
end
if since_number then
  for _, v in ipairs({'since_number', since_number, 'since_at', since_at or '', 'failed_count', failed}) do
    fields[#fields + 1] = v
  end
else
  redis.call('HDEL', KEYS[1], 'since_number', 'since_at', 'failed_count')
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[9] == '1' or not prev[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
redis.call('ZADD', KEYS[2], ARGV[8], KEYS[1])
return {kind, prev[1], prev[2], since_number, since_at, failed}
"""


@dataclass(frozen=True)
class Transition:
    """How a completed workflow compares with the previous one on its ref."""

    kind: str
    previous_status: str | None = None
    previous_pipeline_number: int | None = None
    failing_since_pipeline_number: int | None = None
    failing_since: str | None = None
    failed_pipelines: int | None = None

    @property
    def recorded(self) -> bool:
        """True when this event became the stored state (not canceled, not stale)."""
        return self.kind not in UNCHANGED_KINDS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transition:
        return cls(
            kind=str(data["kind"]),
            previous_status=data.get("previous_status"),
            previous_pipeline_number=_int(data.get("previous_pipeline_number")),
            failing_since_pipeline_number=_int(data.get("failing_since_pipeline_number")),
            failing_since=data.get("failing_since") or None,
            failed_pipelines=_int(data.get("failed_pipelines")),
        )


def is_failure(status: str) -> bool:
    """True for any status but `success` and `canceled`: what `record` counts as broken."""
    return status.strip().lower() not in (SUCCESS, CANCELED)


def ref_name(branch: str | None, tag: str | None) -> str | None:
    """The ref part of a transition's key: `tag:<name>` for a tag build, else the branch."""
    return f"tag:{tag}" if tag is not None else branch


def ref_of(event: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(project slug, ref, workflow name) of an enriched event as its transitions are kept; None
    without a project, a branch or tag, or a workflow."""

    def get(section: str, name: str) -> str | None:
        part = event.get(section)
        value = part.get(name) if isinstance(part, Mapping) else None
        return value if isinstance(value, str) and value else None

    project, workflow = get("project", "slug"), get("workflow", "name")
    ref = ref_name(get("vcs", "branch"), get("vcs", "tag"))
    return (project, ref, workflow) if project and ref and workflow else None


def transition_key(project: str, ref: str, workflow: str) -> str:
    """The Redis key of one (project, ref, workflow); each part percent-encoded, so '/', ':' and
    unicode cannot make two triples share a key."""
    return KEY_PREFIX + ":".join(quote(part, safe="") for part in (project, ref, workflow))


class TransitionStore:
    """Records terminal workflow statuses and says which transition each one is."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
        refresh: KeyRefresh | None = None,
    ) -> None:
        """`refresh`: a worker process's record of the keys whose TTL it set (its context's): a state's
        TTL is then set at most once per REFRESH_SECONDS, not with every event of its ref."""
        if ttl_seconds <= 0:
            raise ConfigurationError(f"the transition state TTL must be positive seconds, got {ttl_seconds!r}")
        self._script = redis.register_script(RECORD_LUA)
        self._ttl = ttl_seconds
        self._clock = clock
        self._refresh = refresh

    def record(
        self,
        *,
        project: str,
        ref: str,
        workflow: str,
        status: str,
        pipeline_number: int,
        happened_at: str,
        peek: bool = False,
        web_url: str | None = None,
    ) -> Transition:
        """Compare `status` with the stored state and store it when this event is the newest;
        with `peek`, only say what the transition would be and write nothing (`preview`).

        Any status but `success` and `canceled` is a failure (`failed`, `error`, `unauthorized`,
        and API values such as `infrastructure_fail`; pitfalls A9). An unreadable `happened_at`
        orders first within its pipeline.
        """
        status = status.strip().lower()
        if status == CANCELED:
            return Transition(kind=CANCELED)
        moment = parse_time(happened_at)
        order = 0 if moment is None else (moment - EPOCH) // timedelta(microseconds=1)
        args: list[str | int] = [status, int(pipeline_number), order, happened_at, self._ttl, "peek" if peek else ""]
        key, now = transition_key(project, ref, workflow), self._clock.now()
        expire = peek or self._refresh is None or self._refresh.due(key, now, self._ttl)
        args += [web_url or "", int(now), "1" if expire else ""]
        try:
            answer = self._script(keys=[key, STATES_INDEX], args=args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            doing = "reading" if peek else "recording"
            raise RedisUnavailable(f"Redis did not answer while {doing} a transition: {exc}") from exc
        kind, previous_status, previous_number, since_number, since_at, failed = [*answer, None, None, None][:6]
        return Transition(
            kind=str(_text(kind)),
            previous_status=_text(previous_status),
            previous_pipeline_number=_int(previous_number),
            failing_since_pipeline_number=_int(since_number),
            failing_since=_text(since_at) or None,
            failed_pipelines=_int(failed),
        )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)
