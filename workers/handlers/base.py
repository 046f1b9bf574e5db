"""The Handler base class and the shared `post_json` status mapping.

    post_json outcome       error raised
    2xx                     none
    429                     DeliveryRetryable, retry_after from Retry-After (seconds or HTTP date)
    408, 5xx                DeliveryRetryable
    timeout, transport      DeliveryRetryable (status None)
    any other status        DeliveryRejected

Errors carry the handler name, the status and a body excerpt of at most 200 characters with
the handler's secrets removed (its URL whole and in parts: a server may echo a token segment).
Webhook URLs of Slack, Teams and Discord are secrets: no message, log line or repr here ever
contains one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from config.errors import DeliveryRejected, DeliveryRetryable
from config.redaction import Redactor, option_secrets, url_secrets
from workers.circleci.transport import parse_retry_after
from workers.handlers import transcript
from workers.handlers.capabilities import Capabilities
from workers.handlers.template import compile_template
from workers.handlers.view import json_lines
from workers.message import FailedJob, FailedStep, Message
from workers.people import Mention, People, is_break

if TYPE_CHECKING:
    from redis import Redis

    from workers.routes import Routes

EXCERPT_CHARS = 200
log = structlog.get_logger(__name__)
# keys every handler takes besides its own, with their values (workers/routes_file.py checks them):
# `log_tail: false` for a channel that must never see job output
COMMON_OPTIONS: Mapping[str, tuple[str, ...]] = {"log_tail": ("true", "false")}


@dataclass(frozen=True)
class HandlerConfig:
    """One routes-file handler: its type and options, variables substituted; options stay out of repr (secrets)."""

    name: str
    type: str
    options: Mapping[str, str | None] = field(repr=False)
    line: int = 0


@dataclass(frozen=True)
class HandlerContext:
    """What a handler may use beyond its options, built once per worker process
    (workers/context.py): Redis, for handlers that keep state (chat threads, user look-ups); the
    routes file, for its `people:` and its subscriptions' options; how long state kept per ref
    lives (TRANSITION_TTL_SECONDS) and the outbound timeout. Previews and load-time checks get
    the empty one: no Redis, no routes."""

    redis: Redis | None = None
    routes: Routes | None = None
    state_ttl_seconds: int = 90 * 24 * 3600
    timeout_seconds: float = 10.0
    # at most this many people mentioned, and e-mails looked up, per event (MENTION_MAX_*)
    max_mentions: int = 10
    max_lookups: int = 20


class Handler:
    """One configured destination. `render` shows what `send` would post; `send` posts it;
    `view` shows a rendered body as a person reads it in a terminal (demo, preview).

    Each platform declares its routes-file keys (`required`, and `optional` with their
    defaults) and what it can do (`capabilities`: workers/handlers/capabilities.py).
    """

    type: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[Mapping[str, str | None]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()
    # what `check-config --placeholders` gives an unset `${VAR}` that is a whole option's value,
    # when the option needs a shape of its own (a `url` gets one under `.invalid` whatever the type)
    placeholders: ClassVar[Mapping[str, str]] = {}

    def __init__(self, name: str, options: Mapping[str, str | None], context: HandlerContext | None = None) -> None:
        self.name = name
        self.options = dict(options)
        self.context = context or HandlerContext()
        cls = type(self)
        self.template = compile_template(name, options.get("template"), escape=cls.escape, mention=cls.mention)
        self.log_tail = str(options.get("log_tail") or "true").lower() != "false"

    def shown(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as this handler may see it: without log tails when its options say
        `log_tail: false` (the failing step's name stays). What `send` and `render` are given."""
        jobs = event.get("failed_jobs")
        if self.log_tail or not isinstance(jobs, list):
            return event
        hidden = [
            {**job, "failed_step": {**job["failed_step"], "log_tail": None, "reason": None}}
            if isinstance(job, dict) and isinstance(job.get("failed_step"), dict)
            else job
            for job in jobs
        ]
        return {**event, "failed_jobs": hidden}

    @staticmethod
    def escape(text: str) -> str:
        """The platform's escaping of a CircleCI value (what templates apply to every printed value)."""
        return text

    @staticmethod
    def mention(id: str) -> str:
        """The platform's mention of an id already checked to be letters, digits, `_`, `-`."""
        return "@" + id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    def secrets(self) -> list[str]:
        """Option values (and parts of them) that must never appear in an error or a log line."""
        return option_secrets(self.options)

    def render(self, event: dict[str, Any]) -> dict[str, Any] | bytes:
        raise NotImplementedError

    def render_in_thread(self, event: dict[str, Any], thread_ts: str) -> dict[str, Any] | bytes:
        """What `send` would post for `event` when its breakage's thread is rooted at message
        `thread_ts`; a platform whose capabilities say `threads` overrides it."""
        return self.render(event)

    @staticmethod
    def view(body: Any) -> list[str]:
        """A body `render` returned, as lines a person reads in a terminal: JSON unless the
        platform shows it better."""
        return json_lines(body)

    def send(self, event: dict[str, Any], *, delivery_id: str, http: httpx.Client) -> None:
        """Post `render(event)` as JSON to the handler's url."""
        body = self.render(event)
        post_json(http, str(self.options["url"]), body, handler=self.name, secrets=self.secrets())

    def mentions(self, event: Mapping[str, Any], lookup: Callable[[str], str | None] | None = None) -> list[Mention]:
        """Whom to mention for an event on this platform: on a break, unless a subscription
        turned mentions off; `people:` first, then `lookup` by e-mail when given."""
        routes, identity = self.context.routes, self.capabilities.identity
        if identity is None or not is_break(event):
            return []
        if routes is not None and not routes.mentions_on(event, self.name):
            return []
        people = routes.people if routes is not None else People()
        limits = {"max_people": self.context.max_mentions, "max_lookups": self.context.max_lookups}
        return people.mentions(event, identity.key, lookup, **limits)

    def summary(self, message: Message, event: Mapping[str, Any], default: str) -> str:
        """The template's output when there is one, else `default`; a template failing at send falls back."""
        if self.template is None:
            return default
        try:
            return self.template.render(event=event, message=message)
        except Exception as exc:  # a template error must not drop the notification
            log.warning("template_failed", handler=self.name, error=type(exc).__name__)
            return default


def shown_to(handler: object, event: dict[str, Any]) -> dict[str, Any]:
    """The event as `handler` is given it (Handler.shown); an object that is not a Handler (a
    test double) gets it as it is."""
    return handler.shown(event) if isinstance(handler, Handler) else event


def summary_lines(m: Message, escape: Callable[[str], str], *, bold: str = "**") -> list[str]:
    """The transition (bold) and the commit subject with its author, escaped for a platform."""
    lines = [f"{bold}{escape(m.transition_phrase)}{bold}"] if m.transition_phrase else []
    if m.commit_subject:
        lines.append(escape(m.commit_subject) + (f" — {escape(m.commit_author)}" if m.commit_author else ""))
    return lines


def failed_test_lines(m: Message, escape: Callable[[str], str], *, bullet: str = "•") -> list[str]:
    """The failed-tests digest, one escaped line a test (a known flake marked), then `…and K more`."""
    lines = [
        f"{bullet} {escape(t.name)}"
        + (f" · 🟡 {t.flaky_mark}" if t.flaky_mark else "")
        + (f": {escape(t.message[:200])}" if t.message else "")
        for t in m.failed_tests
    ]
    if m.only_known_flaky:
        lines.append("🟡 every failing test is a known flake")
    return lines + ([f"…and {m.more_failed_tests} more"] if m.more_failed_tests else [])


def step_heading(job: FailedJob, escape: Callable[[str], str], *, bold: str = "**", quote: str = "`") -> str:
    """`**Failed step** `docker build` in build-image · exit 1`, values escaped (`quote` around
    the step's name: inline code where the platform's escaping keeps working inside it); a step
    without its tail says why (`no log tail: …`)."""
    step = job.step
    assert step is not None
    name = escape(step.name.replace("`", "'"))
    line = f"{bold}Failed step{bold} {quote}{name}{quote} in {escape(job.name)} · {escape(step.outcome)}"
    if step.log_tail is None and step.reason:
        line += f"\n_no log tail: {escape(step.reason)}_"
    return line


def tail_text(step: FailedStep, limit: int) -> str:
    """The log tail's last `limit` characters, `…` first when it was cut (here or at reading)."""
    text = step.log_tail or ""
    cut = len(text) > limit
    text = text[-limit:] if cut else text
    return ("…\n" if cut or step.truncated else "") + text


def post_json(
    http: httpx.Client,
    url: str,
    body: Mapping[str, Any] | bytes,
    *,
    handler: str,
    secrets: list[str],
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> httpx.Response:
    """POST (or `method`) JSON and map the answer onto DeliveryRetryable / DeliveryRejected."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    transcript.note(transcript.destination(method, url), body, [*url_secrets(url), *secrets])
    try:
        all_headers = {"content-type": "application/json", **(headers or {})}
        response = http.request(method, url, content=content, headers=all_headers)
    except httpx.TransportError as exc:
        what = transport_failure(exc, http, [*url_secrets(url), *secrets])
        raise DeliveryRetryable(f"handler {handler!r}: {what}", handler=handler, body_excerpt=what) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    excerpt = redact(response.text, [*url_secrets(url), *secrets])[:EXCERPT_CHARS]
    message = f"handler {handler!r}: destination answered {status}" + (f": {excerpt}" if excerpt else "")
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise DeliveryRetryable(message, handler=handler, status=status, retry_after=retry_after, body_excerpt=excerpt)
    error = DeliveryRetryable if status == 408 or status >= 500 else DeliveryRejected
    raise error(message, handler=handler, status=status, body_excerpt=excerpt)


def transport_failure(exc: httpx.TransportError, http: httpx.Client, secrets: list[str]) -> str:
    """What went wrong before any answer, as an operator needs it: a timeout and after how long,
    connection refused, a name that does not resolve, a TLS failure (the reason as the OS or
    OpenSSL gave it, without secrets)."""
    # only what the OS or OpenSSL said ("[Errno 111] Connection refused", "[SSL: ...] ..."): the
    # rest of an exception's text may carry a URL, and a chat webhook's URL is its credential
    said = re.findall(r"\[(?:Errno -?\d+|SSL[^\]]*)\][^\[\]()'\"]*", str(exc))
    reason = redact(" ".join(said) if said else type(exc).__name__, secrets)[:EXCERPT_CHARS]
    if isinstance(exc, httpx.TimeoutException):
        timeouts = http.timeout
        phase = {httpx.ConnectTimeout: ("connect", timeouts.connect), httpx.WriteTimeout: ("write", timeouts.write),
                 httpx.PoolTimeout: ("pool", timeouts.pool)}.get(type(exc), ("read", timeouts.read))  # fmt: skip
        within = f"within {phase[1]:g} s" if phase[1] else "in time"
        return f"timeout: no {'answer' if phase[0] == 'read' else phase[0]} {within} ({type(exc).__name__})"
    lowered = reason.lower()
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return f"TLS failure: {reason}"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "name resolution" in lowered:
        return f"DNS: the host name does not resolve ({reason})"
    if "refused" in lowered:
        return f"connection refused ({reason})"
    return f"could not connect: {reason}" if said else f"could not connect ({type(exc).__name__})"


def redact(text: str, secrets: list[str]) -> str:
    """The text on one line, without any of the secrets."""
    return re.sub(r"\s+", " ", Redactor(secrets).redact(text)).strip()


def safe_url(url: str | None) -> str | None:
    """The url when it is http(s) and cannot break out of a link's markup (`<url|label>`,
    `[label](url)`): no `|`, `<`, `>` or whitespace; else None."""
    if not url or any(c in url for c in "|<> \n\t"):
        return None
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None
