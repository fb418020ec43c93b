"""Web pages. The overview lists the water stations with their latest values."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
@router.get("/water", response_class=HTMLResponse)
async def overview() -> str:
    return files("api").joinpath("static/water.html").read_text(encoding="utf-8")
