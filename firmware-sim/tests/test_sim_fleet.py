from __future__ import annotations

import json

import pytest
from citysense_sim.cli import main
from citysense_sim.fleet import water_fleet
from simcontract import DEVICE_ID


def test_manifest_is_deterministic_and_valid(capsys: pytest.CaptureFixture[str]) -> None:
    cap = capsys
    assert main(["fleet", "--water", "20", "--buses", "3", "--seed", "7"]) == 0
    first = cap.readouterr().out
    assert main(["fleet", "--water", "20", "--buses", "3", "--seed", "7"]) == 0
    assert cap.readouterr().out == first
    lines = [json.loads(line) for line in first.splitlines()]
    assert len(lines) == 23
    assert [d["kind"] for d in lines].count("bus") == 3
    ids = [d["device_id"] for d in lines]
    assert len(set(ids)) == len(ids)
    for d in lines:
        assert set(d) == {"device_id", "kind", "name", "lat", "lon", "site", "site_kind"}
        assert DEVICE_ID.match(d["device_id"])
        # Da Nang, roughly: the city and its rural district.
        assert 15.9 < d["lat"] < 16.2
        assert 107.9 < d["lon"] < 108.35


def test_smaller_fleet_is_a_prefix_of_a_bigger_one() -> None:
    assert water_fleet(5, 3) == water_fleet(40, 3)[:5]
