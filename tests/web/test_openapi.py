"""Schemathesis over the whole OpenAPI document, against the API on a real database: every
operation, called anonymously and as each role with schema-valid requests, and with invalid ones
(negative data generation). No request may get a 5xx; every response has a documented status and
content type and matches its schema, and invalid requests are refused with a 4xx."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from api.state import ApiConfig
from tests.support.browser import serve
from tests.support.web_rows import PASSWORD, USERS, add_alert, add_route, add_station_with_readings, add_users

# Examples per operation and caller: enough to reach every parameter's edges, few enough that the
# whole walk (about 25 operations, four callers, then invalid requests as admin) takes a minute or two.
POSITIVE_EXAMPLES = 6
NEGATIVE_EXAMPLES = 8
LOGOUT = "POST /api/v1/auth/logout"


@dataclass
class Api:
    url: str
    schema: schemathesis.BaseSchema
    tokens: dict[str, str]  # role -> bearer token


def _login(url: str, name: str) -> str:
    request = urllib.request.Request(
        f"{url}/api/v1/auth/login",
        data=json.dumps({"username": name, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["token"])


@pytest.fixture
def api(db: str, mqtt_url: str) -> Iterator[Api]:
    add_users(db)
    add_station_with_readings(db, hours=1)
    add_route(db)
    for subject_kind in ("station", "vehicle", "route"):
        add_alert(db, subject_kind=subject_kind)
    # Generated logins fail by the hundred: no limit here (tests/web/test_login_limit.py has it).
    from api.ratelimit import LoginLimit

    with serve(ApiConfig(db, login_limit=LoginLimit(0, 0))) as url:
        tokens = {role: _login(url, name) for name, role in USERS.items()}
        yield Api(url, schemathesis.openapi.from_url(f"{url}/openapi.json"), tokens)


def _walk(api: Api, caller: str, mode: GenerationMode, examples: int) -> list[str]:
    headers = {"Authorization": f"Bearer {api.tokens[caller]}"} if caller in api.tokens else {}
    if mode is GenerationMode.POSITIVE:
        # A schema-valid request may still be refused with a 400 for what OpenAPI cannot state
        # (start before end): every other check runs.
        checks = [not_a_server_error, status_code_conformance, content_type_conformance]
        checks.append(response_schema_conformance)
        excluded = [positive_data_acceptance]
    else:
        checks = [
            not_a_server_error,
            negative_data_rejection,
            status_code_conformance,
            content_type_conformance,
        ]
        excluded = []
    tested = []
    operations = [result.ok() for result in api.schema.get_all_operations()]
    # Logging out ends the caller's session: last.
    operations.sort(key=lambda op: op.label == LOGOUT)
    for operation in operations:
        content = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
        if "text/event-stream" in content:
            continue  # a stream answers for as long as it is asked to: tests/transit/test_stream*.py
        raw = operation.definition.raw
        if mode is GenerationMode.NEGATIVE and not (raw.get("parameters") or "requestBody" in raw):
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            # The health check's 503 is its documented answer, not a server error: no ingester or
            # analytics worker runs here (tests/test_health.py covers its verdicts).
            skip = [not_a_server_error] if case.operation.path == "/api/v1/health" else []
            case.call_and_validate(
                headers=headers, checks=[c for c in checks if c not in skip], excluded_checks=excluded + skip
            )

        check()
        tested.append(operation.label)
    return tested


def test_every_operation_as_every_caller(api: Api) -> None:
    # One server and database for all four callers: the set-up costs more than a caller's walk.
    for caller in ("anonymous", "water_staff", "transport_planner", "admin"):
        began = time.monotonic()
        tested = _walk(api, caller, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
        assert "POST /api/v1/alerts/{alert_id}/resolve" in tested
        assert "GET /api/v1/water/stations/{device_id}/readings" in tested
        print(f"\n{caller}: {len(tested)} operations, {time.monotonic() - began:.1f} s")


def test_invalid_requests_are_refused_with_a_4xx(api: Api) -> None:
    # As admin: past every role check, into each endpoint's own validation.
    began = time.monotonic()
    tested = _walk(api, "admin", GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
    assert "POST /api/v1/water/stations/{device_id}/maintenance" in tested
    print(f"\nnegative: {len(tested)} operations, {time.monotonic() - began:.1f} s")
