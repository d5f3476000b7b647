"""Real processes for tests that go over the network: gunicorn web processes and Celery workers.

These are what a deployment runs (``gunicorn ... config.wsgi``, ``celery -A config worker``), started
on the test run's own database and broker, so that a test can call the API over HTTP as an SDK user
does and see the work done by a worker in another process. Nothing here imports pytest: a script
(a benchmark, say) can use it too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ProcessFailed(RuntimeError):
    """A process did not come up; the message holds the end of its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(overrides: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **overrides}


class _Process:
    name = "process"

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = _environment(env)
        self.log_dir = Path(log_dir)
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.terminated = False
        self.log_path = self.log_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to be ready (``wait_ready``)."""
        self.starts += 1
        self.terminated = False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise ProcessFailed(f"{self.name} did not start:\n{self.log()[-5000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig=signal.SIGKILL) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM), without waiting for it (``stop`` waits)."""
        if self.alive() and not self.terminated:
            self.process.terminate()
            self.terminated = True

    def stop(self) -> None:
        if not self.alive():
            return
        self.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


class WorkerProcess(_Process):
    """A real ``celery worker`` process consuming ``queue`` and the clone queue (``clone_queue``,
    ``<queue>.clones`` by default: WORKSPACE_CLONE_QUEUE's default), so that one worker does all the
    work; ``consume="default"`` or ``consume="clones"`` makes it consume only one of them, as the
    deployments' two kinds of worker do. Tests may kill it (``kill()``) and start it again
    (``start()``), as an operator's supervisor would. ``pool`` and ``concurrency`` are Celery's
    ``--pool`` and ``--concurrency`` (solo by default: one task at a time, no child process)."""

    name = "worker"

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        *,
        queue: str,
        name: str = "worker",
        pool: str = "solo",
        concurrency: int | None = None,
        clone_queue: str | None = None,
        consume: str = "both",
    ):
        self.name = name
        super().__init__(env, log_dir)
        self.queue = queue
        self.clone_queue = clone_queue or f"{queue}.clones"
        self.queues = {
            "both": [queue, self.clone_queue],
            "default": [queue],
            "clones": [self.clone_queue],
        }[consume]
        self.pool = pool
        self.concurrency = concurrency

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", f"--pool={self.pool}"),
            "--loglevel=INFO",
            *((f"--concurrency={self.concurrency}",) if self.concurrency else ()),
            *(
                "--without-mingle",
                "--without-gossip",
                "-Q",
                ",".join(self.queues),
                "-n",
                f"{self.name}-{os.getpid()}@%h",
            ),
        ]

    def ready(self) -> bool:
        return b"ready." in self.log_path.read_bytes() if self.log_path.exists() else False


class WebProcess(_Process):
    """``gunicorn -c config/gunicorn.py config.wsgi`` (as deployed) on a loopback port, with
    ``workers`` processes."""

    name = "web"

    def __init__(self, env: dict[str, str], log_dir: Path, *, port: int | None = None, workers: int = 2):
        super().__init__(env, log_dir)
        self.port = port or free_port()
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"),
            *("--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)),
            *("--timeout", "60", "--graceful-timeout", "5", "--error-logfile", "-"),
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/openapi.json", timeout=2):  # noqa: S310 (loopback)
                return True
        except (urllib.error.URLError, OSError):
            return False


class LiveStack:
    """Web processes and Celery workers sharing one database, broker and queue of their own."""

    def __init__(
        self,
        *,
        database_url: str,
        log_dir: Path,
        queue: str,
        env: dict[str, str] | None = None,
        web: int = 1,
        web_workers: int = 2,
        workers: int | Sequence[dict[str, Any]] = 1,
    ):
        """``workers``: how many solo workers, or one dict of ``WorkerProcess`` options (``pool``,
        ``concurrency``) per worker, e.g. ``[{}, {"pool": "prefork", "concurrency": 2}]``."""
        self.queue = queue
        shared = {"DATABASE_URL": database_url, "CELERY_TASK_DEFAULT_QUEUE": queue, **(env or {})}
        self.webs = [WebProcess(shared, log_dir / f"web{n}", workers=web_workers) for n in range(web)]
        options = [{}] * workers if isinstance(workers, int) else list(workers)
        self.workers = [
            WorkerProcess(shared, log_dir, queue=queue, name=f"worker{n}", **each)
            for n, each in enumerate(options)
        ]

    @property
    def url(self) -> str:
        return self.webs[0].url

    @property
    def urls(self) -> list[str]:
        return [web.url for web in self.webs]

    def start(self) -> LiveStack:
        try:
            # All at once, then wait for each: they start in parallel.
            for process in (*self.workers, *self.webs):
                process.launch()
            for process in (*self.workers, *self.webs):
                process.wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (*self.webs, *self.workers):
            process.terminate()  # all at once: they shut down in parallel
        for process in (*self.webs, *self.workers):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name} ---\n{p.log()[-4000:]}" for p in (*self.webs, *self.workers))

    def __enter__(self) -> LiveStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
