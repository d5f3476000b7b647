"""What the browser tests share: Debian's chromium, how it is launched, where screenshots go, and
logging in to the operator console as a person does."""

from pathlib import Path

from playwright.sync_api import expect

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "s3cret-pass-word"


def log_in(page, base_url: str, email: str) -> None:
    """Fill in the admin's login form and land on the console's index."""
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("Workspaces operator console")
