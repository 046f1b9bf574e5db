"""API paths built from payload and API data: every value one percent-encoded path segment.

Ids, names and slugs come from webhook payloads and API answers; formatted raw into a path,
`../../x` walks it and `a/b` adds a segment (issue 11, finding 12). `api_path` fills a template:

    api_path("/workflow/{workflow_id}/job", workflow_id=wid)      -> "/workflow/<wid, quoted>/job"
    api_path("/project/{slug}/envvar/{name}", slug=s, name=n)     -> each part of the slug quoted

A value (each of the three `/`-separated parts of a value named `slug`, whose `/` stay
separators) must be a
string or an int, not empty, not `.` or `..`, with no control character; anything else is kept
and encoded with `quote(value, safe="")`: `a/b` is `a%2Fb`, `%2e` is `%252e`, `é` is `%C3%A9`.
A refused value raises CircleCIPathInvalid before any request is made.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from config.errors import CircleCIPathInvalid

__all__ = ["api_path"]

_SHOWN = 40  # characters of a refused value a message shows
SLUG_PARTS = 3  # gh/org/repo, bb/workspace/repo, circleci/<org id>/<project id>


def api_path(template: str, /, **values: object) -> str:
    """`template` with each `{name}` replaced by its value as one encoded segment (a slug: several)."""
    return template.format(**{name: _encode(template, name, value) for name, value in values.items()})


def _encode(template: str, name: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _refused(template, name, value, f"must be a string, got {type(value).__name__}")
    if name != "slug":
        return _segment(template, name, value, value)
    parts = value.split("/")
    if len(parts) != SLUG_PARTS:
        raise _refused(template, name, value, f"a project slug is {SLUG_PARTS} segments, vcs/org/project")
    return "/".join(_segment(template, name, value, part) for part in parts)


def _segment(template: str, name: str, value: str, part: str) -> str:
    if part in ("", ".", ".."):
        what = "an empty segment" if not part else f"a {part!r} segment"
        raise _refused(template, name, value, f"{what} is not allowed")
    for char in part:
        if unicodedata.category(char) in ("Cc", "Cs"):  # controls (CR, LF, NUL, DEL…); lone surrogates
            raise _refused(template, name, value, f"it holds the control character {char!r}")
    return quote(part, safe="")


def _refused(template: str, name: str, value: object, why: str) -> CircleCIPathInvalid:
    shown = f" {value[:_SHOWN]!r}{'…' if len(value) > _SHOWN else ''}" if isinstance(value, str) else ""
    return CircleCIPathInvalid(
        f"{name}{shown} cannot go into {template}: {why}",
        path=template,
        details={"argument": name},
    )
