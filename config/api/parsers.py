"""The API's one request parser: DRF's JSON parser, with every malformed body a 400.

DRF turns a ``ValueError`` from ``json`` into a ``ParseError`` (400 ``invalid_json``), but not the
``RecursionError`` that JSON nested deeper than Python's recursion limit (about 1000 levels) raises:
that one would escape as a 500. No request of this API nests more than a few levels, so such a body
is malformed for us, and answered like any other.
"""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
