"""Every page and asset is served from the package, with nothing loaded from another host."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig

PAGES = [
    "/",
    "/login",
    "/water",
    "/water/alerts/1",
    "/water/stations",
    "/water/stations/wq-1",
    "/transit",
    "/transit/performance",
    "/notifications",
    "/notifications/outbox",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_self_contained(db: str, path: str) -> None:
    with TestClient(create_app(ApiConfig(db))) as client:
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # Works offline: every script, stylesheet and image comes from this server.
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
        for asset in re.findall(r"""(?:src|href)="(/static/[^"]+)""", page.text):
            assert client.get(asset).status_code == 200
        assert "data-i18n" in page.text


def test_unknown_asset_is_a_404_in_the_one_format(db: str) -> None:
    with TestClient(create_app(ApiConfig(db))) as client:
        response = client.get("/static/secrets.txt")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
