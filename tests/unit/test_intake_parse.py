"""Parsing of `vigil intake` input: our events, PagerDuty Events API v2, Alertmanager webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.intake.events import (
    DEDUP_KEY_MAX,
    DETAILS_MAX,
    TITLE_MAX,
    ChangeEvent,
    IntakeBatch,
    IntakeEvent,
)
from app.intake.registry import format_names, parse_intake
from app.intake.vigil import VIGIL_KEYS
from data.domain import Category

FIXTURES = Path(__file__).parent.parent / "fixtures" / "intake"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def only_event(batch: IntakeBatch) -> IntakeEvent:
    assert batch.errors == [], batch.errors
    assert len(batch.events) == 1
    return batch.events[0]


def reasons(batch: IntakeBatch) -> list[str]:
    assert batch.events == []
    return [error.reason for error in batch.errors]


def vigil(**fields: object) -> str:
    base: dict[str, object] = {"title": "Threat in a post", "category": "edr", "severity": "sev2"}
    base.update(fields)
    return json.dumps({key: value for key, value in base.items() if value is not ...})


def pagerduty_trigger(**payload: object) -> dict[str, object]:
    body: dict[str, object] = {
        "summary": "Threat in a post",
        "source": "classifier",
        "severity": "warning",
    }
    body.update(payload)
    return {
        "routing_key": "R01H9Z3K7Q2M8V4X6C1B5N0P7T3Y9W2E",
        "event_action": "trigger",
        "payload": {key: value for key, value in body.items() if value is not ...},
    }


def alertmanager(*alerts: object, **envelope: object) -> str:
    body: dict[str, object] = {"version": "4", "receiver": "vigil", "status": "firing"}
    body.update(envelope, alerts=list(alerts))
    return json.dumps(body)


def alert(status: str = "firing", fingerprint: str | None = "ab12", **labels: str) -> dict:
    body: dict[str, object] = {
        "status": status,
        "labels": {"alertname": "EDRQueueStale", "severity": "critical", **labels},
        "annotations": {},
    }
    if fingerprint is not None:
        body["fingerprint"] = fingerprint
    return body


# Our own events.


def test_vigil_array_fixture_gives_triggers_and_closings_in_order() -> None:
    batch = parse_intake(fixture("vigil_events.json"), "vigil")

    assert batch.errors == []
    assert [(e.position, e.action) for e in batch.events] == [
        ("event 1", "trigger"),
        ("event 2", "acknowledge"),
        ("event 3", "trigger"),
        ("event 4", "resolve"),
    ]
    edr, ack, self_harm, resolve = batch.events
    assert edr.title is not None
    assert edr.title.startswith("Emergency disclosure request")
    assert (edr.category, edr.severity, edr.policy) == (Category.EDR, 1, "emergency")
    assert edr.dedup_key == "le-portal/EDR-2026-1142"
    assert edr.details.startswith("Request EDR-2026-1142")
    assert edr.sensitive is False
    assert edr.source == "vigil"
    assert (self_harm.severity, self_harm.sensitive) == (2, True)
    for closing in (ack, resolve):
        assert closing.dedup_key == "le-portal/EDR-2026-1142"
        assert (closing.title, closing.category, closing.severity) == (None, None, None)


def test_json_lines_with_a_broken_line_in_the_middle_keep_the_others() -> None:
    batch = parse_intake(fixture("vigil_events.jsonl"))

    assert [e.position for e in batch.events] == ["line 1", "line 2", "line 5", "line 6"]
    assert len(batch.errors) == 1
    assert batch.errors[0].position == "line 4"
    assert batch.errors[0].reason.startswith("not valid JSON: Expecting property name")
    assert str(batch.errors[0]).startswith("line 4: not valid JSON")
    preservation, doxxing, csea, resolve = batch.events
    assert (preservation.category, preservation.severity) == (Category.PRESERVATION, 4)
    assert (doxxing.category, doxxing.severity) == (Category.DOXXING, 3)
    assert resolve.dedup_key == "le-portal/PRS-2026-0087"
    assert csea.category is Category.CSEA


def test_csea_is_always_sensitive() -> None:
    event = only_event(parse_intake(vigil(category="CSEA", sensitive=False)))
    assert (event.category, event.sensitive) == (Category.CSEA, True)


@pytest.mark.parametrize(("given", "expected"), [("sev1", 1), ("SEV2", 2), ("3", 3), (4, 4)])
def test_vigil_severity_spellings(given: object, expected: int) -> None:
    assert only_event(parse_intake(vigil(severity=given))).severity == expected


def test_title_and_identifiers_are_trimmed_and_details_kept_as_written() -> None:
    text = vigil(title="  Threat  ", policy=" emergency ", dedup_key=" k1 ", details="a\n\tb\n")
    event = only_event(parse_intake(text))
    assert (event.title, event.policy, event.dedup_key) == ("Threat", "emergency", "k1")
    assert event.details == "a\n\tb\n"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"title": ...}, "title: required"),
        ({"title": "   "}, "title: required"),
        ({"title": 7}, "title: expected a string, got 7"),
        ({"title": "x" * 201}, f"title: at most {TITLE_MAX} characters, got 201"),
        (
            {"title": "Threat\u001b[2J"},
            "title: control character U+001B at character 7 is not allowed",
        ),
        ({"title": "two\nlines"}, "title: control character U+000A at character 4 is not allowed"),
        ({"title": "bad \ud800"}, "title: lone surrogate U+D800 at character 5 is not allowed"),
        ({"category": ...}, "category: required"),
        (
            {"category": "spam"},
            "category: expected one of edr, csea, threat_to_life, self_harm, "
            "violent_extremism, doxxing, le_request, preservation, other, got 'spam'",
        ),
        ({"severity": ...}, "severity: required"),
        ({"severity": "urgent"}, "severity: expected sev1, sev2, sev3, sev4 or 1-4, got 'urgent'"),
        ({"severity": 5}, "severity: expected sev1, sev2, sev3, sev4 or 1-4, got 5"),
        ({"severity": True}, "severity: expected sev1, sev2, sev3, sev4 or 1-4, got true"),
        ({"severity": 1.0}, "severity: expected sev1, sev2, sev3, sev4 or 1-4, got 1.0"),
        ({"details": ["a"]}, "details: expected a string, got a list"),
        ({"details": "d" * 20_001}, f"details: at most {DETAILS_MAX} characters, got 20001"),
        (
            {"details": "ok\u0007"},
            "details: control character U+0007 at character 3 is not allowed",
        ),
        ({"policy": {"name": "x"}}, "policy: expected a string, got an object"),
        ({"dedup_key": "k" * 256}, f"dedup_key: at most {DEDUP_KEY_MAX} characters, got 256"),
        ({"sensitive": "yes"}, "sensitive: expected true or false, got 'yes'"),
        ({"action": "close"}, "action: expected trigger, acknowledge or resolve, got 'close'"),
        ({"action": 3}, "action: expected trigger, acknowledge or resolve, got 3"),
        (
            {"sensitve": True},
            "'sensitve': unknown key, expected one of " + ", ".join(VIGIL_KEYS),
        ),
    ],
)
def test_vigil_field_errors(fields: dict[str, object], reason: str) -> None:
    batch = parse_intake(vigil(**fields))
    assert reasons(batch) == [reason]
    assert batch.errors[0].position == "event 1"


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_closing_actions_need_a_dedup_key(action: str) -> None:
    batch = parse_intake(json.dumps({"action": action}))
    assert reasons(batch) == [f"dedup_key: required for action '{action}'"]


def test_null_optional_fields_mean_absent() -> None:
    text = vigil(action=None, details=None, policy=None, dedup_key=None, sensitive=None)
    event = only_event(parse_intake(text))
    assert (event.action, event.details, event.policy, event.dedup_key) == (
        "trigger",
        "",
        None,
        None,
    )
    assert event.sensitive is False


def test_closing_actions_ignore_trigger_fields() -> None:
    event = only_event(parse_intake(json.dumps({"action": "Resolve", "dedup_key": "k"})))
    assert (event.action, event.dedup_key) == ("resolve", "k")


def test_every_problem_of_one_event_is_reported_at_once() -> None:
    batch = parse_intake(json.dumps([{"title": "", "severity": "x"}, {"category": 3}]))
    assert [str(error) for error in batch.errors] == [
        "event 1: title: required",
        "event 1: category: required",
        "event 1: severity: expected sev1, sev2, sev3, sev4 or 1-4, got 'x'",
        "event 2: title: required",
        "event 2: category: expected one of edr, csea, threat_to_life, self_harm, "
        "violent_extremism, doxxing, le_request, preservation, other, got 3",
        "event 2: severity: required",
    ]


def test_long_values_are_shortened_in_messages() -> None:
    (reason,) = reasons(parse_intake(vigil(severity="u" * 10_000)))
    assert len(reason) < 120
    assert reason.endswith("...")


# PagerDuty Events API v2.


def test_pagerduty_trigger_fixture_renders_readable_details() -> None:
    event = only_event(parse_intake(fixture("pagerduty_trigger.json")))

    assert event.source == "pagerduty"
    assert event.action == "trigger"
    assert event.title == "Credible threat-to-life post flagged by classifier (score 0.97)"
    assert event.category is Category.THREAT_TO_LIFE  # from payload.class, one of ours
    assert event.severity == 1
    assert event.dedup_key == "ttl-classifier/post/7741902215"
    assert event.sensitive is False
    assert event.details == (
        "Post 7741902215 names a school and a time. Author account 5512093 created 2 days ago."
        "\n\n"
        "source: ttl-classifier.prod.eu-west-1\n"
        "component: text-pipeline\n"
        "group: trust-safety-detection\n"
        "class: threat_to_life\n"
        "post_id: 7741902215\n"
        "score: 0.97\n"
        'languages: ["en", "es"]'
    )


def test_pagerduty_sensitive_trigger_keeps_details_as_given() -> None:
    event = only_event(parse_intake(fixture("pagerduty_trigger_sensitive.json"), "pagerduty"))

    assert event.category is Category.CSEA
    assert event.severity == 1  # custom_details.severity overrides payload.severity "error"
    assert event.sensitive is True
    assert event.details == (
        "Upload 88213377 by account 5512093 matched 2 hashes.\n"
        "Media quarantined; account suspended pending review."
    )


@pytest.mark.parametrize(
    ("name", "action"),
    [("pagerduty_acknowledge.json", "acknowledge"), ("pagerduty_resolve.json", "resolve")],
)
def test_pagerduty_closing_fixtures(name: str, action: str) -> None:
    event = only_event(parse_intake(fixture(name)))
    assert (event.action, event.source) == (action, "pagerduty")
    assert event.dedup_key == "ttl-classifier/post/7741902215"
    assert (event.title, event.severity) == (None, None)


@pytest.mark.parametrize(
    ("severity", "expected"), [("critical", 1), ("error", 2), ("warning", 3), ("Info", 4)]
)
def test_pagerduty_severity_mapping(severity: str, expected: int) -> None:
    event = only_event(parse_intake(json.dumps(pagerduty_trigger(severity=severity))))
    assert event.severity == expected


@pytest.mark.parametrize(
    ("payload", "category"),
    [
        ({}, Category.OTHER),
        ({"class": "deploy"}, Category.OTHER),
        ({"class": "doxxing"}, Category.DOXXING),
        ({"class": "doxxing", "custom_details": {"category": "edr"}}, Category.EDR),
        ({"custom_details": {"vigil_category": "self_harm"}}, Category.SELF_HARM),
        (
            {"custom_details": {"vigil_category": "edr", "category": "EDR"}},
            Category.EDR,
        ),
    ],
)
def test_pagerduty_category(payload: dict[str, object], category: Category) -> None:
    event = only_event(parse_intake(json.dumps(pagerduty_trigger(**payload))))
    assert event.category is category


def test_pagerduty_custom_details_may_be_plain_text() -> None:
    event = only_event(parse_intake(json.dumps(pagerduty_trigger(custom_details="see ticket 4"))))
    assert event.details == "see ticket 4\n\nsource: classifier"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"summary": ...}, "payload.summary: required"),
        ({"source": ...}, "payload.source: required"),
        ({"severity": ...}, "payload.severity: required"),
        (
            {"severity": "sev1"},
            "payload.severity: expected critical, error, warning or info, got 'sev1'",
        ),
        ({"summary": "s" * 300}, f"payload.summary: at most {TITLE_MAX} characters, got 300"),
        ({"component": 5}, "payload.component: expected a string, got 5"),
        (
            {"custom_details": {"severity": "high"}},
            "payload.custom_details.severity: expected sev1, sev2, sev3, sev4 or 1-4, got 'high'",
        ),
        (
            {"custom_details": {"category": "database"}},
            "payload.custom_details.category: expected one of edr, csea, threat_to_life, "
            "self_harm, violent_extremism, doxxing, le_request, preservation, other, "
            "got 'database'",
        ),
        (
            {"custom_details": {"category": "edr", "vigil_category": "csea"}},
            "payload.custom_details.category: edr conflicts with vigil_category csea",
        ),
        (
            {"custom_details": {"sensitive": 1}},
            "payload.custom_details.sensitive: expected true or false, got 1",
        ),
        (
            {"custom_details": {"details": 42}},
            "payload.custom_details.details: expected a string, got 42",
        ),
        (
            {"custom_details": {"blob": "x" * DETAILS_MAX}},
            "details (rendered from payload): at most 20000 characters, got 20025",
        ),
        (
            {"custom_details": {"note": "\u009b31m"}},
            "details (rendered from payload): control character U+009B at character 26 "
            "is not allowed",
        ),
    ],
)
def test_pagerduty_trigger_errors(payload: dict[str, object], reason: str) -> None:
    assert reasons(parse_intake(json.dumps(pagerduty_trigger(**payload)))) == [reason]


def test_pagerduty_reports_every_missing_required_field() -> None:
    event = pagerduty_trigger(summary=..., source=..., severity=...)
    assert reasons(parse_intake(json.dumps(event))) == [
        "payload.summary: required",
        "payload.source: required",
        "payload.severity: required",
    ]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"event_action": "trigger"}, "payload: required for event_action 'trigger'"),
        ({"event_action": "trigger", "payload": []}, "payload: expected an object, got a list"),
        ({"event_action": "resolve"}, "dedup_key: required for event_action 'resolve'"),
        ({"event_action": "acknowledge"}, "dedup_key: required for event_action 'acknowledge'"),
        (
            {"event_action": "change"},
            "event_action: expected trigger, acknowledge or resolve, got 'change'",
        ),
    ],
)
def test_pagerduty_envelope_errors(event: dict[str, object], reason: str) -> None:
    text = json.dumps({"routing_key": "R01", **event})
    assert reasons(parse_intake(text, "pagerduty")) == [reason]


# Alertmanager webhook.


def test_alertmanager_fixture_gives_one_event_per_alert() -> None:
    batch = parse_intake(fixture("alertmanager_webhook.json"))

    assert batch.errors == []
    edr, backlog, portal = batch.events
    assert [e.position for e in batch.events] == [
        "event 1, alert 1",
        "event 1, alert 2",
        "event 1, alert 3",
    ]
    assert {e.source for e in batch.events} == {"alertmanager"}

    assert edr.action == "trigger"
    assert edr.title == "Emergency data requests waiting more than 15 minutes"
    assert (edr.category, edr.severity) == (Category.EDR, 1)
    assert edr.dedup_key == "alertmanager:4b8d1c0e2f9a7a31"
    assert edr.details.startswith("3 emergency data requests from law enforcement")
    assert "\n\nlabels:\nalertname=EDRQueueStale\ncategory=edr\n" in edr.details

    assert backlog.title == "PreservationBacklog"  # no summary: the alert name
    assert (backlog.category, backlog.severity) == (Category.OTHER, 3)
    assert backlog.details.startswith("labels:\nalertname=PreservationBacklog")

    assert (portal.action, portal.dedup_key) == ("resolve", "alertmanager:c31f0a7d88e4b259")
    assert (portal.title, portal.category, portal.severity) == (None, None, None)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", 1),
        ("page", 1),
        ("error", 2),
        ("high", 2),
        ("warning", 3),
        ("info", 4),
        ("low", 4),
        ("sev2", 2),
        ("3", 3),
    ],
)
def test_alertmanager_severity_mapping(severity: str, expected: int) -> None:
    event = only_event(parse_intake(alertmanager(alert(severity=severity))))
    assert event.severity == expected


def test_alertmanager_sensitive_label_and_csea() -> None:
    batch = parse_intake(alertmanager(alert(sensitive="true"), alert(category="csea")))
    assert [e.sensitive for e in batch.events] == [True, True]


def test_alertmanager_key_without_fingerprint_comes_from_sorted_labels() -> None:
    first = alert(fingerprint=None, instance="a", team="t")
    same_labels_other_order = {
        **first,
        "labels": dict(reversed(list(first["labels"].items()))),
        "status": "resolved",
    }
    other = alert(fingerprint=None, instance="b", team="t")
    batch = parse_intake(alertmanager(first, same_labels_other_order, other))

    trigger, resolve, different = (e.dedup_key or "" for e in batch.events)
    assert trigger.startswith("alertmanager:")
    assert trigger == resolve
    assert different != trigger
    assert trigger == only_event(parse_intake(alertmanager(first))).dedup_key


def test_alertmanager_resolved_alert_needs_no_severity() -> None:
    resolved = {"status": "resolved", "labels": {"alertname": "X"}, "fingerprint": "f1"}
    event = only_event(parse_intake(alertmanager(resolved)))
    assert (event.action, event.dedup_key) == ("resolve", "alertmanager:f1")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"labels": {"alertname": "X", "severity": "meh"}},
            "labels.severity: expected critical, page, error, high, warning, info, low, "
            "sev1, sev2, sev3, sev4 or 1-4, got 'meh'",
        ),
        (
            {"labels": {"alertname": "X", "severity": "critical", "category": "infra"}},
            "labels.category: expected one of edr, csea, threat_to_life, self_harm, "
            "violent_extremism, doxxing, le_request, preservation, other, got 'infra'",
        ),
        (
            {"labels": {"severity": "critical"}},
            "title: required: annotations.summary or labels.alertname",
        ),
        (
            {"annotations": {"summary": "t" * 201}},
            f"annotations.summary: at most {TITLE_MAX} characters, got 201",
        ),
        (
            {"labels": {"alertname": "X", "severity": 1}},
            "labels.severity: expected a string, got 1",
        ),
        (
            {"labels": {"alertname": "X", "severity": "info", "bad key": None}},
            "labels['bad key']: expected a string, got null",
        ),
        ({"annotations": "text"}, "annotations: expected an object, got 'text'"),
        ({"status": "pending"}, "status: expected firing or resolved, got 'pending'"),
        ({"status": None}, "status: required"),
        ({"fingerprint": None, "labels": {}}, "fingerprint: required when the alert has no labels"),
        ({"fingerprint": "f" * 243}, "fingerprint: at most 242 characters, got 243"),
        (
            {"labels": {"alertname": "X", "severity": "info", "sensitive": "maybe"}},
            "labels.sensitive: expected true or false, got 'maybe'",
        ),
    ],
)
def test_alertmanager_alert_errors(change: dict[str, object], reason: str) -> None:
    bad = {**alert(), **change}
    batch = parse_intake(alertmanager(alert(), bad, alert(status="resolved")))
    assert [e.position for e in batch.events] == ["event 1, alert 1", "event 1, alert 3"]
    assert [str(error) for error in batch.errors] == [f"event 1, alert 2: {reason}"]


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        ({"version": "3"}, "version: expected \"4\", got '3'"),
        ({"alerts": "none"}, "alerts: expected a list, got 'none'"),
        ({"alerts": []}, "alerts: expected at least one alert, got an empty list"),
    ],
)
def test_alertmanager_envelope_errors(envelope: dict[str, object], reason: str) -> None:
    body = {"version": "4", "receiver": "vigil", "alerts": [alert()], **envelope}
    assert [str(e) for e in parse_intake(json.dumps(body)).errors] == [f"event 1: {reason}"]


def test_alertmanager_alert_that_is_not_an_object() -> None:
    batch = parse_intake(alertmanager(alert(), 7))
    assert [str(e) for e in batch.errors] == ["event 1, alert 2: expected a JSON object, got 7"]


# Detection and input shapes.


def test_auto_detects_each_event_of_a_mixed_batch() -> None:
    batch = parse_intake(fixture("mixed.jsonl"))
    assert batch.errors == []
    assert [(e.position, e.source, e.action) for e in batch.events] == [
        ("line 1", "vigil", "trigger"),
        ("line 2", "pagerduty", "acknowledge"),
        ("line 3, alert 1", "alertmanager", "trigger"),
        ("line 3, alert 2", "alertmanager", "trigger"),
        ("line 3, alert 3", "alertmanager", "resolve"),
    ]


def test_a_forced_format_applies_to_every_event() -> None:
    batch = parse_intake(fixture("pagerduty_acknowledge.json"), "vigil")
    assert reasons(batch)[0].startswith("'routing_key': unknown key")
    assert reasons(parse_intake(vigil(), "alertmanager")) == ["alerts: required"]


def test_an_object_without_detection_keys_is_read_as_ours() -> None:
    batch = parse_intake(json.dumps({"event_action": "trigger", "title": "x"}))
    assert reasons(batch)[0].startswith("'event_action': unknown key")


def test_unknown_format_is_a_value_error_naming_the_choices() -> None:
    with pytest.raises(
        ValueError, match="auto, vigil, pagerduty, alertmanager, grafana, got 'nagios'"
    ):
        parse_intake("[]", "nagios")


@pytest.mark.parametrize("text", ["", "  \n\n", "[]", "\ufeff[]"])
def test_nothing_to_take_in(text: str) -> None:
    assert parse_intake(text) == IntakeBatch([], [])


def test_byte_order_mark_and_crlf_lines_are_accepted() -> None:
    text = "\ufeff" + vigil() + "\r\n\r\n" + vigil(title="second") + "\r\n"
    batch = parse_intake(text)
    assert [(e.position, e.title) for e in batch.events] == [
        ("line 1", "Threat in a post"),
        ("line 3", "second"),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[\n  {"title": "x",}\n]', "input: not valid JSON: Expecting property name"),
        ('{\n  "title": "x"\n  "severity": 1\n}', "input: not valid JSON: Expecting ','"),
        pytest.param("[" * 100_000, "input: not valid JSON: ", id="deep-nesting"),
        ("42", "event 1: expected a JSON object, got 42"),
        ('[1, "x", null]', "event 1: expected a JSON object, got 1"),
        ('"just text"', "event 1: expected a JSON object, got 'just text'"),
    ],
)
def test_input_that_is_not_events(text: str, error: str) -> None:
    batch = parse_intake(text)
    assert batch.events == []
    assert str(batch.errors[0]).startswith(error)


def test_a_broken_pretty_printed_document_is_one_error_at_its_line() -> None:
    batch = parse_intake('[\n  {"title": "x",}\n]')
    assert [str(e) for e in batch.errors] == [
        "input: not valid JSON: Expecting property name enclosed in double quotes "
        "at line 2, column 17"
    ]


def test_nesting_too_deep_to_render_is_an_error_not_a_crash() -> None:
    """Somewhere below the decoder's own limit, rendering the details runs out of stack."""
    outcomes = set()
    for depth in range(200, 1_100):
        nested = "[" * depth + "]" * depth
        event = json.dumps(pagerduty_trigger(custom_details={"x": "HOLE"}))
        batch = parse_intake(event.replace('"HOLE"', nested))
        assert len(batch.events) + len(batch.errors) == 1
        outcomes |= {str(error) for error in batch.errors}
    assert "event 1: nested too deeply" in outcomes
    assert "line 1: not valid JSON: nested too deeply" in outcomes


# Properties: nothing raises, nothing is lost, whatever arrives.

SPELLINGS = st.sampled_from(
    [
        "trigger",
        "acknowledge",
        "resolve",
        "firing",
        "resolved",
        "sev1",
        "4",
        "critical",
        "page",
        "info",
        "csea",
        "edr",
        "true",
        "4",
        "",
        " ",
        "\u001b",
        "x" * 300,
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | SPELLINGS
    | st.integers(min_value=1, max_value=4)
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text() | SPELLINGS, children, max_size=4)
    ),
    max_leaves=20,
)


DROP = object()


def mutations_of(
    template: dict[str, object], **nested: st.SearchStrategy[object]
) -> st.SearchStrategy[dict[str, object]]:
    """A valid event with a few fields replaced by anything, or left out.

    Starting from a valid event reaches the deep checks that random objects never get past.
    """
    keys = sorted({*template, *nested, "extra"})
    replacements = SPELLINGS | JSON_VALUES | st.just(DROP)
    parts = st.fixed_dictionaries(dict(nested.items())) if nested else st.just({})

    def apply(changes: dict[str, object], parts: dict[str, object]) -> dict[str, object]:
        merged = {**template, **parts, **changes}
        return {key: value for key, value in merged.items() if value is not DROP}

    return st.builds(apply, st.dictionaries(st.sampled_from(keys), replacements, max_size=2), parts)


VIGIL_EVENTS = mutations_of(
    {"title": "T", "category": "csea", "severity": "sev2", "details": "d", "dedup_key": "k"}
) | mutations_of({"action": "resolve", "dedup_key": "k"})
PAGERDUTY_EVENTS = mutations_of(
    {"routing_key": "R01", "event_action": "trigger", "dedup_key": "k"},
    payload=mutations_of(
        {"summary": "s", "source": "src", "severity": "critical", "class": "doxxing"},
        custom_details=mutations_of(
            {"vigil_category": "edr", "sensitive": False, "details": "d", "note": "n"}
        ),
    ),
) | mutations_of({"routing_key": "R01", "event_action": "acknowledge", "dedup_key": "k"})
ALERTS = mutations_of(
    {"status": "firing", "fingerprint": "f"},
    labels=mutations_of({"alertname": "A", "severity": "warning", "category": "edr"}),
    annotations=mutations_of({"summary": "s", "description": "d"}),
)
ALERTMANAGER_WEBHOOKS = mutations_of(
    {"version": "4", "receiver": "vigil"},
    alerts=st.lists(ALERTS | JSON_VALUES, max_size=4),
)
ITEMS = JSON_VALUES | VIGIL_EVENTS | PAGERDUTY_EVENTS | ALERTMANAGER_WEBHOOKS


def assert_well_formed(batch: IntakeBatch) -> None:
    """What comes out is safe to store, and no event is both taken and refused."""
    event_positions = [event.position for event in batch.events]
    assert len(set(event_positions)) == len(event_positions)
    assert not set(event_positions) & {error.position for error in batch.errors}
    for error in batch.errors:
        assert error.reason
    for event in batch.events:
        if isinstance(event, ChangeEvent):  # a PagerDuty change event: a note, never a page
            assert event.summary
            assert len(event.summary) <= TITLE_MAX
            assert len(event.details) <= DETAILS_MAX
            continue
        assert event.dedup_key is None or 0 < len(event.dedup_key) <= DEDUP_KEY_MAX
        assert len(event.details) <= DETAILS_MAX
        if event.action == "trigger":
            assert event.title
            assert len(event.title) <= TITLE_MAX
            assert event.title.isprintable()
            assert event.category is not None
            assert event.severity in (1, 2, 3, 4)
            assert event.sensitive or event.category is not Category.CSEA
        else:
            assert event.dedup_key is not None


def assert_accounted_for(batch: IntakeBatch, positions: list[str]) -> None:
    """Every item in is an event or an error out, and nothing else comes out."""
    produced = [e.position for e in batch.events] + [e.position for e in batch.errors]
    for position in positions:
        assert any(p == position or p.startswith(f"{position}, ") for p in produced), position
    for position in produced:
        assert position.split(", ")[0] in positions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ITEMS, max_size=5) | ITEMS, st.sampled_from(format_names()))
def test_any_json_value_becomes_events_and_errors(value: object, fmt: str) -> None:
    batch = parse_intake(json.dumps(value), fmt)
    count = len(value) if isinstance(value, list) else 1
    assert_accounted_for(batch, [f"event {n}" for n in range(1, count + 1)])
    assert_well_formed(batch)


@settings(deadline=None)
@given(st.lists(st.text(max_size=30) | ITEMS.map(json.dumps), max_size=6).map("\n".join))
def test_any_text_never_raises(text: str) -> None:
    assert_well_formed(parse_intake(text))


GARBAGE = st.text().map(lambda text: "!" + text.replace("\n", " "))
BLANK = st.sampled_from(["", "  ", "\t", "\r"])
LINE = ITEMS.map(lambda value: json.dumps(value, ensure_ascii=False)) | GARBAGE


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(BLANK, max_size=2), LINE), min_size=2, max_size=6))
def test_json_lines_account_for_every_line(chunks: list[tuple[list[str], str]]) -> None:
    lines = [line for blanks, event in chunks for line in (*blanks, event)]
    batch = parse_intake("\n".join(lines))
    numbered = [f"line {n}" for n, line in enumerate(lines, 1) if line.strip(" \t\r")]
    assert_accounted_for(batch, numbered)
    assert_well_formed(batch)
