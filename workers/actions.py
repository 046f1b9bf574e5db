"""The worker's side of a Slack button click: `workers.actions.act(click)`, queued by the web.

    outcome        when                                                   what the clicker sees
    unknown        the button's event is not stored (expired, never ours)  ephemeral, nothing called
                   or the button does not fit the event
    refused        `actions:` grants the user nothing here (default deny)  ephemeral "you may not …
                                                                           (ask …)", nothing called
    already        another click took this action first (SET NX)          ephemeral, nothing called
    stale          CircleCI's workflow no longer waits (approve, cancel)  message updated: why
                   or is no longer failed or was rerun already (rerun)    nothing happened
    done           CircleCI accepted the call                             message updated: "Approved
                                                                           by @ada at 12:03", …
    circleci_refused  CircleCI answered 4xx                               message updated with
                                                                           CircleCI's refusal in plain
                                                                           words
    failed         CircleCI could not answer (5xx, timeout)               ephemeral "try again";
                                                                           the claim is dropped

The button carries only an event id: the workflow, approval request, project and branch are
read from the stored event, never from the click. Before acting, the workflow is read again
from CircleCI, so a click on an old message acts on what is true now. Every outcome is recorded
in the event's history (`events show`) with the Slack user id and CircleCI's answer.

Keys:

    cie:act:<action>:<workflow id or approval request id>   string  "<slack user> <epoch>": the
                 one click that acts; SET NX, 1 day. Double clicks, two users at once and
                 replays make one CircleCI call.
    cie:slack-group:<group id>   string  JSON list of the group's user ids (usergroups.users.list),
                 GROUP_TTL_SECONDS
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from config.errors import (
    CircleCIAPIError,
    CircleCIBadRequest,
    CircleCIForbidden,
    CircleCINotFound,
    CircleCIUnauthorized,
    HandlerError,
)
from workers.action_buttons import APPROVE, CANCEL, RERUN, settled
from workers.context import WorkerContext, current
from workers.handlers import ButtonHost, button_hosts
from workers.jobs import APPROVAL_PENDING, WORKFLOW_COMPLETED
from workers.store import EventStore

log = structlog.get_logger("workers.actions")
CLAIM_PREFIX = "cie:act:"
CLAIM_TTL_SECONDS = 24 * 3600
GROUP_PREFIX = "cie:slack-group:"
GROUP_TTL_SECONDS = 300
FAILED = ("failed", "error")
VERBS = {APPROVE: "approve", CANCEL: "cancel", RERUN: "rerun"}
DONE = {APPROVE: "✅ Approved by {user} at {time}", CANCEL: "🚫 Workflow canceled by {user} at {time}",
        RERUN: "🔁 Rerun by {user} at {time}"}  # fmt: skip


def plain_words(exc: CircleCIAPIError, action: str) -> str:
    """CircleCI's refusal as a person reads it: what it means, then what CircleCI said."""
    said = str(exc.details.get("body") or "").strip()[:200]
    if isinstance(exc, CircleCIUnauthorized):
        meaning = "CircleCI refused the service's token (revoked or mistyped): an operator must fix CIRCLE_TOKEN"
    elif isinstance(exc, CircleCIForbidden):
        meaning = f"the service's CircleCI token has no permission to {VERBS[action]} in this project"
    elif isinstance(exc, CircleCINotFound):
        meaning = "CircleCI no longer knows this workflow or approval (too old, or already acted on)"
    elif isinstance(exc, CircleCIBadRequest):
        meaning = f"CircleCI would not {VERBS[action]} this now (already done, or the workflow is too old)"
    else:
        meaning = f"CircleCI could not be reached to {VERBS[action]}"
    return meaning + (f" — CircleCI said: “{said}”" if said else "")


def act(click: dict[str, Any]) -> dict[str, Any]:
    """Authorize the click, re-read the workflow, make the CircleCI call once, show the outcome."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=click.get("request_id"), event_id=click.get("button"), action=click.get("action"),
        slack_user=click.get("user_id"),
    )  # fmt: skip
    return Action(current(), click).run()


class Action:
    def __init__(self, context: WorkerContext, click: Mapping[str, Any]) -> None:
        self.context = context
        self.click = click
        self.action = str(click.get("action"))
        self.user = str(click.get("user_id") or "")
        self.store = EventStore(context.redis, ttl=context.settings.enriched_event_ttl_seconds)
        self.event = self.store.load(str(click.get("button")))

    def run(self) -> dict[str, Any]:
        event, action = self.event, self.action
        if event is None or not _fits(action, event):
            return self._ephemeral("unknown", "This button is no longer known (its event expired or is not ours): "
                                   "nothing was done.")  # fmt: skip
        routes = self.context.routing.routes
        permissions = routes.permissions if routes is not None else None
        if permissions is None or not permissions.allows(action, self.user, event, self._members):
            who = permissions.who(action, event) if permissions is not None else "an operator"
            log.warning("action_refused", project=event["project"]["slug"])
            return self._ephemeral("refused", f"You may not {VERBS[action]} this (ask {who}). Nothing was done.")
        target = _target(action, event)
        claim = f"{CLAIM_PREFIX}{action}:{target}"
        holder = f"{self.user} {time.time():.0f}"
        if not self.context.redis.set(claim, holder, nx=True, ex=CLAIM_TTL_SECONDS):
            taken = _text(self.context.redis.get(claim)).split(" ")[0]
            return self._ephemeral("already", f"<@{taken}> already did this: nothing more was done.")
        client = self.context.client
        if client is None:
            self.context.redis.delete(claim)
            return self._ephemeral("failed", "CIRCLE_TOKEN is not set on the workers: nothing can be done.")
        try:
            why_not = self._still_true(client, event)
            if why_not:
                return self._settle("stale", f"Nothing done: {why_not}.")
            answer = self._call(client, event)
        except CircleCIAPIError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                self.context.redis.delete(claim)  # CircleCI did not decide: a later click may try again
                return self._ephemeral("failed", f"{plain_words(exc, action)}. Nothing was done; try again later.",
                                       circleci=exc.message)  # fmt: skip
            return self._settle("circleci_refused", f"Nothing done: {plain_words(exc, action)}.", circleci=exc.message)
        line = DONE[action].format(user=f"<@{self.user}>", time=_time())
        if action == RERUN:
            link = _workflow_url(event, answer)
            number = event["pipeline"].get("number")
            label = f"pipeline #{number}" if number is not None else "the new workflow"
            line += f" → <{link}|{label}>" if link else f" → {label}"
        return self._settle("done", line, circleci=answer)

    # -- the checks and the call ----------------------------------------------------------------

    def _still_true(self, client: Any, event: Mapping[str, Any]) -> str | None:
        """Why acting would be wrong now (CircleCI read again), or None."""
        workflow_id = str(event["workflow"]["id"])
        if self.action == APPROVE:
            request_id = event["approval"]["approval_request_id"]
            job = next((j for j in client.workflow_jobs(workflow_id) if j.approval_request_id == request_id), None)
            if job is None:
                return "CircleCI no longer lists this approval"
            if job.status != "on_hold":
                return f"the approval is no longer waiting (it is {job.status})"
            return None
        workflow = client.workflow(workflow_id)
        if self.action == CANCEL:
            return (
                None if workflow.status in ("on_hold", "running", "failing") else f"the workflow is {workflow.status}"
            )
        if workflow.status not in FAILED:
            return f"the workflow is {workflow.status}, not failed"
        siblings = client.pipeline_workflows(str(workflow.pipeline_id))
        since = workflow.created_at or ""
        later = [
            w for w in siblings if w.name == workflow.name and w.id != workflow.id and (w.created_at or "") > since
        ]
        return "the workflow was rerun already" if later else None

    def _call(self, client: Any, event: Mapping[str, Any]) -> str:
        workflow_id = str(event["workflow"]["id"])
        started = time.perf_counter()
        if self.action == APPROVE:
            answer = client.approve_job(workflow_id, event["approval"]["approval_request_id"])
        elif self.action == CANCEL:
            answer = client.cancel_workflow(workflow_id)
        else:
            answer = client.rerun_workflow(workflow_id, from_failed=True)
        log.info("action_taken", workflow_id=workflow_id, seconds=round(time.perf_counter() - started, 3))
        return str(answer)

    def _members(self, group: str) -> frozenset[str]:
        """A Slack user group's users, cached GROUP_TTL_SECONDS; none when Slack cannot say."""
        redis = self.context.redis
        cached = redis.get(GROUP_PREFIX + group)
        if cached is not None:
            return frozenset(json.loads(cached))
        handler = self._button_host()
        if handler is None:
            return frozenset()
        try:
            members = handler.group_members(group)
        except HandlerError as exc:
            log.warning("slack_group_unknown", group=group, reason=exc.message)
            return frozenset()
        redis.set(GROUP_PREFIX + group, json.dumps(sorted(members)), ex=GROUP_TTL_SECONDS)
        return members

    # -- what the clicker sees, and the history -------------------------------------------------

    def _settle(self, outcome: str, line: str, *, circleci: str | None = None) -> dict[str, Any]:
        """The message updated in place: its buttons replaced by the outcome's line (chat.update)."""
        handler = self._button_host()
        channel, ts = self.click.get("channel_id"), self.click.get("message_ts")
        blocks = self.click.get("message_blocks")
        if handler is not None and channel and ts and isinstance(blocks, list):
            text = str(self.click.get("message_text") or line)
            try:
                handler.update_message(str(channel), str(ts), text, settled(blocks, line))
            except HandlerError as exc:
                log.warning("action_message_not_updated", reason=exc.message)
                self._tell(line)
        else:
            self._tell(line)
        return self._record(outcome, line, circleci)

    def _ephemeral(self, outcome: str, text: str, *, circleci: str | None = None) -> dict[str, Any]:
        self._tell(text)
        return self._record(outcome, text, circleci)

    def _tell(self, text: str) -> None:
        """An ephemeral reply through the click's response_url; failures only logged."""
        url = self.click.get("response_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return
        try:
            self.context.http.post(url, json={"response_type": "ephemeral", "replace_original": False, "text": text})
        except httpx.HTTPError as exc:
            log.warning("slack_response_url_failed", error_type=type(exc).__name__)

    def _record(self, outcome: str, said: str, circleci: str | None) -> dict[str, Any]:
        entry = {"action": self.action, "slack_user": self.user, "outcome": outcome, "said": said,
                 "circleci": circleci, "request_id": self.click.get("request_id")}  # fmt: skip
        if self.event is not None:
            self.store.record_action(self.event["event_id"], entry)
        log.info("action_settled", outcome=outcome)
        return entry

    def _button_host(self) -> ButtonHost | None:
        """The handler with buttons (slack_app) that posted the event, else the first one: the
        click is answered through it (its token acts)."""
        hosts = button_hosts(self.context.routing.handlers)
        record = self.store.record(self.event["event_id"]) if self.event is not None else None
        named = [h for h in (record or {}).get("handlers") or [] if h in hosts]
        return hosts[named[0]] if named else next(iter(hosts.values()), None)


def _fits(action: str, event: Mapping[str, Any]) -> bool:
    """The buttons a stored event can carry: approve and cancel on an approval notice, rerun on a
    workflow event."""
    if not isinstance(event.get("workflow"), Mapping) or not event["workflow"].get("id"):
        return False
    if action in (APPROVE, CANCEL):
        return event.get("event_type") == APPROVAL_PENDING and isinstance(event.get("approval"), Mapping)
    return action == RERUN and event.get("event_type") == WORKFLOW_COMPLETED


def _target(action: str, event: Mapping[str, Any]) -> str:
    return str(event["approval"]["approval_request_id"] if action == APPROVE else event["workflow"]["id"])


def _workflow_url(event: Mapping[str, Any], new_workflow_id: str) -> str | None:
    url, old = event["workflow"].get("url"), event["workflow"].get("id")
    return str(url).replace(str(old), new_workflow_id) if url and old and new_workflow_id else url


def _time() -> str:
    """Now in Slack's date format: each reader sees their own time zone (`12:03`)."""
    now = time.time()
    return f"<!date^{int(now)}^{{time}}|{time.strftime('%H:%M UTC', time.gmtime(now))}>"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
