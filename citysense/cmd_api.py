"""`citysense api`: the HTTP service."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from citysense.runtime import add_logging_options, setup_logging
from citysense.settings import ConfigError, Settings, add_connection_options
from citysense.water_files import add_station_profiles_option, station_profiles_of

if TYPE_CHECKING:
    from api.ratelimit import LoginLimit
    from api.state import ApiConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="run the HTTP API and web pages")
    add_connection_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--public-views",
        help="comma-separated read-only views open without login: stations, readings, buses, routes "
        "(default: $CITYSENSE_PUBLIC_VIEWS or stations,buses,routes; 'none' for none)",
    )
    parser.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark the session cookie Secure, when served over HTTPS (default: $CITYSENSE_SECURE_COOKIES=1)",
    )
    parser.add_argument(
        "--login-limit",
        metavar="USER,ADDRESS/SECONDS",
        help="failed logins allowed per user name and per client address within SECONDS, then 429 "
        "(default: $CITYSENSE_LOGIN_LIMIT or 5,30/900; 0 for no limit of that kind)",
    )
    parser.add_argument(
        "--basemap-url",
        "--tile-url",
        dest="tile_url",
        metavar="TEMPLATE",
        help="map tiles under the pages' maps, an http(s) URL with {z}, {x} and {y}, e.g. "
        "https://tiles.example.org/{z}/{x}/{y}.png (default: $CITYSENSE_BASEMAP_URL, else "
        "$CITYSENSE_TILE_URL, else none: nothing is fetched from elsewhere)",
    )
    parser.add_argument(
        "--basemap-attribution",
        metavar="TEXT",
        help="the tiles' attribution, shown on every map over them (default: $CITYSENSE_BASEMAP_ATTRIBUTION,"
        " else the tile server's host name)",
    )
    add_station_profiles_option(parser)
    parser.add_argument(
        "--trusted-proxies",
        metavar="ADDRESSES",
        help="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (default: $CITYSENSE_TRUSTED_PROXIES or none: the peer's "
        "own address counts)",
    )
    parser.add_argument(
        "--max-body",
        metavar="BYTES",
        type=int,
        help="largest request body accepted, larger ones get 413 before being read "
        "(default: $CITYSENSE_MAX_BODY or 65536)",
    )
    parser.add_argument(
        "--stream-write-timeout",
        metavar="SECONDS",
        type=float,
        help="drop a live-stream client that leaves a write unread this long "
        "(default: $CITYSENSE_STREAM_WRITE_TIMEOUT or 30)",
    )
    parser.add_argument(
        "--read-database-url",
        help="libpq URL of a streaming replica for the heavy reads: time series, route performance, "
        "exports (default: $CITYSENSE_READ_DATABASE_URL; none: every read on the primary)",
    )
    parser.add_argument(
        "--max-replica-lag",
        metavar="SECONDS",
        type=float,
        help="send the heavy reads to the primary while the replica is further behind than this "
        "(default: $CITYSENSE_MAX_REPLICA_LAG or 30)",
    )
    add_logging_options(parser)
    parser.set_defaults(func=run)


def parse_public_views(text: str) -> frozenset[str]:
    from api.auth import View

    names = {n.strip() for n in text.split(",") if n.strip()} - {"none"}
    unknown = names - {v.value for v in View}
    if unknown:
        raise ConfigError(
            f"unknown public view(s) {', '.join(sorted(unknown))}; choose from {', '.join(v for v in View)}"
        )
    return frozenset(names)


def parse_login_limit(text: str) -> LoginLimit:
    """`USER,ADDRESS/SECONDS`, e.g. `5,30/900`: failed logins per user name and per address in the window."""
    from api.ratelimit import LoginLimit

    counts, slash, seconds = text.strip().partition("/")
    user, comma, address = counts.partition(",")
    try:
        limit = LoginLimit(int(user), int(address), float(seconds))
    except ValueError:
        limit = None
    if not (slash and comma) or limit is None or limit.per_user < 0 or limit.per_address < 0:
        raise ConfigError(
            f"login limit must look like 5,30/900 (per user, per address / seconds), got {text!r}"
        )
    if not 0 < limit.window_s <= 86400 * 7:
        raise ConfigError(f"login limit window must be between 1 s and a week, got {seconds!r}")
    return limit


def parse_trusted_proxies(text: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (10.0.0.0/8); 'none' or nothing for none."""
    import ipaddress

    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    for name in names:
        try:
            ipaddress.ip_network(name, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted proxy {name!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return names


_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def parse_basemap_url(text: str) -> str:
    """A tile URL template: http(s), a host without placeholders, and {z}, {x} and {y} in its path."""
    text = text.strip()
    parts = urlsplit(text)
    placeholders = set(_PLACEHOLDER.findall(text))
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "{" in parts.netloc
        or placeholders != {"{z}", "{x}", "{y}"}
        or any(c.isspace() or ord(c) < 32 or c in "\"'<>`" for c in text)
        or len(text) > 2000
    ):
        raise ConfigError(
            "basemap URL must be an http(s) URL template with {z}, {x} and {y} and no other placeholder, "
            f"e.g. https://tiles.example.org/{{z}}/{{x}}/{{y}}.png; got {text[:200]!r}"
        )
    return text


def parse_attribution(text: str) -> str:
    """Plain text of at most 300 characters, without control characters (shown as text, never HTML)."""
    text = text.strip()
    if len(text) > 300 or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError("basemap attribution must be plain text of at most 300 characters on one line")
    return text


def uvicorn_options(config: ApiConfig) -> dict[str, Any]:
    """Forwarded headers are read only from the configured proxies (none by default): uvicorn would
    otherwise believe X-Forwarded-For from 127.0.0.1, and anyone connecting from there could pass
    for any address, walking around the per-address login limit."""
    return {
        "proxy_headers": bool(config.trusted_proxies),
        "forwarded_allow_ips": list(config.trusted_proxies),
    }


def _positive(value: object, what: str, low: float, high: float) -> float:
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    if not low <= number <= high:
        raise ConfigError(f"{what} must be between {low:g} and {high:g}, got {value!r}")
    return number


def api_config(
    settings: Settings, args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None
) -> ApiConfig:
    from api.state import ApiConfig

    env = os.environ if env is None else env
    mqtt = settings.mqtt_url
    views = getattr(args, "public_views", None) or env.get("CITYSENSE_PUBLIC_VIEWS")
    tile_url = getattr(args, "tile_url", None) or env.get("CITYSENSE_BASEMAP_URL")
    tile_url = tile_url or env.get("CITYSENSE_TILE_URL") or None
    attribution = getattr(args, "basemap_attribution", None) or env.get("CITYSENSE_BASEMAP_ATTRIBUTION")
    attribution = attribution or None
    config = ApiConfig(
        database_url=settings.require_database(),
        broker_host=mqtt.host if mqtt else None,
        broker_port=mqtt.port if mqtt else None,
        tile_url=None if tile_url is None else parse_basemap_url(tile_url),
        tile_attribution=None if attribution is None else parse_attribution(attribution),
        secure_cookies=bool(getattr(args, "secure_cookies", False))
        or env.get("CITYSENSE_SECURE_COOKIES") == "1",
    )
    if views:
        config = replace(config, public_views=parse_public_views(views))
    profiles = station_profiles_of(args, env)
    if profiles is not None:
        config = replace(config, profiles=profiles)
    login_limit = getattr(args, "login_limit", None) or env.get("CITYSENSE_LOGIN_LIMIT")
    if login_limit:
        config = replace(config, login_limit=parse_login_limit(login_limit))
    proxies = getattr(args, "trusted_proxies", None) or env.get("CITYSENSE_TRUSTED_PROXIES")
    if proxies:
        config = replace(config, trusted_proxies=parse_trusted_proxies(proxies))
    max_body = getattr(args, "max_body", None) or env.get("CITYSENSE_MAX_BODY")
    if max_body:
        config = replace(config, max_body=int(_positive(max_body, "--max-body", 1024, 2**30)))
    write_timeout = getattr(args, "stream_write_timeout", None) or env.get("CITYSENSE_STREAM_WRITE_TIMEOUT")
    if write_timeout:
        config = replace(
            config, stream_write_timeout_s=_positive(write_timeout, "--stream-write-timeout", 1, 3600)
        )
    read_url = getattr(args, "read_database_url", None) or env.get("CITYSENSE_READ_DATABASE_URL")
    if read_url:
        config = replace(config, read_database_url=read_url)
    max_lag = getattr(args, "max_replica_lag", None) or env.get("CITYSENSE_MAX_REPLICA_LAG")
    if max_lag:
        config = replace(config, max_replica_lag_s=_positive(max_lag, "--max-replica-lag", 0.1, 86400))
    token = env.get("CITYSENSE_METRICS_TOKEN") or None
    if token is not None and len(token) < 16:
        raise ConfigError("CITYSENSE_METRICS_TOKEN must be at least 16 characters")
    return replace(config, metrics_token=token)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        config = api_config(Settings.from_args(args), args)
    except ConfigError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 2
    # Imported here: `citysense --help` and the other commands need not load the web stack.
    import uvicorn

    from api.app import create_app

    # log_config=None: uvicorn logs through ours (JSON lines when not on a terminal).
    uvicorn.run(
        create_app(config), host=args.host, port=args.port, log_config=None, **uvicorn_options(config)
    )
    return 0
