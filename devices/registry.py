"""The device registry model and the broker's view of it: per-device credentials and ACL.

Each device gets its own MQTT user (its device id) and a password derived from a
secret registry key: `password = base64url(HMAC-SHA256(key, device_id))`. Nothing
secret is stored in the database, the operator can re-issue a device's password at any
time (`citysense devices password ID`), and rotating the key rotates them all.

`render_passwords` writes Mosquitto's password file (PBKDF2-SHA512, the `$7$` format
of mosquitto_passwd); `render_acl` lets each device write only under its own topics
and the services read everything. Disabled devices are left out of both, so the
broker refuses them before the ingester ever sees a message. Pure: the caller passes
the key and the salts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from devices.topics import Kind

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd uses for `$7$`
SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: Kind
    name: str = ""
    site: str | None = None
    route_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    enabled: bool = True


def device_password(key: bytes, user: str) -> str:
    """The MQTT password of a device (or service account), derived from the registry key."""
    digest = hmac.new(key, user.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def mosquitto_hash(password: str, salt: bytes) -> str:
    """A password file entry's hash in Mosquitto's `$7$` (PBKDF2-HMAC-SHA512) format."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def render_passwords(
    devices: Iterable[Device], services: Iterable[str], key: bytes, salt: Callable[[], bytes]
) -> str:
    """Mosquitto password file: enabled devices and the service accounts."""
    users = [d.device_id for d in devices if d.enabled] + list(services)
    return "".join(f"{u}:{mosquitto_hash(device_password(key, u), salt())}\n" for u in users)


def render_acl(devices: Iterable[Device], services: Iterable[str], prefix: str) -> str:
    """Mosquitto ACL: a device writes only its own topics; services read all of `prefix`."""
    lines = ["# Written by `citysense devices acl`. Do not edit: re-run the command.", ""]
    for service in services:
        lines += [f"user {service}", f"topic read {prefix}/v1/#", ""]
    for device in devices:
        if device.enabled:
            lines += [
                f"user {device.device_id}",
                f"topic write {prefix}/v1/{device.kind}/{device.device_id}/+",
                "",
            ]
    return "\n".join(lines)
