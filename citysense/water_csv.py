"""Reading and writing the offline water files of docs/water-detection.md (the I/O edge of `detect water`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from devices.water import PARAMETERS

_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
# Cells that mean "no value" (compared case-insensitively): R's NA, pandas' NaN and the like.
_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})


class WaterCsvError(ValueError):
    """The file cannot be read as a water time series; `row` is the 1-based line, if any."""

    def __init__(self, path: Path, detail: str, row: int | None = None) -> None:
        where = f"{path}:{row}" if row is not None else str(path)
        super().__init__(f"{where}: {detail}")
        self.path, self.detail, self.row = path, detail, row


@dataclass(frozen=True, slots=True)
class WaterTable:
    time_text: list[str]  # the time cells as written, echoed to the output
    times: npt.NDArray[np.datetime64]  # UTC; naive times are taken as UTC
    parameters: tuple[str, ...]  # the mapped parameters, in PARAMETERS order
    values: npt.NDArray[np.float64]  # (P, n), NaN = empty cell
    labels: npt.NDArray[np.int8] | None


def parse_time(text: str, zone: ZoneInfo | None = None, after: datetime | None = None) -> datetime:
    """A time cell as UTC. Naive times are UTC, or local times of `zone` when one is given; a
    local time the end of summer time repeats is taken as its later instance when the earlier
    one would not come after `after` (the previous row)."""
    s = (text or "").strip()
    try:
        return datetime.fromtimestamp(float(s), tz=UTC)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                t = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"unreadable time {text!r}") from None
    if t.tzinfo is not None:
        return t.astimezone(UTC)
    if zone is None:
        return t.replace(tzinfo=UTC)
    local = t.replace(tzinfo=zone).astimezone(UTC)
    if after is not None and local <= after:
        later = t.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if later > local:
            return later
    return local


def parse_float(text: str | None) -> float:
    """A value cell: a number, or NaN for an empty or NA-like cell."""
    s = (text or "").strip()
    return np.nan if s.lower() in _MISSING else float(s)


def parse_label(text: str | None) -> int:
    """A label cell: 1 for an event (1, TRUE, yes), 0 for normal (0, FALSE, no, empty)."""
    s = (text or "").strip().lower()
    if s in _TRUE:
        return 1
    if s in _FALSE or s in _MISSING:
        return 0
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"unreadable label {text!r} (expected 0/1 or TRUE/FALSE)") from None
    if v not in (0.0, 1.0):
        raise ValueError(f"unreadable label {text!r} (expected 0/1 or TRUE/FALSE)")
    return int(v)


def zone_for(name: str | None) -> ZoneInfo | None:
    """The IANA time zone of naive times (None: they are UTC)."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from None


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`SOURCE=parameter` options -> {source column: parameter}."""
    out = {}
    for item in items:
        source, sep, param = item.partition("=")
        if not sep or not source or param not in PARAMETERS:
            raise ValueError(f"--map {item!r}: expected SOURCE=parameter, parameter one of {PARAMETERS}")
        out[source] = param
    return out


def read_water_csv(
    path: Path,
    time_col: str,
    mapping: Mapping[str, str],
    label_col: str | None = None,
    timezone: str | None = None,
) -> WaterTable:
    """Columns named in `mapping` (or already named as parameters) are read; the rest are ignored.

    Empty and NA-like cells (NA, NaN, null) are missing values; labels are 0/1 or TRUE/FALSE.
    timezone: an IANA name; naive times are then local times there (UTC otherwise).
    """
    zone = zone_for(timezone)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if time_col not in header:
            raise WaterCsvError(path, f"no time column {time_col!r}")
        if label_col is not None and label_col not in header:
            raise WaterCsvError(path, f"no label column {label_col!r}")
        sources = {c: mapping.get(c, c) for c in header if mapping.get(c, c) in PARAMETERS}
        if not sources:
            raise WaterCsvError(path, "no parameter column (use --map SOURCE=parameter)")
        params = tuple(p for p in PARAMETERS if p in sources.values())
        by_param = {p: c for c, p in sources.items()}
        text: list[str] = []
        times: list[datetime] = []
        cols: list[list[float]] = [[] for _ in params]
        labels: list[int] = []
        for row_no, row in enumerate(reader, start=2):
            try:
                when = parse_time(row[time_col], zone, times[-1] if times else None)
                if times and when <= times[-1]:
                    hint = "" if zone else " (local times repeated at the end of summer time need --timezone)"
                    raise WaterCsvError(
                        path, f"times must increase strictly: {row[time_col]!r}{hint}", row_no
                    )
                times.append(when)
                text.append(row[time_col])
                for i, p in enumerate(params):
                    cols[i].append(parse_float(row[by_param[p]]))
                if label_col is not None:
                    labels.append(parse_label(row[label_col]))
            except (ValueError, TypeError) as exc:
                if isinstance(exc, WaterCsvError):
                    raise
                raise WaterCsvError(path, str(exc), row_no) from None
    t = np.array([np.datetime64(x.replace(tzinfo=None), "s") for x in times], dtype="datetime64[s]")
    values = np.array(cols, dtype=np.float64).reshape(len(params), len(text))
    lab = np.array(labels, dtype=np.int8) if label_col is not None else None
    return WaterTable(text, t, params, values, lab)


def write_detection_csv(
    path: Path,
    time_text: Sequence[str],
    event: npt.ArrayLike,
    probability: npt.ArrayLike,
    parameters: Sequence[str],
    flags: npt.ArrayLike,
) -> None:
    ev = np.asarray(event).astype(int)
    pr = np.asarray(probability, dtype=float)
    fl = np.asarray(flags).astype(int)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["time", "event", "probability", *(f"qc_{p}" for p in parameters)])
        for i, t in enumerate(time_text):
            w.writerow([t, ev[i], f"{pr[i]:.4f}", *fl[:, i].tolist()])
