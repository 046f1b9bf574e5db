"""What a breakage's Slack thread says: the streak and the fix on its root, the short replies,
the direct message to whoever broke it. mrkdwn; every CircleCI value escaped.
"""

from __future__ import annotations

from typing import Any

from workers.handlers.slack import MAX_SECTION, clip, escape, link
from workers.message import Message


def streak_line(m: Message) -> str | None:
    """`🔴 failing since #11 · 3 pipelines · 2 h · latest #13` (mrkdwn); None for a first failure."""
    since, count, took = m.failing_since_pipeline_number, m.failed_pipelines or 1, m.failing_for
    if count < 2:
        return None
    parts = [f"🔴 *failing since #{since}*", f"{count} pipelines", took]
    latest = link(f"#{m.pipeline_number}", m.url) if m.pipeline_number is not None else None
    return " · ".join(p for p in [*parts, f"latest {latest}" if latest else None] if p)


def fixed_line(m: Message) -> str:
    """`✅ *fixed* in #14 by Ada after 3 failed pipelines · 2 h (failing since #11)` (mrkdwn)."""
    since, count, took = m.failing_since_pipeline_number, m.failed_pipelines or 1, m.failing_for
    where = link(f"#{m.pipeline_number}", m.url) if m.pipeline_number is not None else "the latest pipeline"
    who = f" by {escape(m.commit_author)}" if m.commit_author else ""
    after = f" after {count} failed pipeline{'s' if count != 1 else ''}" + (f" · {took}" if took else "")
    return f"✅ *fixed* in {where}{who}{after} (failing since #{since})"


def reply_text(m: Message) -> str:
    """The short reply of a thread: still failing with the pipeline and its failures, or the fix."""
    if m.transition == "fixed":
        return fixed_line(m)
    pipeline = link(f"pipeline #{m.pipeline_number}", m.url) if m.pipeline_number is not None else None
    failed_tests = len(m.failed_tests) + m.more_failed_tests
    failures = (
        f"{failed_tests} failed test{'s' if failed_tests != 1 else ''}"
        if failed_tests
        else ("failed: " + ", ".join(escape(j.name) for j in m.failed_jobs) if m.failed_jobs else None)
    )
    line = " · ".join(p for p in (f"{m.emoji} still failing", pipeline, failures) if p)
    if m.commit_subject:
        line += "\n" + escape(m.commit_subject) + (f" — {escape(m.commit_author)}" if m.commit_author else "")
    return line


def job_reply_text(m: Message) -> str:
    """`❌ job test failed · pipeline #13 · 3 failed tests` (mrkdwn): a job event in the thread."""
    job = link(m.job.label, m.job.url) if m.job else "a job"
    pipeline = f"pipeline #{m.pipeline_number}" if m.pipeline_number is not None else None
    tests = len(m.failed_tests) + m.more_failed_tests
    failures = f"{tests} failed test{'s' if tests != 1 else ''}" if tests else None
    return " · ".join(p for p in (f"{m.emoji} job {job} {escape(m.status_verb)}", pipeline, failures) if p)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION)}]}


def dm_text(m: Message, channel: str, permalink: str | None) -> str:
    """The direct message to whoever broke the build: what broke, and the thread."""
    what = escape(m.workflow.label if m.workflow else "the build")
    where = f" on {escape(m.ref)}" if m.ref else ""
    thread = link("the thread", permalink) if permalink else f"the thread in <#{channel}>"
    commit = f" with your commit “{escape(m.commit_subject)}”" if m.commit_subject else ""
    return f"{m.emoji} {what} broke{where} in {escape(m.project)}{commit}: see {thread}"
