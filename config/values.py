"""Small value helpers every app uses, so that each is decided once: reading an id that came from
outside (a URL, a token, a search box, a provider's tag) and saying a duration in words.
A leaf: it imports nothing of the project."""

from __future__ import annotations

import uuid


def parse_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID, or None if it is not one (any spelling ``uuid.UUID`` accepts: with or
    without dashes or braces, any case). What a caller does with None (a 404, a skipped row) is
    the caller's business."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def duration_text(seconds: float) -> str:
    """A duration for a sentence on a workspace's timeline: whole minutes as minutes ("1 minute",
    "15 minutes"), anything else in seconds ("90 seconds", "0.5 seconds")."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    return f"{seconds:g} seconds"
