"""Every vector of tests/vectors/ decodes to its expected values or its expected reason."""

from __future__ import annotations

from collections import Counter

import pytest

from devices.decoders import Decoded, decode
from devices.errors import DecodeError, Reason
from devices.sonde import decode_sonde
from devices.topics import parse_topic
from tests.support.vectors import Vector, load_vectors, matches

VECTORS = list(load_vectors())
PREFIX = "citysense"


def fate(vector: Vector) -> list[Decoded]:
    """The order the ingester follows: topic, then registry, then payload."""
    if vector.line_format == "sonde":
        assert vector.device_id is not None
        return list(decode_sonde(vector.device_id, vector.payload, vector.received_at))
    assert vector.topic is not None
    topic = parse_topic(vector.topic, PREFIX)
    if vector.registry is not None:
        state = vector.registry.get(topic.device_id)
        if state is None:
            raise DecodeError(Reason.UNKNOWN_DEVICE, topic.device_id)
        if state == "disabled":
            raise DecodeError(Reason.DISABLED_DEVICE, topic.device_id)
    return decode(topic.channel, topic.device_id, vector.payload, vector.received_at)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_vector(vector: Vector) -> None:
    if vector.reason is not None:
        with pytest.raises(DecodeError) as caught:
            fate(vector)
        assert caught.value.reason == vector.reason, caught.value.detail
        return
    assert vector.values is not None
    values = fate(vector)
    assert len(values) == len(vector.values)
    for got, want in zip(values, vector.values, strict=True):
        assert matches(got, want) == []


def test_vectors_cover_every_reason() -> None:
    reasons = Counter(v.reason for v in VECTORS if v.reason is not None)
    # `rejected` is the database's verdict on a decoded message, never a decoder's.
    assert set(reasons) == {r.value for r in Reason} - {Reason.REJECTED}


def test_vector_names_are_unique() -> None:
    ids = [v.id for v in VECTORS]
    assert len(ids) == len(set(ids))
