"""Run `citysense` with its memory watched from inside: where the resident memory goes.

    python -m bench.traced DIR PERIOD [--tracemalloc] -- ingest --database-url ...

Every PERIOD seconds a line goes to DIR/memory.jsonl: resident memory (/proc), glibc's own
accounting (mallinfo2: bytes in use, bytes free inside the heap, bytes in mmap'd blocks, arenas),
CPython's allocated block count and, with --tracemalloc, the traced total and a snapshot file
(DIR/NNNN.snap, for `tracemalloc.Snapshot.load`) at the start and at each new resident
maximum; tracing starts at the first sample, after start-up. Together they tell live objects (traced)
from memory the allocators hold but no object uses (resident minus in use).
tracemalloc slows the process: use it on a short run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from citysense import cli


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _libc_mallinfo() -> dict[str, int]:
    """glibc's heap accounting, or nothing where there is no mallinfo2 (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        fn = libc.mallinfo2
    except (OSError, AttributeError, TypeError):
        return {}
    fn.restype = _Mallinfo2
    info = fn()
    return {
        "heap_in_use": int(info.uordblks),  # bytes malloc handed out from arenas
        "heap_free": int(info.fordblks),  # bytes free inside the arenas (held, not returned)
        "mmapped": int(info.hblkhd),  # large blocks mapped on their own
        "arena": int(info.arena),  # bytes of arena (brk + per-thread heaps)
    }


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _watch(out: Path, period: float, trace: bool, began: float) -> None:
    """Sample every `period`; with `trace`, trace from the first sample on (after start-up, whose
    imports would swamp the picture) and snapshot then and at each new resident maximum."""
    n = 0
    top = 0
    with open(out / "memory.jsonl", "a", encoding="utf-8") as log:
        while True:
            time.sleep(period)
            row: dict[str, object] = {
                "t": round(time.monotonic() - began, 1),
                "rss_kib": status_kib("VmRSS"),
                "threads": threading.active_count(),
                "py_blocks": sys.getallocatedblocks(),
                **_libc_mallinfo(),
            }
            if trace and not tracemalloc.is_tracing():
                tracemalloc.start(4)
            elif trace:
                row["traced"], row["traced_peak"] = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
            if trace and (n == 0 or status_kib("VmRSS") > top + 512):
                top = status_kib("VmRSS")
                snap = tracemalloc.take_snapshot()
                snap.dump(str(out / f"{n:04d}.snap"))
                row["snapshot"] = f"{n:04d}.snap"
                n += 1
            log.write(json.dumps(row) + "\n")
            log.flush()


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args or len(args[: args.index("--")]) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    own, rest = args[: args.index("--")], args[args.index("--") + 1 :]
    try:
        period = float(own[1])
    except ValueError:
        period = 0.0
    if not period > 0 or own[2:] not in ([], ["--tracemalloc"]):
        print(
            "PERIOD must be a positive number of seconds; the only option is --tracemalloc", file=sys.stderr
        )
        return 2
    out, trace = Path(own[0]), bool(own[2:])
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    threading.Thread(target=_watch, args=(out, period, trace, began), daemon=True).start()
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())


def report(out: Path, steady_until: float, top: int = 15) -> str:
    """The memory timeline, and (with snapshots) what grew from steady state to the peak."""
    rows = [json.loads(line) for line in (out / "memory.jsonl").read_text().splitlines() if line]
    if not rows:
        return "no memory samples"
    mib = 1 / 1024 / 1024
    lines = ["   t  rss  heap_in_use heap_free mmapped traced(MiB)  blocks  threads"]
    for r in rows:
        lines.append(
            f"{r['t']:5.0f} {r['rss_kib'] / 1024:5.1f} {r.get('heap_in_use', 0) * mib:8.1f} "
            f"{r.get('heap_free', 0) * mib:9.1f} {r.get('mmapped', 0) * mib:7.1f} "
            f"{r.get('traced', 0) * mib:9.1f} {r['py_blocks']:9,} {r['threads']:3}"
        )
    snaps = [r for r in rows if "snapshot" in r]
    steady = [r for r in snaps if r["t"] <= steady_until]
    if steady and len(snaps) > 1:
        first, peak = steady[0], snaps[-1]
        before = tracemalloc.Snapshot.load(str(out / first["snapshot"]))
        after = tracemalloc.Snapshot.load(str(out / peak["snapshot"]))
        lines.append(f"\ngrowth from t={first['t']} s to the resident peak at t={peak['t']} s:")
        for stat in after.compare_to(before, "lineno")[:top]:
            lines.append(f"  {stat}")
        lines.append("\nlive at the peak, by traceback (largest):")
        for stat in after.statistics("traceback")[:8]:
            lines.append(f"  {stat.size / 1024:.0f} KiB in {stat.count} blocks")
            lines.extend(f"      {frame}" for frame in stat.traceback.format())
    return "\n".join(lines)
