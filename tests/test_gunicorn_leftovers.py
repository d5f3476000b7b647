"""Starting and stopping gunicorn leaves nothing in the temp folder: the metrics folder it makes for
itself (``prometheus-multiproc-*``) goes when it exits, whether it served or refused to start."""

import subprocess
import sys

from tests.live import free_port
from tests.test_production_settings import ROOT, ProductionWeb, get, production_env, without_configuration


def leftovers(tmp_dir):
    return sorted(path.name for path in tmp_dir.glob("prometheus-multiproc-*"))


def test_a_served_and_stopped_gunicorn_leaves_no_metrics_folder(tmp_path):
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    port = free_port()
    env = production_env(
        PORT=str(port), WEB_CONCURRENCY="2", TMPDIR=str(tmp_dir), PROMETHEUS_MULTIPROC_DIR=None
    )
    web = ProductionWeb(env, tmp_path, port=port)
    web.env = env
    web.start()
    try:
        for _ in range(4):  # the workers write their samples into the folder
            assert get(port, "/healthz")[0] == 200
        assert len(leftovers(tmp_dir)) == 1  # the folder it made while it runs, and its workers use
    finally:
        web.stop()

    assert web.process.returncode == 0, web.log()[-3000:]
    assert leftovers(tmp_dir) == []


def test_a_refused_start_leaves_no_metrics_folder_and_one_message(tmp_path):
    env = {**without_configuration(), "PORT": str(free_port()), "TMPDIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(  # noqa: S603 (our own command line)
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "config.settings.production refuses to start" in result.stderr
    assert leftovers(tmp_path) == []
