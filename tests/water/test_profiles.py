"""Rule profiles: the file, lookups per station, and the worker judging each station by its own."""

from __future__ import annotations

import psycopg
import pytest

from analytics.water.profiles import ProfileError, load, parse
from tests.support.helpers import register
from tests.support.water import drain, insert, series, worker_on

pytestmark = pytest.mark.anyio


def test_packaged_profiles_make_qcvn_tap_limits_the_default() -> None:
    profiles = load()
    tap = profiles.for_station("any", None)
    assert tap.kind == "distribution_point"
    assert dict(tap.limits) == {
        "ph": (6.0, 8.5),
        "turbidity_ntu": (None, 2.0),
        "free_chlorine_mgl": (0.2, 1.0),
    }
    assert profiles.for_station("any", "no_such_kind") == tap
    outlet = profiles.for_station("any", "treatment_plant_outlet")
    assert outlet.limits["free_chlorine_mgl"] == (0.5, 2.0)


def test_a_station_may_have_limits_of_its_own() -> None:
    profiles = parse(
        """
        [kinds.distribution_point]
        limits.ph = { min = 6.5, max = 8.5 }
        limits.free_chlorine_mgl = { min = 0.2, max = 1.0 }
        [stations."wq-7"]
        limits.free_chlorine_mgl = { min = 0.3 }
        """
    )
    mine = profiles.for_station("wq-7", None)
    assert mine.limits == {"ph": (6.5, 8.5), "free_chlorine_mgl": (0.3, None)}
    assert profiles.for_station("wq-8", None).limits["free_chlorine_mgl"] == (0.2, 1.0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[kinds.x]\nlimits.ph = { min = 6 }\n", "default_kind"),
        ('default_kind = "x"\n[kinds.x]\nlimits.ph = { min = 9, max = 6 }\n', "min 9.0 is above max 6.0"),
        ('default_kind = "x"\n[kinds.x]\nlimits.colour = { max = 6 }\n', "unknown parameter"),
        ('default_kind = "x"\n[kinds.x]\nlimits.ph = { max = "high" }\n', "finite number"),
        ('default_kind = "x"\n[kinds.x]\nmin_breach_s = -5\n', "must be positive"),
        ('default_kind = "x"\n[kinds.x]\ncolour = 1\n', "unknown keys"),
        ("kinds = [", "not TOML"),
    ],
)
def test_a_bad_profiles_file_says_where(text: str, says: str) -> None:
    with pytest.raises(ProfileError, match=says):
        parse(text)


async def test_a_plant_outlet_dosing_above_the_tap_limit_is_no_breach(db: str) -> None:
    register(db, ("outlet", "water", True), ("tap", "water", True))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET station_kind = 'treatment_plant_outlet' WHERE device_id = 'outlet'")
    for device in ("outlet", "tap"):
        rows = series(90)
        for r in rows:
            r["free_chlorine_mgl"] = round(float(str(r["free_chlorine_mgl"])) + 0.9, 4)  # about 1.4 mg/L
        insert(db, device, rows)
    async with worker_on(db) as worker:
        await drain(worker)
    with psycopg.connect(db) as conn:
        breaches = conn.execute(
            "SELECT subject_id, evidence->'limits' FROM alerts WHERE kind = 'compliance_breach'"
        ).fetchall()
    assert breaches == [("tap", {"free_chlorine_mgl": [0.2, 1.0]})]
