"""Which of the shipped Prometheus alert rules (config/prometheus-alerts.yaml) would fire now, told
from the numbers the product itself counts: the console's overview shows them.

This is not PromQL. It reads the few forms the shipped rules use, and says so of any other:

    rule    := side ["/" side] (">" | ">=" | "<" | "<=") number
    side    := ("sum" | "max") ["by" "(" labels ")"] "(" inner ")"
    inner   := ("increase" | "rate") "(" series [matchers] "[" window "]" ")"   a counter
             | series [matchers]                                               a gauge

A counter's increase over the window comes from workers/metric_window.py (counted where the
Prometheus counter is counted, summed over every process as `sum` does); a gauge's value is read
now (the queue depths, as GET /metrics reads them). The threshold, window, matchers and grouping
are taken from the file, so changing a rule changes what the console shows; a rule of another
form, naming a series the console cannot read, or with a window longer than the counts are kept,
is shown as `not_evaluated` with the reason (tests/workers/test_alert_rules.py requires every
shipped rule to be evaluated).

States: `firing` (the condition holds; the rule has no `for:`), `pending` (it holds, and
Prometheus fires once it has held for the rule's `for:`; how long it has held is not kept here),
`inactive`, `not_evaluated`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import yaml

import config
from workers import metric_window
from workers.metric_window import Labels

RULES_FILE = Path(config.__file__).parent / "prometheus-alerts.yaml"
SIDE = re.compile(
    r"(?P<agg>sum|max)\s*(?:by\s*\((?P<by>[^)]*)\)\s*)?\(\s*"
    r"(?:(?P<func>increase|rate)\s*\(\s*)?(?P<series>[a-z_][a-z0-9_]*)\s*(?:\{(?P<matchers>[^}]*)\})?\s*"
    r"(?:\[(?P<window>[0-9a-z]+)\]\s*\))?\s*\)"
)
COMPARISON = re.compile(r"(?P<sides>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<threshold>[0-9]+(?:\.[0-9]+)?)")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^",]*)"\s*')
DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip
MATCH: dict[str, Callable[[str, str], bool]] = {
    "=": lambda have, want: have == want,
    "!=": lambda have, want: have != want,
    "=~": lambda have, want: re.fullmatch(want, have) is not None,
    "!~": lambda have, want: re.fullmatch(want, have) is None,
}
TEMPLATE = re.compile(r"\{\{\s*\$(labels\.([a-z_]+)|value)\s*(?:\|\s*humanize\s*)?\}\}")


class Numbers(Protocol):
    """What the rules are evaluated on."""

    def increase(self, series: str, seconds: float) -> dict[Labels, float]: ...
    def current(self, series: str) -> dict[Labels, float]: ...


class NotEvaluated(Exception):
    """A rule the console cannot evaluate; the message says why."""


@dataclass(frozen=True)
class Side:
    aggregate: str
    by: tuple[str, ...]
    series: str
    matchers: tuple[tuple[str, str, str], ...]
    function: str | None
    seconds: float | None

    def values(self, numbers: Numbers) -> dict[Labels, float]:
        """The aggregated vector: one value per group of the `by` labels."""
        if self.function is None:
            samples = numbers.current(self.series)
        else:
            assert self.seconds is not None
            samples = numbers.increase(self.series, self.seconds)
            if self.function == "rate":
                samples = {labels: value / self.seconds for labels, value in samples.items()}
        groups: dict[Labels, float] = {}
        for labels, value in samples.items():
            have = dict(labels)
            if not all(MATCH[op](have.get(name, ""), want) for name, op, want in self.matchers):
                continue
            group = tuple((name, have.get(name, "")) for name in self.by)
            before = groups.get(group)
            if before is not None:
                value = before + value if self.aggregate == "sum" else max(before, value)
            groups[group] = value
        return groups


@dataclass(frozen=True)
class Rule:
    """One alerting rule of the file, as the console evaluates it."""

    name: str
    severity: str
    summary: str
    expr: str
    hold: str | None
    sides: tuple[Side, ...] = ()
    compare: str = ">"
    threshold: float = 0.0
    problem: str | None = None

    def evaluate(self, numbers: Numbers) -> dict[str, Any]:
        """`state`, and the groups (`labels`, `value`, `summary`) for which the condition holds."""
        shown = {"alert": self.name, "severity": self.severity, "expr": self.expr, "for": self.hold}
        if self.problem is not None:
            return shown | {"state": "not_evaluated", "problem": self.problem, "instances": []}
        try:
            vectors = [side.values(numbers) for side in self.sides]
        except NotEvaluated as exc:
            return shown | {"state": "not_evaluated", "problem": str(exc), "instances": []}
        result = vectors[0]
        if len(vectors) == 2:  # a ratio: groups on both sides; x/0 is no value (NaN or Inf), never an alert
            result = {g: v / vectors[1][g] for g, v in result.items() if vectors[1].get(g)}
        holding = [
            {"labels": dict(group), "value": value, "summary": self.summarised(dict(group), value)}
            for group, value in sorted(result.items())
            if COMPARE[self.compare](value, self.threshold)
        ]
        state = ("pending" if self.hold else "firing") if holding else "inactive"
        return shown | {"state": state, "problem": None, "instances": holding}

    def summarised(self, labels: Mapping[str, str], value: float) -> str:
        def fill(found: re.Match[str]) -> str:
            return f"{value:g}" if found.group(1) == "value" else labels.get(found.group(2), "")

        return TEMPLATE.sub(fill, self.summary)


def seconds_of(duration: str) -> float:
    parts = DURATION.findall(duration)
    if not parts or "".join(n + unit for n, unit in parts) != duration:
        raise NotEvaluated(f"{duration!r} is not a Prometheus duration")
    return sum(int(n) * UNIT_SECONDS[unit] for n, unit in parts)


def side_of(text: str) -> Side:
    found = SIDE.fullmatch(text.strip())
    if found is None:
        raise NotEvaluated(f"{text.strip()!r} is not sum/max [by (...)] (increase|rate(series[window])) or (gauge)")
    function, window = found["func"], found["window"]  # the pattern has both or neither
    matchers = [MATCHER.fullmatch(m) for m in (found["matchers"] or "").split(",") if m.strip()]
    if not all(matchers):
        raise NotEvaluated(f'{found["matchers"]!r}: label matchers are name="value" (=, !=, =~, !~), by commas')
    parsed = tuple((m[1], m[2], m[3]) for m in matchers if m)
    seconds = seconds_of(window) if window else None
    if seconds is not None and seconds > metric_window.TTL_SECONDS:
        raise NotEvaluated(f"the window [{window}] is longer than the counts are kept ({metric_window.TTL_SECONDS} s)")
    by = tuple(label.strip() for label in (found["by"] or "").split(",") if label.strip())
    return Side(found["agg"], by, found["series"], parsed, function, seconds)


def rule_of(raw: Mapping[str, Any]) -> Rule:
    expr = " ".join(str(raw["expr"]).split())
    base = Rule(
        name=str(raw["alert"]), severity=str((raw.get("labels") or {}).get("severity", "")),
        summary=str((raw.get("annotations") or {}).get("summary", "")), expr=expr, hold=raw.get("for"),
    )  # fmt: skip
    try:
        comparison = COMPARISON.fullmatch(expr)
        if comparison is None:
            raise NotEvaluated("the expression does not end in a comparison with a number (> N)")
        sides = re.split(r"\s*/\s*(?=(?:sum|max)\b)", comparison["sides"])
        if len(sides) > 2:
            raise NotEvaluated("at most one division")
        parsed = tuple(side_of(side) for side in sides)
        if len(parsed) == 2 and parsed[0].by != parsed[1].by:
            raise NotEvaluated("both sides of a ratio group by the same labels")
    except NotEvaluated as exc:
        return Rule(**{**base.__dict__, "problem": str(exc)})
    return Rule(**{**base.__dict__, "sides": parsed, "compare": comparison["op"],
                   "threshold": float(comparison["threshold"])})  # fmt: skip


def rules_of(document: Mapping[str, Any]) -> list[Rule]:
    groups = document.get("groups") or []
    return [rule_of(raw) for group in groups for raw in group.get("rules") or [] if "alert" in raw]


@cache
def shipped_rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    """The rules of the file shipped with the product, read once."""
    return tuple(rules_of(yaml.safe_load(path.read_text())))


@dataclass
class Observed:
    """The numbers of now: counts from Redis, and the gauges the caller read (`gauges[series]`)."""

    redis: Any
    now: float
    gauges: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def increase(self, series: str, seconds: float) -> dict[Labels, float]:
        if series not in metric_window.COUNTED:
            raise NotEvaluated(f"{series} is not counted where the console can read it")
        return metric_window.increase(self.redis, series, seconds, self.now)

    def current(self, series: str) -> dict[Labels, float]:
        if series not in self.gauges:
            raise NotEvaluated(f"{series} is not a gauge the console reads")
        return self.gauges[series]


def evaluate(numbers: Numbers, rules: tuple[Rule, ...] | None = None) -> list[dict[str, Any]]:
    """Every rule with its state, firing ones first."""
    order = {"firing": 0, "pending": 1, "not_evaluated": 2, "inactive": 3}
    shown = [rule.evaluate(numbers) for rule in (shipped_rules() if rules is None else rules)]
    return sorted(shown, key=lambda r: order[r["state"]])
