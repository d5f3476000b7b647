"""Schemathesis hooks for tests/contract/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS)."""

import re
import uuid

import schemathesis

_VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    """A valid Idempotency-Key is made unique per request. Generated keys repeat (the same example
    value, shrinking...), and a key reused with another body is rightly a 422
    (`idempotency_key_reused`), which the idempotency tests cover. Invalid keys are left alone, so
    the fuzzer still checks that they are refused."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and _VALID_KEY.match(key):
        case.headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4()}"
