"""Reading and writing the offline water files of CONTRACT §8 (the I/O edge of `detect water`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analytics.water.params import ALL_PARAMETERS

_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


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
    parameters: tuple[str, ...]  # the mapped parameters, in ALL_PARAMETERS order
    values: npt.NDArray[np.float64]  # (P, n), NaN = empty cell
    labels: npt.NDArray[np.int8] | None


def parse_time(text: str) -> datetime:
    s = text.strip()
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
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`SOURCE=parameter` options -> {source column: parameter}."""
    out = {}
    for item in items:
        source, sep, param = item.partition("=")
        if not sep or not source or param not in ALL_PARAMETERS:
            raise ValueError(f"--map {item!r}: expected SOURCE=parameter, parameter one of {ALL_PARAMETERS}")
        out[source] = param
    return out


def read_water_csv(
    path: Path, time_col: str, mapping: Mapping[str, str], label_col: str | None = None
) -> WaterTable:
    """Columns named in `mapping` (or already named as parameters) are read; the rest are ignored."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if time_col not in header:
            raise WaterCsvError(path, f"no time column {time_col!r}")
        if label_col is not None and label_col not in header:
            raise WaterCsvError(path, f"no label column {label_col!r}")
        sources = {c: mapping.get(c, c) for c in header if mapping.get(c, c) in ALL_PARAMETERS}
        if not sources:
            raise WaterCsvError(path, "no parameter column (use --map SOURCE=parameter)")
        params = tuple(p for p in ALL_PARAMETERS if p in sources.values())
        by_param = {p: c for c, p in sources.items()}
        text: list[str] = []
        times: list[datetime] = []
        cols: list[list[float]] = [[] for _ in params]
        labels: list[int] = []
        for row_no, row in enumerate(reader, start=2):
            try:
                times.append(parse_time(row[time_col]))
                text.append(row[time_col])
                for i, p in enumerate(params):
                    cell = (row[by_param[p]] or "").strip()
                    cols[i].append(float(cell) if cell else np.nan)
                if label_col is not None:
                    labels.append(int(float(row[label_col] or 0)))
            except (ValueError, TypeError) as exc:
                raise WaterCsvError(path, str(exc), row_no) from None
    t = np.array([np.datetime64(x.replace(tzinfo=None), "s") for x in times], dtype="datetime64[s]")
    if t.size > 1 and np.any(np.diff(t) <= np.timedelta64(0, "s")):
        raise WaterCsvError(path, "times must increase strictly")
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
