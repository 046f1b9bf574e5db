"""Settings from the environment: lists split on ',' only, ranges checked, secrets never echoed."""

from __future__ import annotations

import pytest

from config.errors import ConfigurationError
from config.settings import VARIABLES, Settings

PAD = "-0123456789abcdef"  # every secret at least MIN_WEBHOOK_SECRET_CHARS long


@pytest.mark.parametrize(
    "raw, secrets",
    [
        ("s3#Xq9vLongRandomSecretValue,new-rotated" + PAD, ["s3#Xq9vLongRandomSecretValue", "new-rotated" + PAD]),
        ("back\\slash\\" + PAD + ",x" + PAD, ["back\\slash\\" + PAD, "x" + PAD]),
        ('"double" quoted' + PAD + ",'single' quoted" + PAD, ['"double" quoted' + PAD, "'single' quoted" + PAD]),
        ("a=b==" + PAD + ",key=value" + PAD, ["a=b==" + PAD, "key=value" + PAD]),
        ("  with inner spaces  , tab\tinside " + PAD, ["with inner spaces", "tab\tinside " + PAD]),
        ("$HOME;rm -rf /" + PAD + ",`x`" + PAD, ["$HOME;rm -rf /" + PAD, "`x`" + PAD]),
        ("only-one" + PAD, ["only-one" + PAD]),
    ],
)
def test_webhook_secrets_split_on_commas_only_and_keep_every_other_character(raw: str, secrets: list[str]) -> None:
    settings = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": raw})
    assert [str(s) for s in settings.webhook_secrets] == secrets


@pytest.mark.parametrize("raw", ["ci", "s3cr3t-value-15", "long-enough-secret-one,ci"])
def test_a_webhook_secret_shorter_than_16_characters_is_refused_without_showing_it(raw: str) -> None:
    """The log redaction of `ci` printed `[redacted]rcle[redacted]-signature` (issue 23 item 6)."""
    refused = r"CIRCLECI_WEBHOOK_SECRETS: secret \d of \d has \d+ characters"
    with pytest.raises(ConfigurationError, match=refused) as info:
        Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": raw})
    assert raw.split(",")[-1] not in info.value.message and "openssl rand" in info.value.message


@pytest.mark.parametrize("raw", ["s3cr3t,,b", "s3cr3t,", ",s3cr3t", "s3cr3t, ,b"])
def test_an_empty_secret_entry_is_an_error_not_dropped(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"CIRCLECI_WEBHOOK_SECRETS: entry .* is empty") as info:
        Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": raw})
    assert "s3cr3t" not in info.value.message


def test_unset_or_blank_secrets_mean_none_configured() -> None:
    assert Settings.from_environ({}).webhook_secrets == ()
    assert Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": "  "}).webhook_secrets == ()


@pytest.mark.parametrize(
    "env",
    [
        {"CIRCLECI_WEBHOOK_SECRETS": "s3cr3t-value,,x"},
        {"CIRCLE_TOKEN": "CCIPAT_s3cr3t-value", "CIRCLECI_API_URL": "http://example.com/api/v2"},
        {"ADMIN_TOKEN": "s3cr3t-value", "PORT": "0"},
        {"REDIS_URL": "redis://:s3cr3t-value@127.0.0.1:6379/0", "DEDUPE_TTL_SECONDS": "0"},
    ],
)
def test_configuration_errors_never_show_a_secret(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ(env)
    assert "s3cr3t-value" not in info.value.message


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("DEDUPE_TTL_SECONDS", "0", "DEDUPE_TTL_SECONDS must be between 3600 and 31536000, got 0"),
        ("PORT", "70000", "PORT must be between 1 and 65535, got 70000"),
        ("PORT", "0", "PORT must be between 1 and 65535, got 0"),
        ("WORKER_CONCURRENCY", "0", "WORKER_CONCURRENCY must be positive, got 0"),
        ("MAX_BODY_BYTES", "-5", "MAX_BODY_BYTES must be between 1 and 67108864, got -5"),
        ("RATE_LIMIT_PER_SECOND", "nan", "RATE_LIMIT_PER_SECOND must be a finite number, got 'nan'"),
        ("RATE_LIMIT_BURST", "ten", "RATE_LIMIT_BURST must be a whole number, got 'ten'"),
        ("DELIVERY_TIMEOUT_SECONDS", "0", "DELIVERY_TIMEOUT_SECONDS must be between 0.1 and 300, got 0"),
        ("WEB_MAX_HEADER_BYTES", "100", "WEB_MAX_HEADER_BYTES must be between 1024 and 1048576, got 100"),
        ("WEB_HEADER_TIMEOUT_SECONDS", "0", "WEB_HEADER_TIMEOUT_SECONDS must be between 0.1 and 300, got 0"),
        ("WEB_BODY_TIMEOUT_SECONDS", "301", "WEB_BODY_TIMEOUT_SECONDS must be between 0.1 and 300, got 301"),
        ("WEB_MAX_CONNECTIONS", "0", "WEB_MAX_CONNECTIONS must be between 1 and 1000000, got 0"),
        ("ENRICH_SUCCESSFUL_JOBS", "maybe", "ENRICH_SUCCESSFUL_JOBS must be true or false"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
    ],
)
def test_every_numeric_setting_has_a_range_named_in_one_line(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ({name: value})
    assert info.value.message.startswith(message)
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"ENRICHED_EVENT_TTL_SECONDS": "600", "DELIVERY_RETRY_BUDGET_SECONDS": "3600"},
            "ENRICHED_EVENT_TTL_SECONDS (600) must be at least DELIVERY_RETRY_BUDGET_SECONDS (3600)",
        ),
        (
            {"DELIVERY_BACKOFF_BASE_SECONDS": "60", "DELIVERY_BACKOFF_MAX_SECONDS": "10"},
            "DELIVERY_BACKOFF_BASE_SECONDS (60) must not exceed DELIVERY_BACKOFF_MAX_SECONDS (10)",
        ),
        (
            {"EVENT_JOB_TIMEOUT_SECONDS": "5", "DELIVERY_TIMEOUT_SECONDS": "10"},
            "EVENT_JOB_TIMEOUT_SECONDS (5) must be at least DELIVERY_TIMEOUT_SECONDS (10)",
        ),
    ],
)
def test_related_settings_must_agree(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ(env)
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    "raw, proxies",
    [
        ("10.0.0.5", ("10.0.0.5",)),
        ("10.0.0.5, 10.1.0.0/16 ,::1", ("10.0.0.5", "10.1.0.0/16", "::1")),
        ("", ()),
    ],
)
def test_trusted_proxies_are_explicit_addresses_or_networks(raw: str, proxies: tuple[str, ...]) -> None:
    assert Settings.from_environ({"TRUSTED_PROXIES": raw}).trusted_proxies == proxies


@pytest.mark.parametrize("raw", ["*", "10.0.0.5,*", "proxy.internal", "10.0.0.5#comment", "10.0.0.5,,10.0.0.6"])
def test_trusted_proxies_refuse_wildcards_names_and_empty_entries(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
        Settings.from_environ({"TRUSTED_PROXIES": raw})


@pytest.mark.parametrize(
    "raw, hosts",
    [
        ("artifacts.example.com", ("artifacts.example.com",)),
        (" *.Example.COM , files.internal ", ("*.example.com", "files.internal")),
        ("", ()),
    ],
)
def test_artifact_hosts_are_host_names_or_subdomain_wildcards(raw: str, hosts: tuple[str, ...]) -> None:
    assert Settings.from_environ({"CIRCLECI_ARTIFACT_HOSTS": raw}).artifact_hosts == hosts


@pytest.mark.parametrize(
    "raw", ["*", "a/b", "circleci.com,,x.com", "circleci.com,", "*.", "*.com", "host:443", "a*.b.com"]
)
def test_artifact_hosts_refuse_wildcards_paths_ports_and_empty_entries(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^CIRCLECI_ARTIFACT_HOSTS: "):
        Settings.from_environ({"CIRCLECI_ARTIFACT_HOSTS": raw})


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://circleci.com/api/v2", True),
        ("https://circleci.internal.example/api/v2", True),
        ("http://127.0.0.1:8765/api/v2", True),
        ("http://localhost:8765/api/v2", True),
        ("http://[::1]:8765/api/v2", True),
        ("http://circleci.com/api/v2", False),
        ("http://10.0.0.7/api/v2", False),
        ("ftp://circleci.com/api/v2", False),
        ("https:///api/v2", False),
    ],
)
def test_the_api_url_is_https_unless_it_is_loopback(url: str, ok: bool) -> None:
    if ok:
        assert Settings.from_environ({"CIRCLECI_API_URL": url}).circleci_api_url == url
    else:
        with pytest.raises(ConfigurationError, match="CIRCLECI_API_URL"):
            Settings.from_environ({"CIRCLECI_API_URL": url})


def test_secret_values_lists_every_configured_secret() -> None:
    settings = Settings.from_environ(
        {
            "CIRCLECI_WEBHOOK_SECRETS": "one-0123456789abcdef,two-0123456789abcdef",
            "CIRCLE_TOKEN": "tok",
            "ADMIN_TOKEN": "adm" * 11,
            "REDIS_URL": "redis://user:pw@127.0.0.1:6379/0",
        }
    )
    webhook = ["one-0123456789abcdef", "two-0123456789abcdef"]
    assert sorted(settings.secret_values()) == sorted([*webhook, "tok", "adm" * 11, "pw"])


def test_every_variable_is_documented_in_the_configuration_page() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    missing = [v.name for v in VARIABLES if f"`{v.name}`" not in page]
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_the_admin_token_must_be_long_enough_to_guard_replays() -> None:
    with pytest.raises(ConfigurationError, match="ADMIN_TOKEN must be at least 32 characters") as info:
        Settings.from_environ({"ADMIN_TOKEN": "short-admin-token"})
    assert "short-admin-token" not in info.value.message
    assert Settings.from_environ({"ADMIN_TOKEN": "x" * 32}).admin_token is not None


@pytest.mark.parametrize(
    ("api_url", "v1_url"),
    [
        ("https://circleci.com/api/v2", "https://circleci.com/api/v1.1"),
        ("https://circleci.example.corp/api/v2/", "https://circleci.example.corp/api/v1.1"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/api/v1.1"),
        ("http://127.0.0.1:8765/api/v2", "http://127.0.0.1:8765/api/v1.1"),
    ],
)
def test_the_v1_1_origin_derives_from_circleci_api_url(api_url: str, v1_url: str) -> None:
    assert Settings.from_environ({"CIRCLECI_API_URL": api_url}).circleci_v1_url == v1_url


def test_log_tail_settings_are_read_and_checked() -> None:
    settings = Settings.from_environ({"LOG_TAIL": "off", "LOG_TAIL_LINES": "5", "LOG_TAIL_CHARS": "800"})
    assert (settings.log_tail, settings.log_tail_lines, settings.log_tail_chars) == (False, 5, 800)
    assert Settings().log_tail and Settings().log_tail_seconds == 5.0 and Settings().flaky_tests_ttl_seconds == 3600
    with pytest.raises(ConfigurationError, match="LOG_TAIL_LINES must be between 1 and 500"):
        Settings.from_environ({"LOG_TAIL_LINES": "0"})
