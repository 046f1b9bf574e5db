"""post_json's status mapping, the registry, templates (escaped for the platform), and what every handler renders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from config.errors import ConfigurationError, DeliveryRejected, DeliveryRetryable
from config.redaction import option_secrets
from tests.workers.handlers import callables
from tests.workers.handlers.conftest import (
    CHAT_TYPES,
    OPTIONS,
    SECRET_URL,
    alert_event,
    hostile_event,
    incomplete_event,
    load_event,
    make,
)
from workers.handlers import HANDLER_TYPES, build_handler
from workers.handlers.base import HandlerConfig
from workers.message import Message

POSTING = ("slack", "teams", "discord", "pagerduty", "webhook")


def test_registry_knows_every_type_the_routes_file_accepts() -> None:
    assert set(HANDLER_TYPES) == set(OPTIONS)
    assert all(cls.type == name for name, cls in HANDLER_TYPES.items())


def test_build_handler_refuses_an_unknown_type() -> None:
    with pytest.raises(ConfigurationError, match="handler 'x', key 'type'"):
        build_handler("x", HandlerConfig(name="x", type="fax", options={}))


@pytest.mark.parametrize("kind", POSTING)
@pytest.mark.parametrize("status", [200, 202, 204])
def test_send_succeeds_on_2xx(kind: str, status: int, event: dict[str, Any], http: Any, requests: list) -> None:
    make(kind).send(event, delivery_id="d-1", http=http(lambda r: httpx.Response(status)))
    assert len(requests) == 1
    assert requests[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("kind", POSTING)
@pytest.mark.parametrize(
    ("status", "error"),
    [(400, DeliveryRejected), (403, DeliveryRejected), (404, DeliveryRejected), (408, DeliveryRetryable),
     (429, DeliveryRetryable), (500, DeliveryRetryable), (503, DeliveryRetryable)],
)  # fmt: skip
def test_send_maps_status_onto_the_error_tree(
    kind: str, status: int, error: type[Exception], event: dict[str, Any], http: Any
) -> None:
    handler = make(kind, name="dest")
    echoed = [v for k, v in OPTIONS[kind].items() if k in ("url", "secret", "routing_key")]
    body = "bad request for " + " and ".join(echoed) + " /services/T000/B000/sEcReTtOkEn123 " + "z" * 500
    # a URL's credential parts (PagerDuty's endpoint has none: its routing key is the secret)
    secrets = option_secrets(OPTIONS[kind])
    with pytest.raises(error) as info:
        handler.send(event, delivery_id="d", http=http(lambda r: httpx.Response(status, text=body)))
    exc = info.value
    assert exc.handler == "dest" and exc.status == status
    assert 0 < len(exc.body_excerpt) <= 200
    assert str(status) in str(exc)
    for secret in [*secrets, "sEcReTtOkEn123"] if kind != "pagerduty" else secrets:
        assert secret not in str(exc) and secret not in exc.body_excerpt


@pytest.mark.parametrize(
    ("header", "expected"), [("120", 120.0), ("http-date", 90.0), ("soon", None)], ids=["seconds", "date", "garbage"]
)
def test_429_carries_retry_after_in_both_forms(header: str, expected: float | None, event: Any, http: Any) -> None:
    if header == "http-date":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    client = http(lambda r: httpx.Response(429, headers={"Retry-After": header}))
    with pytest.raises(DeliveryRetryable) as info:
        make("slack").send(event, delivery_id="d", http=client)
    if expected is None:
        assert info.value.retry_after is None
    else:
        assert info.value.retry_after == pytest.approx(expected, abs=2)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.ConnectError(f"cannot reach {SECRET_URL}")],
    ids=["timeout", "connect"],
)
@pytest.mark.parametrize("kind", POSTING)
def test_timeouts_and_transport_errors_are_retryable(kind: str, failure: Exception, event: Any, http: Any) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(DeliveryRetryable) as info:
        make(kind).send(event, delivery_id="d", http=http(respond))
    assert info.value.status is None
    assert "sEcReTtOkEn123" not in str(info.value)


@pytest.mark.parametrize("kind", list(OPTIONS))
def test_repr_shows_no_secret(kind: str) -> None:
    handler = make(kind)
    config = HandlerConfig(name="h", type=kind, options=OPTIONS[kind])
    for text in (repr(handler), repr(config)):
        assert "sEcReTtOkEn123" not in text and "R0UTINGKEY" not in text and "webhook-secret" not in text


@pytest.mark.parametrize("kind", list(OPTIONS))
@pytest.mark.parametrize(
    "make_event", [incomplete_event, hostile_event, lambda: {}], ids=["incomplete", "hostile", "empty"]
)
def test_every_handler_renders_odd_events_without_raising(kind: str, make_event: Any) -> None:
    rendered = make(kind).render(make_event())
    assert isinstance(rendered, dict | bytes)
    json.dumps(rendered if isinstance(rendered, dict) else json.loads(rendered))


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_a_template_replaces_the_default_text(kind: str, event: dict[str, Any]) -> None:
    handler = make(kind, template="CUSTOM {{ message.status }} {{ event.vcs.commit_subject | esc }}")
    assert "CUSTOM failed" in json.dumps(handler.render(event), ensure_ascii=False)


@pytest.mark.parametrize("kind", CHAT_TYPES)
@pytest.mark.parametrize(
    ("template", "reason"),
    [("{{ message.title ", "does not compile"), ("{{ 1 // 0 }}", "fails on the sample event"),
     ("{{ event.clear() }}", "fails on the sample event")],
    ids=["syntax", "runtime", "sandbox"],
)  # fmt: skip
def test_a_broken_template_is_a_configuration_error_naming_the_handler(kind: str, template: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=f"handler 'ops', key 'template': {reason}"):
        make(kind, name="ops", template=template)


def test_a_template_that_breaks_on_one_event_falls_back_to_the_default(event: dict[str, Any]) -> None:
    handler = make("log", template="{{ 10 // event.pipeline.number }}")
    event["pipeline"]["number"] = 0
    assert handler.render(event)["text"].startswith("❌ build-test-deploy failed")


# Templates escape every printed value for the platform (issue 11 finding 8).

ESCAPING = ("slack", "teams", "discord")
SUBJECT = "<!channel> & <@U1>"


def summary(kind: str, template: str, **vcs: str) -> str:
    """What the template printed for a handler of `kind`, on the fixture event changed by `vcs`."""
    handler = make(kind, template=template)
    event = load_event()
    event["vcs"].update(vcs)
    return handler.summary(Message.from_event(event), event, "DEFAULT")


@pytest.mark.parametrize("kind", ESCAPING)
def test_a_printed_value_is_escaped_for_the_platform(kind: str) -> None:
    out = summary(kind, "{{ event.vcs.commit_subject }}", commit_subject=SUBJECT)
    assert out == HANDLER_TYPES[kind].escape(SUBJECT) != SUBJECT


@pytest.mark.parametrize("kind", ESCAPING)
@pytest.mark.parametrize("filter_", ["esc", "e", "escape"])
def test_esc_escapes_once(kind: str, filter_: str) -> None:
    out = summary(kind, f"{{{{ event.vcs.commit_subject | {filter_} }}}}", commit_subject=SUBJECT)
    assert out == HANDLER_TYPES[kind].escape(SUBJECT)


@pytest.mark.parametrize("kind", CHAT_TYPES)
def test_template_text_and_safe_values_are_printed_as_written(kind: str) -> None:
    template = "<!here> build broke: {{ event.vcs.commit_subject | safe }} {{ '<!channel>' | safe }}"
    assert summary(kind, template, commit_subject="*b* <@U1>") == "<!here> build broke: *b* <@U1> <!channel>"


@pytest.mark.parametrize(
    ("kind", "id_", "expected"),
    [("slack", "U0123ABCD", "<@U0123ABCD>"), ("slack", "W0123", "<@W0123>"), ("slack", "here", "<!here>"),
     ("slack", "channel", "<!channel>"), ("slack", "everyone", "<!everyone>"),
     ("slack", "S0GROUP", "<!subteam^S0GROUP>"),
     ("discord", "123456789012345678", "<@123456789012345678>"), ("teams", "U1", "@U1"),
     ("teams", "a_b", "@a_b"), ("teams", "_b", "@\\_b"),
     ("log", "oncall-1", "@oncall-1")],
)  # fmt: skip
def test_mention_prints_the_platforms_syntax(kind: str, id_: str, expected: str) -> None:
    assert summary(kind, f"{{{{ mention('{id_}') }}}}") == expected


@pytest.mark.parametrize(
    "call",
    ["mention('U1> <!channel')", "mention(id='U1> <!channel')", "mention('')", "mention('U 1')", "mention('Ü1')"],
)
def test_a_literal_mention_that_is_not_an_id_is_refused_at_load_time(call: str) -> None:
    with pytest.raises(ConfigurationError, match=r"handler 'ops', key 'template': mention\(.*\) is not an id"):
        make("slack", name="ops", template=f"hi {{{{ {call} }}}}")


def test_a_mention_of_a_value_that_is_not_an_id_prints_it_escaped() -> None:
    out = summary("slack", "{{ mention(event.vcs.author_name) }}", author_name="U1> <!channel")
    assert out == "U1&gt; &lt;!channel"


@pytest.mark.parametrize(
    ("kind", "author", "expected"),
    [("slack", "channel", "channel"), ("slack", "here", "here"), ("slack", "everyone", "everyone"),
     ("slack", "S0GROUP", "S0GROUP"), ("slack", "U0123ABCD", "U0123ABCD"),
     ("discord", "123456789012345678", "123456789012345678"), ("discord", "everyone", "everyone"),
     ("teams", "U1", "U1"), ("log", "oncall", "oncall")],
)  # fmt: skip
def test_a_mention_of_an_event_value_never_pings(kind: str, author: str, expected: str) -> None:
    """Only a literal the routes file wrote pings: a commit author named `channel` is a name."""
    assert summary(kind, "{{ mention(event.vcs.author_name) }}", author_name=author) == expected


@pytest.mark.parametrize(
    "template",
    ["{% set m = mention %}{{ m(event.vcs.author_name) }}", "{{ mention(*[event.vcs.author_name]) }}",
     "{{ mention(id=event.vcs.author_name) }}", "{% set x = event.vcs.author_name %}{{ mention(x) }}",
     "{{ mention(event.vcs.author_name ~ '') }}"],
)  # fmt: skip
def test_no_detour_makes_an_event_value_a_mention(template: str) -> None:
    assert summary("slack", template, author_name="channel") == "channel"


def test_the_literal_mention_function_is_not_reachable_from_a_template() -> None:
    with pytest.raises(ConfigurationError, match="handler 'ops', key 'template'"):
        make("slack", name="ops", template="{{ __mention_literal(event.vcs.author_name) }}")


@pytest.mark.parametrize(
    "template",
    ["{% filter upper %}{{ event.vcs.commit_subject }}{% endfilter %}",
     "{% call mention('U1') %}{{ event.vcs.commit_subject }}{% endcall %}",
     "{% set x | striptags %}{{ event.vcs.commit_subject }}{% endset %}{{ x | safe }}"],
    ids=["filter", "call", "set-filter"],
)  # fmt: skip
def test_blocks_whose_output_skips_the_escaping_are_refused(template: str) -> None:
    with pytest.raises(ConfigurationError, match=r"handler 'ops', key 'template': .* blocks are not allowed"):
        make("slack", name="ops", template=template)


def test_set_blocks_and_macros_print_escaped_once_with_safe() -> None:
    template = (
        "{% set x %}{{ event.vcs.commit_subject }}{% endset %}{% macro m(v) %}[{{ v }}]{% endmacro %}"
        "{{ x | safe }} {{ m(event.vcs.commit_subject) | safe }}"
    )
    out = summary("slack", template, commit_subject=SUBJECT)
    assert out == "&lt;!channel&gt; &amp; &lt;@U1&gt; [&lt;!channel&gt; &amp; &lt;@U1&gt;]"


def test_a_null_value_prints_nothing() -> None:
    assert summary("slack", "[{{ event.vcs.tag }}] [{{ event.vcs.tag | esc }}]") == "[] []"


@pytest.mark.parametrize(
    ("template", "sample"),
    [("{{ event.no.such.key }}", "workflow-completed, transition first_seen"),
     ("{{ event.vcs.tagg }}", "workflow-completed, transition first_seen"),
     ("{{ event.job.name }}", "workflow-completed, transition first_seen"),
     ("{{ event.transition.kind }}", "workflow-completed, no transition"),
     ("{% if event.transition.kind == 'fixed' %}fixed{% endif %}", "workflow-completed, no transition"),
     ("{{ event.failed_jobs[0].tests.failures[0].name }}", "workflow-completed, transition passing")],
)  # fmt: skip
def test_a_name_some_event_lacks_is_a_load_time_error_naming_the_sample(template: str, sample: str) -> None:
    with pytest.raises(ConfigurationError, match="fails on the sample event") as info:
        make("log", template=template)
    assert f"({sample}: UndefinedError" in info.value.message
    assert "guard a value" in info.value.message


@pytest.mark.parametrize(
    "template",
    ["{% if event.job %}{{ event.job.name }}{% endif %}",
     "{{ event.transition.kind if event.transition else 'unknown' }}",
     "{{ (event.transition or {}).kind | default('') }}",
     "{% for j in event.failed_jobs %}{{ j.name }}{% endfor %}"],
)  # fmt: skip
def test_a_guarded_optional_value_loads(template: str) -> None:
    make("log", template=template)


HOSTILE_SUBJECT = "<!channel> <@UEVIL> @everyone [x](https://evil.test) <at>Boss</at> **b**"
# What must not survive on each platform: a Slack mention, a Discord ping or masked link, a Teams mention or link.
RAW = {
    "slack": ["<!channel", "<@UEVIL"],
    "discord": ["<@UEVIL", " @everyone", "[x](https", "**b**"],
    "teams": ["<at>", "<@UEVIL", "[x](https", "**b**"],
}
CONSTRUCTS = [
    "{{ v }}", "{{ v ~ '!' }}", "{{ mention('U1') ~ v }}", "{{ mention('U1') + v }}", "{{ v + mention('U1') }}",
    "{{ mention('U1') ~ ' ' ~ v | upper }}", "{{ '{} {}'.format(mention('U1'), v) }}",
    "{{ mention('U1').replace('U1', v) }}", "{{ mention('U1').join([v, v]) }}",
    "{{ mention('U1').translate({85: v}) }}", "{{ v | esc | striptags }}", "{{ v | striptags }}",
    "{{ v | tojson }}", "{{ v | urlize }}", "{{ [v, v] | join(', ') }}", "{{ '%s' % v }}", "{{ v | truncate(30) }}",
    "{{ v | replace('x', 'y') }}", "{{ v | forceescape }}", "{{ v | default(mention('U1')) }}",
    "{% for c in v | list %}{{ c }}{% endfor %}", "{% set x = v %}{{ x }}",
    "{% set x %}{{ v }}{% endset %}{{ x }}{{ x | safe }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(v) }}{{ m(v) | safe }}",
    "{% autoescape true %}{{ v }}{{ mention('U1') ~ v }}{{ v | e }}{% endautoescape %}",
    "{% with w = v %}{{ w }}{% endwith %}", "{% if v %}{{ v }}{% else %}{% endif %}",
]  # fmt: skip


@pytest.mark.parametrize("construct", CONSTRUCTS)
@pytest.mark.parametrize("kind", ESCAPING)
def test_no_template_construct_prints_a_circleci_value_raw(kind: str, construct: str) -> None:
    template = "{% set v = event.vcs.commit_subject %}" + construct
    out = summary(kind, template, commit_subject=HOSTILE_SUBJECT)
    assert out != "DEFAULT"
    for raw in RAW[kind]:
        assert raw not in out, (raw, out)


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused ([Errno 111] Connection refused)"),
        (
            httpx.ConnectError("[Errno -2] Name or service not known"),
            "DNS: the host name does not resolve ([Errno -2] Name or service not known)",
        ),
        (
            httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006)"),
            "TLS failure: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
        ),
        (httpx.ReadTimeout("timed out"), "timeout: no answer within 7 s (ReadTimeout)"),
        (httpx.ConnectTimeout("timed out"), "timeout: no connect within 2 s (ConnectTimeout)"),
        (httpx.ConnectError(f"cannot reach {SECRET_URL}"), "could not connect (ConnectError)"),
    ],
    ids=["refused", "dns", "tls", "read-timeout", "connect-timeout", "no-os-reason"],
)
def test_a_transport_failure_says_what_happened_without_the_url(failure: Exception, said: str, event: Any) -> None:
    """What a dead letter and `events show` carry: refused, DNS, TLS, a timeout and after how long."""

    def respond(request: httpx.Request) -> httpx.Response:
        raise failure

    client = httpx.Client(transport=httpx.MockTransport(respond), timeout=httpx.Timeout(7, connect=2))
    with pytest.raises(DeliveryRetryable) as info:
        make("slack").send(event, delivery_id="d", http=client)
    assert info.value.body_excerpt == said.strip()
    assert "sEcReTtOkEn123" not in str(info.value) + info.value.body_excerpt


@pytest.mark.parametrize("kind", [*POSTING, "python", "log"])
def test_every_handler_sends_an_alert_through_its_ordinary_send(kind: str, http: Any, requests: list) -> None:
    callables.calls.clear()
    with capture_logs() as logs:
        make(kind).send(alert_event(), delivery_id="alert-1:h", http=http())
    shown = [r.content.decode() for r in requests] + [json.dumps(call[0]) for call in callables.calls]
    shown += [json.dumps(line) for line in logs if line["event"] == "notification_logged"]
    (sent,) = [text.replace("\\", "") for text in shown]  # the platform's markdown escapes aside
    assert "2 deliveries dead" in sent and "retry_budget_exhausted" in sent
    assert "dead-letters list" in sent or kind == "pagerduty"  # PagerDuty: the text is in custom_details
