"""Schemathesis over the whole OpenAPI document, against the API on a real database: no 5xx,
documented status codes and content types, responses that match their schemas."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.state import ApiConfig
from tests.web.browser import serve
from tests.web.fixtures import PASSWORD, add_alert, add_route, add_station_with_readings, add_users


@pytest.fixture
def api_schema(db: str, mqtt_url: str) -> Iterator[schemathesis.BaseSchema]:
    add_users(db)
    add_station_with_readings(db, hours=1)
    add_route(db)
    for subject_kind in ("station", "vehicle", "route"):
        add_alert(db, subject_kind=subject_kind)
    with serve(ApiConfig(db)) as url:
        request = urllib.request.Request(
            f"{url}/api/v1/auth/login",
            data=json.dumps({"username": "root", "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            token = json.load(response)
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        schema.config.headers = {"Authorization": f"Bearer {token['token']}"}
        yield schema


def test_api_conforms_to_its_openapi(api_schema: schemathesis.BaseSchema) -> None:
    # One test walks every operation: schemathesis' lazy pytest loader does not run under this
    # pytest, and one server with one seeded database serves them all.
    tested = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        content = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
        if "text/event-stream" in content:
            continue  # a stream answers for as long as it is asked to: tested by the live map test

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            # A schema-valid request may still be refused with a 400 for what OpenAPI cannot
            # state (start before end): every other check runs.
            excluded = [positive_data_acceptance]
            if case.operation.path == "/api/v1/health":
                # Its 503 is its documented answer, not a server error: no ingester or analytics
                # worker runs here (tests/test_health.py covers its verdicts).
                excluded.append(not_a_server_error)
            case.call_and_validate(excluded_checks=excluded)

        check()
        tested.append(operation.label)
    assert "POST /api/v1/alerts/{alert_id}/resolve" in tested
