"""The ground truth lists every injected fault and event, and nothing abnormal happens outside them."""

from __future__ import annotations

from collections import Counter

from citysense_sim.episodes import KINDS, EpisodePlan
from citysense_sim.fleet import water_fleet
from citysense_sim.water import Sonde
from citysense_sim.wire import WATER_PARAMETERS

T0 = 1_790_000_000.0
STEP = 60.0


def test_every_anomaly_is_inside_a_logged_episode() -> None:
    plan = EpisodePlan(fault_rate=40, event_rate=30)
    kinds: Counter[str] = Counter()
    for device in water_fleet(17, 11):
        sonde = Sonde(device, STEP, plan, 11)
        episodes = []
        clean_max = {p: 0.0 for p in WATER_PARAMETERS}
        readings = []
        for k in range(2000):
            t = T0 + STEP * k
            result = sonde.step(t)
            if result.started is not None:
                episodes.append(result.started)
                kinds[result.started.kind] += 1
                record = result.started.truth_record()
                assert record["device_id"] == device.device_id
                assert record["start"] < record["end"]
                assert record["parameters"]
            active = [e for e in episodes if e.start <= t < e.end]
            assert len(active) <= 1
            ep = active[0] if active else None
            if result.reading is None:
                assert ep is not None
                assert ep.kind == "power_loss"
                continue
            if not result.link_up:
                assert ep is not None
                assert ep.kind == "link_outage"
            values = dict(zip(WATER_PARAMETERS, result.reading.values, strict=True))
            nulls = {p for p, v in values.items() if v is None}
            if nulls:
                assert ep is not None
                assert ep.kind == "dropout"
                assert nulls == set(ep.parameters)
            readings.append((t, ep, values))
            if ep is None:
                for p, v in values.items():
                    assert v is not None
                    clean_max[p] = max(clean_max[p], v)
        # Outside episodes the water stays in its normal band (no unlogged events).
        for t, ep, values in readings:
            if ep is None:
                assert 6.0 < (values["ph"] or 0) < 8.5, (device.device_id, t)
                assert (values["conductivity_uscm"] or 0) < 400
                assert (values["turbidity_ntu"] or 0) < 1.0
    # With these rates every kind occurred somewhere in the fleet.
    assert set(kinds) == set(KINDS), set(KINDS) - set(kinds)


def test_flatline_is_bit_for_bit_stuck() -> None:
    plan = EpisodePlan(fault_rate=200, event_rate=0, kinds=frozenset({"flatline"}))
    sonde = Sonde(water_fleet(1, 2)[0], STEP, plan, 2)
    seen = 0
    previous = None
    for k in range(500):
        t = T0 + STEP * k
        result = sonde.step(t)
        ep = sonde.episode
        assert result.reading is not None
        if ep is not None and ep.start < t and previous is not None:
            i = WATER_PARAMETERS.index(ep.parameters[0])
            assert result.reading.values[i] == previous.values[i]
            seen += 1
        previous = result.reading
    assert seen > 20
