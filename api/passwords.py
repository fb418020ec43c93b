"""Password hashing with argon2id (argon2-cffi's current recommended parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A valid hash of a random password, checked against when the user does not exist,
# so that an unknown username costs as much time as a wrong password.
_DECOY = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$3bSgw9SMlLqMK3UQQbfzOEbU6LnJXYwnLdwwaTBGUP0"
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    return PasswordHasher().hash(password)


def verify(stored: str | None, password: str) -> bool:
    try:
        return PasswordHasher().verify(stored or _DECOY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
