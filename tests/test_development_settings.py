"""Development settings (manage.py's default): no public secret. A fresh checkout makes its own
random secret key and token pepper once, keeps them in var/ for its owner only, and reuses them."""

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD_PUBLIC_KEY = "insecure-development-key-change-me-in-production"  # what base.py once defaulted to
SHOW = (
    "from django.conf import settings; "
    "print(settings.SETTINGS_MODULE, settings.DEBUG, settings.SECRET_KEY, settings.API_TOKEN_PEPPER)"
)


def manage_shell(var_dir: Path, **extra) -> list[str]:
    """``manage.py shell`` as a newcomer runs it: no settings module, no secrets in the environment."""
    names = ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "API_TOKEN_PEPPER", "DJANGO_DEBUG")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(VAR_DIR=str(var_dir), **extra)
    result = subprocess.run(  # noqa: S603 (our own command line)
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split()


def test_a_fresh_checkout_makes_its_own_key_and_pepper_and_keeps_them(tmp_path):
    module, debug, key, pepper = manage_shell(tmp_path)

    assert (module, debug) == ("config.settings.development", "True")
    assert key != OLD_PUBLIC_KEY and len(key) >= 50
    assert len(pepper) >= 32 and pepper != key
    for name, value in (("secret-key", key), ("token-pepper", pepper)):
        path = tmp_path / name
        assert path.read_text().strip() == value
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # its owner's only

    assert manage_shell(tmp_path) == [module, debug, key, pepper]  # the next command reuses them

    other = manage_shell(tmp_path / "another-checkout")  # and another checkout has its own
    assert other[2] != key and other[3] != pepper


def test_values_from_the_environment_win_and_are_not_written(tmp_path):
    key, pepper = "k" * 20 + "from-the-environment-" + "K" * 20, "pepper-from-the-environment-" + "p" * 10
    assert manage_shell(tmp_path, DJANGO_SECRET_KEY=key, API_TOKEN_PEPPER=pepper)[2:] == [key, pepper]
    assert not (tmp_path / "secret-key").exists() and not (tmp_path / "token-pepper").exists()


def test_base_settings_alone_refuse_to_load_without_a_secret_key(tmp_path):
    names = ("DJANGO_SECRET_KEY", "API_TOKEN_PEPPER")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings.base")
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in result.stderr
