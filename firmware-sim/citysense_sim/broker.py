"""Where the broker is: `mqtt://[user:password@]host:port`, read once into a frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting that cannot be used."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs

    @classmethod
    def from_url(cls, url: str) -> BrokerConfig:
        parts = urlsplit(url)
        if parts.scheme != "mqtt":
            raise ConfigError(f"broker URL must start with mqtt://, got {parts.scheme or 'no'} scheme")
        if not parts.hostname:
            raise ConfigError("broker URL has no host")
        try:
            port = parts.port or 1883
        except ValueError as exc:
            raise ConfigError(f"broker URL has a bad port: {exc}") from None
        return cls(
            parts.hostname,
            port,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"
