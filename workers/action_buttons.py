"""The buttons of a Slack message that act on CircleCI: their action ids and their blocks.

A button's `action_id` names the action; its `value` is only an event id, an opaque key: what
the action acts on (workflow, approval request, project, branch) is read from the stored event
(workers/store.py) by the worker, never taken from the button. Approve and Cancel ask Slack for a
confirmation first.
"""

from __future__ import annotations

from typing import Any

APPROVE, CANCEL, RERUN = "approve", "cancel", "rerun"
ACTIONS = (APPROVE, CANCEL, RERUN)
# action_id -> action
ACTION_IDS = {f"circleci_events.{action}": action for action in ACTIONS}
ACTIONS_BLOCK_ID = "circleci_events.actions"
LABELS = {APPROVE: "Approve", CANCEL: "Cancel workflow", RERUN: "Rerun failed jobs"}
STYLES = {APPROVE: "primary", CANCEL: "danger"}
CONFIRM = {
    APPROVE: "Approve {job}? CircleCI records the service's token as the approver.",
    CANCEL: "Cancel the whole workflow {workflow}?",
}


def button(action: str, event_id: str, *, job: str = "", workflow: str = "") -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"circleci_events.{action}",
        "text": {"type": "plain_text", "text": LABELS[action]},
        "value": event_id,
    }
    if action in STYLES:
        element["style"] = STYLES[action]
    if action in CONFIRM:
        element["confirm"] = {
            "title": {"type": "plain_text", "text": LABELS[action]},
            "text": {"type": "plain_text", "text": CONFIRM[action].format(job=job, workflow=workflow)[:300]},
            "confirm": {"type": "plain_text", "text": LABELS[action]},
            "deny": {"type": "plain_text", "text": "Back"},
        }
    return element


def actions_block(actions: list[str], event_id: str, *, job: str = "", workflow: str = "") -> dict[str, Any]:
    """One `actions` block with a button per action, all carrying the event id."""
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [button(a, event_id, job=job, workflow=workflow) for a in actions],
    }


def with_actions(blocks: list[Any], block: dict[str, Any] | None) -> list[Any]:
    """The blocks with their action buttons (if any) replaced by `block` (None: removed), last."""
    kept = [b for b in blocks if not (isinstance(b, dict) and b.get("block_id") == ACTIONS_BLOCK_ID)]
    return ([*kept[:49], block] if block is not None else kept)[:50]


def settled(blocks: list[Any], line: str) -> list[Any]:
    """The message's blocks with its action buttons replaced by a context line saying what happened."""
    return [*with_actions(blocks, None), {"type": "context", "elements": [{"type": "mrkdwn", "text": line[:3000]}]}]
