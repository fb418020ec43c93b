"""Code as it was at a git revision, loaded at run time as a module of its own: the baselines that
benchmarks and evaluations measure beside today's code, with nothing of them kept in the tree."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def module_at(rev: str, path: str, name: str) -> ModuleType:
    """The file `path` (from the repository's root) at git revision `rev`, as module `name`."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is made
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    return mod
