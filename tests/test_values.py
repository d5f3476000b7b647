"""The one UUID parser and the one duration formatter (config/values.py), which every app uses:
what they accept is what every id in a URL, a token, the admin's search and a provider's tag accepts."""

import uuid

import pytest

from config.values import duration_text, parse_uuid

AN_ID = uuid.UUID("b2c3d4e5-6789-01ab-cdef-234567890abc")


@pytest.mark.parametrize(
    "spelling",
    [str(AN_ID), str(AN_ID).upper(), AN_ID.hex, f"{{{AN_ID}}}", AN_ID],
)
def test_every_spelling_of_a_uuid_is_the_same_id(spelling):
    assert parse_uuid(spelling) == AN_ID


@pytest.mark.parametrize("junk", ["", "not-a-uuid", "123", f"{AN_ID}z", None, 42, " "])
def test_anything_else_is_no_id_rather_than_an_exception(junk):
    assert parse_uuid(junk) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (60, "1 minute"),
        (900, "15 minutes"),
        (90, "90 seconds"),
        (0.5, "0.5 seconds"),
        (0, "0 seconds"),
        (30.0, "30 seconds"),
    ],
)
def test_durations_read_as_minutes_when_whole(seconds, text):
    assert duration_text(seconds) == text
