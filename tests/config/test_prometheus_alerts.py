"""config/prometheus-alerts.yaml: the shape Prometheus loads, and every metric, label and label value
it names is one the web or a worker exports, so the rules cannot drift from the code.

With `promtool` on PATH (Debian's `prometheus` package ships it) the rules are also checked by it
and unit-tested against series; without it that test is skipped and the structural ones stand.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import config
from config.errors import CircleCIAPIError
from service.metrics import WebMetrics
from workers.metrics import ALERT_OUTCOMES, ENRICHMENT_OUTCOMES, OUTCOMES, DeliveryMetrics

ROOT = Path(__file__).parents[2]
RULES_FILE = Path(config.__file__).parent / "prometheus-alerts.yaml"
SELECTOR = re.compile(r"\b(circleci_events_[a-z0-9_]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created")}


def _api_error_codes(cls: type[CircleCIAPIError] = CircleCIAPIError) -> Iterator[str]:
    for sub in cls.__subclasses__():
        yield sub.code
        yield from _api_error_codes(sub)


# The values a rule may match per (series, label): what the code counts.
KNOWN_VALUES = {
    ("circleci_events_deliveries_total", "outcome"): set(OUTCOMES),
    ("circleci_events_enrichments_total", "outcome"): {*ENRICHMENT_OUTCOMES, *_api_error_codes()},
    ("circleci_events_alerts_total", "outcome"): set(ALERT_OUTCOMES),
}


def exported() -> dict[str, tuple[str, ...]]:
    """Every series the web's and the workers' /metrics can show, with its label names."""
    series: dict[str, tuple[str, ...]] = {}
    for owner in (WebMetrics(), DeliveryMetrics()):
        for metric in vars(owner).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            (family,) = metric.describe()
            labels = tuple(metric._labelnames)  # prometheus_client keeps a metric's label names only here
            for suffix in SUFFIXES[family.type]:
                series[family.name + suffix] = labels + (("le",) if suffix == "_bucket" else ())
    return series


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_file_has_the_shape_prometheus_loads() -> None:
    document = yaml.safe_load(RULES_FILE.read_text())
    assert set(document) == {"groups"}
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["name"] and group["rules"]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in rules():
        assert set(rule) <= RULE_KEYS and {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert re.fullmatch(r"CircleCIEvents[A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
        assert "for" not in rule or DURATION.fullmatch(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_metric_label_and_value_a_rule_names_is_exported(rule: dict[str, Any]) -> None:
    series = exported()
    named = SELECTOR.findall(rule["expr"])
    assert named, "a rule watches at least one of our metrics"
    for name, matchers in named:
        assert name in series, f"{rule['alert']}: {name} is not exported (exported: {', '.join(sorted(series))})"
        for label, operator, value in MATCHER.findall(matchers):
            assert label in series[name], f"{rule['alert']}: {name} has no label {label!r}"
            known = KNOWN_VALUES.get((name, label))
            assert known is not None, f"{rule['alert']}: add the values of {name}{{{label}}} to KNOWN_VALUES"
            values = value.split("|") if "~" in operator else [value]
            assert set(values) <= known, f"{rule['alert']}: {name}{{{label}}} is never {set(values) - known}"
    labels = {label for name, _ in named for label in series[name]}
    for grouping in GROUPING.findall(rule["expr"]):
        assert {g.strip() for g in grouping.split(",")} <= labels, f"{rule['alert']}: grouping by {grouping}"


def test_the_operations_page_points_to_the_rules() -> None:
    assert "config/prometheus-alerts.yaml" in (ROOT / "docs" / "operations.md").read_text()


PROMTOOL_TESTS = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'circleci_events_dead_letters_total{{reason="rejected"}}'
        values: '0 0 1 1 1'
      - series: 'circleci_events_enrichments_total{{outcome="circleci_unauthorized"}}'
        values: '0 2 4 6 8'
      - series: 'circleci_events_enrichments_total{{outcome="complete"}}'
        values: '0 0 0 0 0'
      - series: 'circleci_events_queue_depth{{queue="events"}}'
        values: '500x20'
    alert_rule_test:
      - eval_time: 4m
        alertname: CircleCIEventsDeadLetters
        exp_alerts:
          - exp_labels: {{severity: warning, reason: rejected}}
      - eval_time: 4m
        alertname: CircleCIEventsTokenRefused
        exp_alerts:
          - exp_labels: {{severity: critical}}
      - eval_time: 5m
        alertname: CircleCIEventsQueueBacklog
        exp_alerts: []
      - eval_time: 15m
        alertname: CircleCIEventsQueueBacklog
        exp_alerts:
          - exp_labels: {{severity: warning, queue: events}}
"""


def test_promtool_checks_the_rules_and_they_fire_on_the_series_they_watch(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); the structural tests stand")
    checked = subprocess.run([promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool compares annotations too: the expressions and labels are what is tested here
    bare = yaml.safe_load(RULES_FILE.read_text())
    for rule in (rule for group in bare["groups"] for rule in group["rules"]):
        del rule["annotations"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    tests = tmp_path / "rules-test.yaml"
    tests.write_text(PROMTOOL_TESTS.format(rules=tmp_path / "rules.yaml"))
    tested = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
