"""Masking what looks like a secret in job output, before anything stores or sends it.

CircleCI masks the project's environment variables in its own output; a log still shows tokens
a step printed from elsewhere (a file, a command's answer, a URL with its password). Each match
becomes `[masked]`:

    GitHub        ghp_/gho_/ghu_/ghs_/ghr_ tokens, github_pat_ fine-grained tokens
    Slack         xoxb-/xoxp-/xoxa-/xoxr-/xoxs-/xoxe- tokens, hooks.slack.com/services/… URLs
    AWS           AKIA/ASIA access key ids; a secret access key after `aws_secret_access_key`
    GitLab        glpat-, gldt-, glrt- tokens
    npm, PyPI     npm_ tokens, pypi-AgE… upload tokens
    JWT           eyJ….eyJ….… (three base64url parts)
    private keys  -----BEGIN … PRIVATE KEY----- to its END line (or the end of the text), and
                  from the text's start to an END line with no BEGIN before it: a tail may hold
                  only one end of a block
    URLs          the password of `scheme://user:password@host`
    the routes file's `redact:` regular expressions: their first group when they have one
                  (`token=(\\S+)` masks the value, not the name), else the whole match

A `redact:` pattern is checked when the routes file is read (workers/routes_file.py); here it is
compiled as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["BUILT_IN", "MASK", "SecretMask"]

MASK = "[masked]"
BUILT_IN: tuple[tuple[str, str], ...] = (
    (
        "private key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
    ),
    # the end of a block whose start was cut off (a tail read from the middle of the output)
    ("private key end", r"\A.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
    ("github", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{30,255})"),
    ("slack token", r"\bxox[abeprs]-[A-Za-z0-9-]{10,250}"),
    ("slack webhook", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"),
    ("aws key id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ("aws secret", r"(?i)(?<=aws_secret_access_key)(?:[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9/+=]{40})"),
    ("gitlab", r"\bgl(?:pat|dt|rt|ptt|ft|soat)-[A-Za-z0-9_-]{20,}"),
    ("npm", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi", r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("url password", r"(?<=://)[^\s:/@]+:([^\s/@]+)(?=@)"),
)


class SecretMask:
    """The built-in patterns and the routes file's `redact:` ones, applied in one pass each."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = tuple(extra)
        self._patterns = [re.compile(p, re.DOTALL) for _, p in BUILT_IN] + [re.compile(p) for p in self.extra]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(extra={len(self.extra)})"

    def mask(self, text: str) -> str:
        """`text` with every match masked: a pattern's first group when it has one, else the match."""
        for pattern in self._patterns:
            text = pattern.sub(_masked, text)
        return text


def _masked(match: re.Match[str]) -> str:
    if match.re.groups and match.group(1) is not None:
        start, end = match.span(1)
        whole = match.group(0)
        offset = match.start(0)
        return whole[: start - offset] + MASK + whole[end - offset :]
    return MASK
