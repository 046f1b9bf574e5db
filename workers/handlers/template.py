"""Handler templates: Jinja2 in a sandbox, and every printed value escaped for the platform.

The routes file's owner writes the template; the values it prints (a commit subject, a branch
name) are written by anyone who can push. So the template's own text is trusted and its values
are not (issue 11 finding 8):

    in the template                             reaches the platform
    text: `<!here> build broke`                 as written
    {{ value }}                                 escaped with the handler's `escape`; null prints nothing
    {{ "<!here>" }}                             escaped too: a string inside `{{ }}` is a value
    {{ value|esc }} (also |e, |escape)          escaped once, not again when printed
    {{ mention("U0123ABCD") }}                  the platform's mention (below); a literal that is not
                                                an id (letters, digits, `_`, `-`) is a load-time error
    {{ mention(value) }}                        the value as escaped text, whatever it holds: only a
                                                literal the template writes pings (issue 23 item 1)
    {{ value|safe }}                            as written: the routes file vouches for it
    {{ mention(..) + value }}, %, .format()     trusted text stays trusted, `value` is escaped
    {{ a ~ b }}, |join, |striptags, …           plain text, escaped when printed (a mention in it too)
    {% set x %}…{% endset %}, a macro's output  escaped when written inside, so escaped again when
                                                printed: print it with `|safe`
    {% filter %}, {% call %}, {% set x | f %}   refused at load time: Jinja writes what they return
                                                without `finalize`, and a filter could undo escaping

Mentions: Slack `<@U…>`, `<!subteam^S…>` for a user group id, `<!here>`, `<!channel>`,
`<!everyone>`; Discord `<@id>`; Teams plain text `@id` for now (a real Teams mention needs an
`msteams.entities` entry in the card); log `@id`.

Mentions come from configuration, never from commit data: at load time each `mention("…")`
whose argument is a literal is rewritten to call the hidden `__mention_literal`; every other
call (a value, a variable, `*args`, `mention` passed around) reaches the `mention` global,
which returns its argument as text, escaped when printed. A commit author named `channel` or a
value starting with `S` prints as a name. A template naming `__mention_literal` is refused.

How: Jinja2's `finalize` hook gets every `{{ … }}` result before it is written (template text
never goes through it). It passes `Trusted` text (a markupsafe.Markup whose `escape` is the
platform's) and escapes everything else. Only `|safe`, `|esc` and `mention()` make Trusted
text. CircleCI values arrive as JSON (strings, numbers, lists, dicts), so none can mark itself
trusted: `|safe` on one is the routes file's explicit choice. Jinja's own Markup (`|tojson`)
is not Trusted and is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Self

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from config.errors import ConfigurationError
from workers.message import Message, sample_events

MENTION_ID = re.compile(r"[A-Za-z0-9_-]+")
# the global a literal `mention("…")` is rewritten to call; a template may not name it
LITERAL_MENTION = "__mention_literal"
UNDEFINED_HINT = "; guard a value that may be null or missing with {% if … %} or `| default('')`"
REFUSED_BLOCKS = {nodes.FilterBlock: "{% filter %}", nodes.CallBlock: "{% call %}"}


class Trusted(Markup):
    """Text a template vouches for. `escape`, which Markup's `+`, `%`, `format`, `join` and
    `replace` apply to their other operands, is the platform's (`platform_escape`)."""

    __slots__ = ()

    @staticmethod
    def platform_escape(text: str) -> str:
        return text

    @classmethod
    def escape(cls, s: Any, /) -> Self:
        if isinstance(s, cls):
            return s
        return cls(cls.platform_escape("" if s is None else str(s)))

    def translate(self, table: Any, /) -> Self:
        """Escaped as a whole: a table can map a character to any value."""
        return self.escape(str(self).translate(table))


def trusted_type(escape: Callable[[str], str]) -> type[Trusted]:
    """The Trusted text of one platform."""

    class PlatformTrusted(Trusted):
        __slots__ = ()

        @staticmethod
        def platform_escape(text: str) -> str:
            return escape(text)

    return PlatformTrusted


def compile_template(
    name: str, source: str | None, *, escape: Callable[[str], str], mention: Callable[[str], str]
) -> jinja2.Template | None:
    """Compile a handler's template in a sandbox and render it against every sample event.

    Undefined is strict: `{{ event.nope }}` or `{{ event.job.name }}` (job is null in workflow
    events) fails here, at load time, instead of printing nothing for months."""
    if source is None:
        return None
    trusted = trusted_type(escape)

    def literal_mention(value: str) -> str:
        return trusted(mention(value))

    def value_mention(*args: Any, **kwargs: Any) -> str:
        value = next(iter([*args, *kwargs.values()]), None)
        return "" if value is None else str(value)

    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined, finalize=trusted.escape)
    env.filters.update(
        esc=trusted.escape,
        e=trusted.escape,
        escape=trusted.escape,
        forceescape=lambda value: trusted.escape(str(value)),
        safe=lambda value: trusted("" if value is None else value),
    )
    env.globals.update({"mention": value_mention, LITERAL_MENTION: literal_mention})
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigurationError(
            f"handler {name!r}, key 'template': does not compile (template line {exc.lineno}: {exc.message})"
        ) from None
    _refuse_unescaped_output(name, tree)
    _bind_literal_mentions(tree)
    template = env.from_string(tree)
    for label, event in sample_events():
        try:
            template.render(event=event, message=Message.from_event(event))
        except Exception as exc:
            hint = UNDEFINED_HINT if isinstance(exc, jinja2.UndefinedError) else ""
            failure = f"{label}: {type(exc).__name__}: {exc}"
            raise ConfigurationError(
                f"handler {name!r}, key 'template': fails on the sample event ({failure}){hint}"
            ) from None
    return template


def _refuse_unescaped_output(name: str, tree: nodes.Template) -> None:
    """Blocks whose output skips `finalize`, and literal mentions of something that is not an id."""
    where = f"handler {name!r}, key 'template'"
    for node in tree.find_all((nodes.FilterBlock, nodes.CallBlock, nodes.AssignBlock)):
        if isinstance(node, nodes.AssignBlock) and node.filter is None:
            continue
        block = REFUSED_BLOCKS.get(type(node), "{% set … | filter %}")
        raise ConfigurationError(
            f"{where}: {block} blocks are not allowed (template line {node.lineno}: their output would not be"
            " escaped; apply the filter to a value, as in {{ value | upper }})"
        )
    for used in tree.find_all(nodes.Name):
        if used.name == LITERAL_MENTION:
            raise ConfigurationError(f"{where}: {LITERAL_MENTION} is not a name templates may use; write mention('…')")
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "mention"):
            continue
        for arg in [*call.args, *(k.value for k in call.kwargs)]:
            if isinstance(arg, nodes.Const) and not MENTION_ID.fullmatch(str(arg.value)):
                raise ConfigurationError(
                    f"{where}: mention({arg.value!r}) is not an id (template line {call.lineno}:"
                    " letters, digits, '_' and '-' only)"
                )


def _bind_literal_mentions(tree: nodes.Template) -> None:
    """`mention("U1")`, its one argument a literal (checked to be an id), calls the mention that
    pings; any other call keeps the `mention` that prints its argument as text."""
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "mention"):
            continue
        args = [*call.args, *(k.value for k in call.kwargs)]
        if len(args) == 1 and isinstance(args[0], nodes.Const) and call.dyn_args is None and call.dyn_kwargs is None:
            call.node = nodes.Name(LITERAL_MENTION, "load", lineno=call.lineno)
            call.args, call.kwargs = [args[0]], []
