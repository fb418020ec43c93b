"""The basemap setting of `citysense api`: options over the environment, the template and attribution
checked at start, and a Content-Security-Policy that allows images from the tile server alone."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from citysense.cli import build_parser
from citysense.cmd_api import api_config
from citysense.settings import ConfigError, Settings

DB = ["api", "--database-url", "postgresql://x@h/db"]


def _config(argv: list[str], env: dict[str, str]) -> ApiConfig:
    args = build_parser().parse_args([*DB, *argv])
    return api_config(Settings.from_args(args, env={}), args, env=env)


def test_options_then_environment_then_none() -> None:
    config = _config(
        ["--basemap-url", "https://tiles.example.org/{z}/{x}/{y}.png", "--basemap-attribution", "© OSM"],
        {"CITYSENSE_BASEMAP_URL": "https://other.example/{z}/{x}/{y}", "CITYSENSE_BASEMAP_ATTRIBUTION": "x"},
    )
    assert config.tile_url == "https://tiles.example.org/{z}/{x}/{y}.png"
    assert config.tile_attribution == "© OSM"
    config = _config([], {"CITYSENSE_BASEMAP_URL": "http://10.0.0.5:8080/{z}/{x}/{y}.png"})
    assert config.tile_url == "http://10.0.0.5:8080/{z}/{x}/{y}.png"
    assert config.tile_attribution is None
    # The earlier names still work.
    assert (
        _config(["--tile-url", "https://t.example/{z}/{x}/{y}"], {}).tile_url
        == "https://t.example/{z}/{x}/{y}"
    )
    assert _config([], {"CITYSENSE_TILE_URL": "https://t.example/{z}/{x}/{y}"}).tile_url is not None
    config = _config([], {})
    assert (config.tile_url, config.tile_attribution) == (None, None)


@pytest.mark.parametrize(
    "template",
    [
        "tiles.example.org/{z}/{x}/{y}.png",  # no scheme
        "ftp://tiles.example.org/{z}/{x}/{y}.png",
        "javascript:alert(1)//{z}/{x}/{y}",
        "https://{s}.tiles.example.org/{z}/{x}/{y}.png",  # a placeholder in the host
        "https://tiles.example.org/{z}/{x}.png",  # no {y}
        "https://tiles.example.org/{z}/{x}/{y}.png?key={key}",
        'https://tiles.example.org/{z}/{x}/{y}.png" onerror="x',
        "https://tiles.example.org/{z}/{x}/{y} .png",
    ],
)
def test_a_bad_template_is_refused_at_start(template: str) -> None:
    with pytest.raises(ConfigError, match="basemap URL"):
        _config(["--basemap-url", template], {})


def test_a_bad_attribution_is_refused_at_start() -> None:
    url = ["--basemap-url", "https://t.example/{z}/{x}/{y}"]
    with pytest.raises(ConfigError, match="attribution"):
        _config([*url, "--basemap-attribution", "a" * 301], {})
    with pytest.raises(ConfigError, match="attribution"):
        _config(url, {"CITYSENSE_BASEMAP_ATTRIBUTION": "line\nbreak"})


def test_the_policy_allows_images_from_the_tile_server_only(db: str) -> None:
    config = ApiConfig(db, tile_url="http://127.0.0.1:8123/{z}/{x}/{y}.png", tile_attribution="© Tiles")
    with TestClient(create_app(config)) as client:
        response = client.get("/api/v1/config")
        assert response.json()["basemap"] == {"url": config.tile_url, "attribution": "© Tiles"}
        policy = dict(p.strip().split(" ", 1) for p in response.headers["content-security-policy"].split(";"))
        assert policy["img-src"] == "'self' data: http://127.0.0.1:8123"
        assert policy["connect-src"] == "'self'"
    with TestClient(create_app(ApiConfig(db))) as client:
        response = client.get("/api/v1/config")
        assert response.json()["basemap"] is None
        assert "img-src 'self' data:;" in response.headers["content-security-policy"]
