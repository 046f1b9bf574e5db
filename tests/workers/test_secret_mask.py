"""Masking what looks like a secret in job output."""

from __future__ import annotations

import pytest

from workers.secret_mask import MASK, SecretMask

pytestmark = pytest.mark.unit

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("export GITHUB_TOKEN=ghp_" + "A1b2" * 9, "ghp_" + "A1b2" * 9),
        ("token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABCDEFG0123456789_abcdef"),
        ("slack xoxb-123456789012-123456789012-AbCdEfGhIjKlMnOp", "xoxb-123456789012"),
        ("POST https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX", "T0000/B0000"),
        ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG"),
        ("CI_JOB_TOKEN glpat-abcdefghij0123456789", "glpat-abcdefghij0123456789"),
        ("//registry.npmjs.org/:_authToken=npm_" + "a1B2c3" * 6, "npm_" + "a1B2c3" * 6),
        ("password: pypi-AgEIcHlwaS5vcmc" + "x" * 60, "pypi-AgEIcHlwaS5vcmc"),
        ("Authorization: Bearer " + JWT, JWT),
        ("git clone https://ada:hunter2@github.com/org/repo", "hunter2"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (cut off here)", "b3BlbnNzaC1rZXk"),
        ("MIIEow (the start was cut)\n-----END RSA PRIVATE KEY-----", "MIIEow"),
    ],
)
def test_each_kind_of_secret_is_masked(line: str, secret: str) -> None:
    masked = SecretMask().mask(line)
    assert secret not in masked and MASK in masked


def test_a_url_keeps_its_user_and_host() -> None:
    assert SecretMask().mask("https://ada:pw@example.com/x") == f"https://ada:{MASK}@example.com/x"


def test_ordinary_output_is_left_alone() -> None:
    text = "make: *** [Makefile:12: build] Error 1\nhttps://example.com/a?page=2 ok\nsha 4f2e7b1c0a9d"
    assert SecretMask().mask(text) == text


def test_a_redact_pattern_masks_its_group_or_its_match() -> None:
    mask = SecretMask([r"INTERNAL_KEY=(\S+)", r"corp-[0-9]{6}"])
    assert mask.mask("INTERNAL_KEY=abc123 id corp-123456") == f"INTERNAL_KEY={MASK} id {MASK}"
