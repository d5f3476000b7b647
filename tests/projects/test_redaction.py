"""The one masking of repository credentials (projects.redaction), as every caller sees it."""

import pytest

from config.operations.logs import scrub
from projects.redaction import keep_stored_credentials, redact_credentials
from workspaces.drivers.base import DriverError


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:s3cret@example.com/x.git", "https://alice:***@example.com/x.git"),
        ("https://ghp_t0ken@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("http://u:p@ss@example.com:8080/x", "http://u:***@example.com:8080/x"),  # a raw "@" in the password
        ("https://user:@example.com/x", "https://user:***@example.com/x"),
        ("ssh://git@example.com/x.git", "ssh://git@example.com/x.git"),  # a key authenticates, not the name
        ("ssh://git:pw@example.com/x.git", "ssh://git:***@example.com/x.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://example.com/x.git?who=a@b", "https://example.com/x.git?who=a@b"),
        ("https://example.com/x.git", "https://example.com/x.git"),
    ],
)
def test_the_secret_part_of_a_urls_userinfo_is_masked(url, shown):
    assert redact_credentials(url) == shown


def test_every_url_in_a_message_is_masked():
    message = "fatal: unable to access 'https://a:b1@h/x.git/' (via https://tok3n@proxy/): 403"
    assert (
        redact_credentials(message)
        == "fatal: unable to access 'https://a:***@h/x.git/' (via https://***@proxy/): 403"
    )


def test_the_masked_form_sent_back_keeps_the_stored_one():
    stored = "https://alice:s3cret@example.com/x.git"
    assert keep_stored_credentials("https://alice:***@example.com/x.git", stored) == stored
    assert (
        keep_stored_credentials("https://bob:***@example.com/x.git", stored)
        == "https://bob:***@example.com/x.git"
    )
    assert keep_stored_credentials("https://example.com/x.git", stored) == "https://example.com/x.git"
    assert keep_stored_credentials(None, stored) is None
    assert keep_stored_credentials("https://***@h/x", None) == "https://***@h/x"


def test_driver_errors_and_log_lines_mask_credentials():
    assert DriverError("Could not clone https://ghp_t0ken@github.com/o/r.git: 403").message == (
        "Could not clone https://***@github.com/o/r.git: 403"
    )
    line = scrub("cloning https://ghp_t0ken@github.com/o/r.git and https://a:pw123456@h/x")
    assert "ghp_t0ken" not in line and "pw123456" not in line
