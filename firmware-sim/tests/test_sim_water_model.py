from __future__ import annotations

from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import water_fleet
from citysense_sim.water import Sonde
from citysense_sim.wire import dumps
from simcontract import check_water

T0 = 1_790_000_000.0


def _run(n: int, plan: EpisodePlan, seed: int = 1) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    records: list[dict[str, object]] = []
    truth: list[dict[str, object]] = []
    for device in water_fleet(4, seed):
        sonde = Sonde(device, 60.0, plan, seed)
        for k in range(n):
            result = sonde.step(T0 + 60.0 * k)
            if result.started is not None:
                truth.append(result.started.truth_record())
            if result.reading is not None:
                records.append(result.reading.as_record())
    return records, truth


def test_readings_conform_to_the_contract() -> None:
    records, _ = _run(500, EpisodePlan(fault_rate=50, event_rate=50))
    for record in records:
        check_water(dumps(record))
    assert check_water(dumps(records[:50]))  # a buffered flush is an array


def test_same_seed_same_run() -> None:
    assert _run(200, EpisodePlan()) == _run(200, EpisodePlan())
    assert _run(200, EpisodePlan(), seed=1) != _run(200, EpisodePlan(), seed=2)
