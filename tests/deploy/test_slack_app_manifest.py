"""deploy/slack-app-manifest.yaml: a Slack app manifest asking for exactly the scopes `slack_app` uses."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.simulators.slack_workspace import SCOPES as SIMULATED_SCOPES
from workers.handlers.slack_api import SCOPES

MANIFEST = Path(__file__).parents[2] / "deploy" / "slack-app-manifest.yaml"


def test_the_manifest_asks_for_the_bot_scopes_the_handler_calls_need_and_no_more() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    bot = manifest["oauth_config"]["scopes"]["bot"]
    assert len(bot) == len(set(bot))
    assert set(bot) == set(SCOPES.values()) == set(SIMULATED_SCOPES)
    assert "user" not in manifest["oauth_config"]["scopes"]  # a bot token only


def test_the_manifest_has_what_slack_requires_of_a_bot_app() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["_metadata"]["major_version"] == 1
    assert 1 <= len(manifest["display_information"]["name"]) <= 35
    assert 1 <= len(manifest["features"]["bot_user"]["display_name"]) <= 80
    assert manifest["settings"]["socket_mode_enabled"] is False  # the handler only calls the Web API
