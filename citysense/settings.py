"""Configuration read once, at the edge, from the environment and the options (README, Configuration)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PREFIX = "citysense"


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class MqttUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"MQTT URL must start with mqtt:// or mqtts://, got {parts.scheme or url!r}")
        if not parts.hostname:
            raise ConfigError("MQTT URL has no host")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("MQTT URL has a malformed port") from None
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def redacted(self) -> str:
        """The URL as it may appear in logs and on screen: never with the password."""
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"MqttUrl({self.redacted()!r})"


# `password=VALUE` in a key=value connection string: VALUE quoted ('it''s', 'a\'b') or up to a space.
_KV_PASSWORD = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)""", re.IGNORECASE)
# `password=VALUE` in a URL's query string.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_database_url(url: str) -> str:
    """A libpq connection string without its password, for logs and messages: the URL form
    (`postgresql://user:pw@host/db`, `...?password=pw`) and the key=value form (`password=pw`)."""
    if "://" not in url:
        return _KV_PASSWORD.sub(r"\1***", url)
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if not password:
        # An unparsable netloc may still hold `user:pw@`.
        return re.sub(r"(://[^/?#@:]*:)[^/?#@]*@", r"\1***@", url, count=1)
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def redact_error(exc: BaseException, url: str) -> str:
    """An error's text with the connection string's password taken out, should the driver echo it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    text = str(exc)
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    if password and len(str(password)) >= 3:  # a shorter one would blank out the message's letters
        text = text.replace(str(password), "***")
    return _KV_PASSWORD.sub(r"\1***", text)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    mqtt_url: MqttUrl | None
    topic_prefix: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        database_url = args.database_url or env.get("CITYSENSE_DATABASE_URL") or None
        mqtt = args.mqtt_url or env.get("CITYSENSE_MQTT_URL") or None
        prefix = args.topic_prefix or env.get("CITYSENSE_TOPIC_PREFIX") or DEFAULT_PREFIX
        if "/" in prefix or "+" in prefix or "#" in prefix or not prefix:
            raise ConfigError(f"topic prefix must be one topic level without wildcards, got {prefix!r}")
        return cls(database_url, MqttUrl.parse(mqtt) if mqtt else None, prefix)

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigError("no database: set CITYSENSE_DATABASE_URL or pass --database-url")
        return self.database_url

    def require_mqtt(self) -> MqttUrl:
        if self.mqtt_url is None:
            raise ConfigError("no broker: set CITYSENSE_MQTT_URL or pass --mqtt-url")
        return self.mqtt_url


def add_connection_options(parser: argparse.ArgumentParser, *, mqtt: bool = True) -> None:
    """The options every command takes, mirroring the environment variables."""
    parser.add_argument("--database-url", help="libpq URL (default: $CITYSENSE_DATABASE_URL)")
    if mqtt:
        parser.add_argument(
            "--mqtt-url", help="mqtt://[user:password@]host:port (default: $CITYSENSE_MQTT_URL)"
        )
    else:
        parser.set_defaults(mqtt_url=None)
    parser.add_argument(
        "--topic-prefix", help="first topic level (default: $CITYSENSE_TOPIC_PREFIX or citysense)"
    )
