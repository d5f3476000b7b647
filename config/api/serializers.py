"""Strict request parsing shared by every endpoint (docs/api.md, "Conventions").

JSON types are taken as they are: ``"2"``, ``true`` and ``2.5`` are not integers, ``"false"`` is
not a boolean; unknown fields are rejected so that typos fail loudly. Each problem carries a stable
code (``invalid_type``, ``unknown_field``, ...) that ends up in the error's ``details``.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from config.api.openapi import SchemaHints

JSON_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def json_type_name(value) -> str:
    if value is None:
        return "null"
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _type_error(expected: str, value) -> ValidationError:
    return ValidationError(
        ErrorDetail(f"Must be {expected}, not {json_type_name(value)}.", code="invalid_type")
    )


class _NullIsATypeError:
    """A null where the field is not nullable is a type error, with our code."""

    def validate_empty_values(self, data):
        if data is None and not self.allow_null:
            self.fail_type(data)
        return super().validate_empty_values(data)

    def fail_type(self, data):
        raise _type_error(self.expected, data)


class StrictIntegerField(_NullIsATypeError, serializers.IntegerField):
    expected = "an integer"

    def to_internal_value(self, data):
        if type(data) is not int:  # bool is a subclass of int: `true` is not 2
            raise _type_error(self.expected, data)
        return super().to_internal_value(data)


class StrictBooleanField(_NullIsATypeError, serializers.BooleanField):
    expected = "a boolean"

    def to_internal_value(self, data):
        if type(data) is not bool:
            raise _type_error(self.expected, data)
        return data


class StrictCharField(_NullIsATypeError, serializers.CharField):
    expected = "a string"

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise _type_error(self.expected, data)
        return super().to_internal_value(data)


class HintedCharField(SchemaHints, StrictCharField):
    """A strict string whose schema names a rule (``schema={"pattern": ...}``): see SchemaHints."""


class StrictSerializer(_NullIsATypeError, serializers.Serializer):
    """A serializer for a JSON object that rejects anything but an object, and any unknown field."""

    expected = "a JSON object"

    def fail_type(self, data):
        if self.parent is None:
            # DRF wants a top-level serializer's errors as a mapping; ours has no field name.
            raise ValidationError({"non_field_errors": _type_error(self.expected, data).detail})
        super().fail_type(data)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail_type(data)
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationError(
                {
                    name: [
                        ErrorDetail(
                            f"Unknown field {name!r}; known fields are: {', '.join(self.fields)}.",
                            code="unknown_field",
                        )
                    ]
                    for name in unknown
                }
            )
        return super().to_internal_value(data)
