"""``make bench``: the control plane's production shape on this machine, loaded from another process.

What runs: PostgreSQL (a database of the benchmark's own, made afresh), Redis (broker and cache),
gunicorn (``config.wsgi``), Celery workers on a queue of their own, and the fake Fly Machines API
(tests/fakes/fly.py) as an instant provider: no latency, no state-change delays, Fly's per-action
rate limits off. The load comes from ``bench/load.py``, a separate process.

What it measures (docs/benchmarks.md explains each figure and its target):

1. Creates: throughput and latency at concurrency 1, 8, 32 and 64, and SQL queries per create.
2. POST's 201 → ``running`` with the instant provider: our own overhead.
3. A burst of 1,000 creates: time until all are ``running``; duplicate machines and volumes.
4. ``GET /workspaces`` for users with 100, 1,000 and 10,000 workspaces, and one reconciler pass
   with 100,000 workspace rows in the table.
5. RSS of the web and Celery worker processes after the runs.

It prints a table and writes ``bench/results/<UTC time>.json``. Settings come from the environment;
``python -m bench.run --help`` lists the knobs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import LiveStack, free_port  # noqa: E402  (no Django import: safe before setup)

CREATE_BODY = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}
FLY_TOKEN = "bench-token"  # noqa: S105 (the fake's own credential)
HUGE = 10**9


# --- Set-up ----------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=env("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workspaces_bench"),
        help="the benchmark's own PostgreSQL database: dropped and made afresh (BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"),
        help="broker and cache (BENCH_REDIS_URL)",
    )
    parser.add_argument("--queue", default=env("BENCH_QUEUE", "bench"))
    parser.add_argument("--var-dir", default=env("VAR_DIR", str(ROOT / "var")))
    parser.add_argument("--fake-fly-port", type=int, default=int(env("FAKE_FLY_PORT", "0")) or None)
    parser.add_argument("--fly-latency-ms", type=float, default=float(env("BENCH_FLY_LATENCY_MS", "0")))
    parser.add_argument("--web-workers", type=int, default=int(env("BENCH_WEB_WORKERS", "4")))
    parser.add_argument("--celery-concurrency", type=int, default=int(env("BENCH_CELERY_CONCURRENCY", "4")))
    parser.add_argument("--quick", action="store_true", help="fewer requests and rows: a smoke run")
    parser.add_argument("--keep-db", action="store_true", help="leave the database for a look afterwards")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    return parser.parse_args(argv)


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("workspaces_bench"):
        raise SystemExit(
            f"Refusing to drop {name!r}: the benchmark's database name must start with workspaces_bench"
        )
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stack_environment(args: argparse.Namespace, fly_port: int) -> dict[str, str]:
    """What every process of the stack (and this one) runs with: production settings from env."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-" + "k" * 50,
        "API_TOKEN_PEPPER": "bench-pepper-" + "p" * 32,  # its own value: base.py has no default
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.redis_url,
        "CACHE_URL": args.redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": args.queue,
        "VAR_DIR": str(Path(args.var_dir) / "bench"),
        "READINESS_REQUIRE_WORKER": "false",
        "LOG_FORMAT": "json",  # as in production: one JSON line per request
        # config/gunicorn.py recycles a web worker every ~1,000 requests; not during a measurement
        # (a new worker's start-up would land in the latencies, and its CPU count restart).
        "GUNICORN_MAX_REQUESTS": "0",
        "API_RATE_LIMITS": json.dumps({"user": f"{HUGE}/minute", "workspace_create": f"{HUGE}/minute"}),
        "WORKSPACE_QUOTA_DEFAULTS": json.dumps(
            {"max_workspaces": HUGE, "max_vcpus": HUGE, "max_memory_mb": HUGE, "max_volume_gb": HUGE}
        ),
        "WORKSPACE_DRIVER": "fly",
        "FLY_API_BASE_URL": f"http://127.0.0.1:{fly_port}",
        "FLY_API_TOKEN": FLY_TOKEN,
        "FLY_APP_NAME": "workspaces-bench",
        "FLY_REGION": "iad",
        "FLY_IMAGE": "registry.example.com/workspace:bench",
        # The reconciler and idle stop are not part of the load: no beat runs.
        "WORKSPACE_REQUEUE_AFTER_SECONDS": "3600",
    }


def machine_description(database_url: str, redis_url: str) -> dict:
    import psycopg
    import redis

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    with psycopg.connect(database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    redis_version = redis.Redis.from_url(redis_url).info("server")["redis_version"]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (git from PATH, as make finds it)
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": postgres,
        "redis": redis_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class FakeFlyProcess:
    """``python -m tests.fakes.fly`` as an instant provider, in a process of its own."""

    def __init__(self, port: int, latency_ms: float, log_dir: Path):
        self.port, self.latency_ms, self.log_path = port, latency_ms, log_dir / "fake-fly.log"
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own command line)
                [
                    *(sys.executable, "-m", "tests.fakes.fly", "--port", str(self.port)),
                    *("--token", FLY_TOKEN, "--app", "workspaces-bench", "--region", "iad"),
                    *("--latency-ms", str(self.latency_ms), "--no-rate-limits"),
                    *(
                        "--create-delay",
                        "0",
                        "--start-delay",
                        "0",
                        "--stop-delay",
                        "0",
                        "--destroy-delay",
                        "0",
                    ),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.get("/__fake__/faults")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the fake Fly server did not start: {self.log_path.read_text()[-2000:]}")

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as answer:  # noqa: S310 (loopback)
            return json.loads(answer.read())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- Measuring ---------------------------------------------------------------------------------------


def load(job: dict) -> dict:
    """Run one job in the load generator's own process."""
    answer = subprocess.run(  # noqa: S603 (our own command line)
        [sys.executable, "-m", "bench.load"],
        cwd=ROOT,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    )
    return json.loads(answer.stdout)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary_ms(seconds: list[float]) -> dict:
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2) if seconds else None,
    }


def load_summary(outcome: dict, expect: int) -> dict:
    rows = outcome["results"]
    ok = [r for r in rows if r[2] == expect]
    return {
        "requests": len(rows),
        "ok": len(ok),
        "non_ok_statuses": sorted({r[2] for r in rows if r[2] != expect}),
        "seconds": round(outcome["elapsed"], 3),
        "req_per_s": round(len(rows) / outcome["elapsed"], 1),
        **summary_ms([r[1] for r in ok]),
    }


def rss_mb(pids: list[int]) -> list[float]:
    sizes = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            pass
    return sizes


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (robust to other load on the machine)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (gunicorn's workers, a prefork pool's processes)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return [pid, *sorted(children)]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.quick = args.quick
        self.results: dict = {}

    # Django in this process: seeding, query counts, the reconciler pass, and reading the outcome.
    def setup_django(self, env: dict[str, str]) -> None:
        os.environ.update(env)
        import django

        django.setup()

    def users(self, count: int, prefix: str) -> list[dict]:
        from accounts.services import api_token_create, user_create
        from projects.models import Project

        made = []
        for n in range(count):
            user = user_create(email=f"{prefix}{n}@bench.example.com")
            project = Project.objects.create(owner=user, name=f"{prefix}-{n}")
            made.append(
                {"user": user, "project": project, "token": api_token_create(user=user, name="bench").secret}
            )
        return made

    def create_job(self, users: list[dict], concurrency: int, count: int, pause: float = 0.0) -> dict:
        return {
            "url": self.url,
            "concurrency": concurrency,
            "count": count,
            "pause": pause,
            "requests": [
                {
                    "method": "POST",
                    "path": f"/projects/{u['project'].pk}/workspaces",
                    "token": u["token"],
                    "body": CREATE_BODY,
                }
                for u in users
            ],
        }

    # --- 0. The generator's own ceiling -----------------------------------------------------------

    def generator_ceiling(self) -> dict:
        port = free_port()
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "bench.load", "trivial", "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        try:
            server.stdout.readline()
            job = {
                "url": f"http://127.0.0.1:{port}",
                "concurrency": 32,
                "count": 1000 if self.quick else 4000,
                "requests": [{"method": "POST", "path": "/x", "token": "t", "body": CREATE_BODY}],
            }
            return load_summary(load(job), 201)
        finally:
            server.kill()
            server.wait()

    # --- 1. Creates --------------------------------------------------------------------------------

    def create_queries(self, user: dict) -> dict:
        """SQL statements of one create, counted in this process through Django's test client on
        the same database and settings (CaptureQueriesContext: every statement Django sends;
        psycopg's implicit BEGIN and the COMMIT are not statements Django sends, so not counted)."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client()
        path = f"/projects/{user['project'].pk}/workspaces"
        headers = {"HTTP_AUTHORIZATION": f"Bearer {user['token']}"}
        client.post(path, CREATE_BODY, content_type="application/json", **headers)  # warm (last_used_at)
        with CaptureQueriesContext(connection) as queries:
            answer = client.post(path, CREATE_BODY, content_type="application/json", **headers)
        assert answer.status_code == 201, answer.content
        return {"count": len(queries), "statements": [q["sql"][:300] for q in queries]}

    def creates(self, users: list[dict]) -> dict:
        plan = {1: 300, 8: 1200, 32: 3000, 64: 3000}
        if self.quick:
            plan = {1: 100, 8: 300, 32: 600, 64: 600}
        out = {}
        web = process_tree(self.web.process.pid)[1:]
        for concurrency, count in plan.items():
            load(self.create_job(users[:concurrency], concurrency, min(100, count)))  # warm-up
            cpu = cpu_seconds(web)
            out[str(concurrency)] = load_summary(
                load(self.create_job(users[:concurrency], concurrency, count)), 201
            )
            # The web workers' own CPU per request: what a create costs us, whatever else runs.
            out[str(concurrency)]["web_cpu_ms_per_request"] = round(
                (cpu_seconds(web) - cpu) / count * 1000, 2
            )
            print(f"  creates c={concurrency}: {out[str(concurrency)]}", flush=True)
        return out

    # --- 2. POST → running --------------------------------------------------------------------------

    def running_times(self, created: list[list]) -> dict[str, float]:
        """For each created workspace id: its 'running' event's time minus the 201's arrival."""
        from workspaces.models import WorkspaceEvent

        arrived = {row[3]: row[0] + row[1] for row in created if row[3]}
        running = dict(
            WorkspaceEvent.objects.filter(workspace_id__in=list(arrived), to_status="running").values_list(
                "workspace_id", "created_at"
            )
        )
        return {str(w): at.timestamp() - arrived[str(w)] for w, at in running.items()}

    def wait_running(self, ids: list[str], timeout: float) -> tuple[int, float]:
        from workspaces.models import Workspace

        deadline = time.monotonic() + timeout
        while True:
            done = Workspace.objects.filter(pk__in=ids, status="running").count()
            if done == len(ids) or time.monotonic() > deadline:
                return done, time.monotonic()
            time.sleep(0.05)

    def post_to_running(self, users: list[dict]) -> dict:
        count = 50 if self.quick else 200
        outcome = load(self.create_job(users[:1], 1, count, pause=0.05))
        ids = [r[3] for r in outcome["results"] if r[3]]
        done, _ = self.wait_running(ids, 60)
        times = list(self.running_times(outcome["results"]).values())
        return {"creates": len(ids), "running": done, **summary_ms(times)}

    # --- 3. The burst -------------------------------------------------------------------------------

    def burst(self, users: list[dict], fly: FakeFlyProcess) -> dict:
        from workspaces.models import Workspace, WorkspaceEvent

        count = 300 if self.quick else 1000
        processes = {
            "web": process_tree(self.web.process.pid)[1:],
            "celery": process_tree(self.worker.process.pid),
            "fake_fly": [fly.process.pid],
        }
        cpu = {name: cpu_seconds(pids) for name, pids in processes.items()}
        began = time.time()
        outcome = load(self.create_job(users[:64], 64, count))
        created_s = time.time() - began
        ids = [r[3] for r in outcome["results"] if r[3]]
        done, _ = self.wait_running(ids, 120)
        # CPU per workspace of each part (robust to other load): where a burst's time goes.
        cpu_ms = {
            name: round((cpu_seconds(pids) - cpu[name]) / count * 1000, 2) for name, pids in processes.items()
        }
        last = WorkspaceEvent.objects.filter(workspace_id__in=ids, to_status="running").order_by(
            "-created_at"
        )
        last_running = last.values_list("created_at", flat=True).first()
        inventory = fly.get("/__fake__/inventory")
        wanted = set(ids)
        machines: dict[str, int] = {}
        for machine in inventory["machines"]:
            workspace_id = (machine["config"].get("metadata") or {}).get("workspace_id")
            if workspace_id in wanted:
                machines[workspace_id] = machines.get(workspace_id, 0) + 1
        from workspaces.drivers.fly import workspace_of_volume

        volumes: dict[str, int] = {}
        for volume in inventory["volumes"]:
            workspace_id = workspace_of_volume(volume["name"])
            if workspace_id in wanted:
                volumes[workspace_id] = volumes.get(workspace_id, 0) + 1
        rows = dict(Workspace.objects.filter(pk__in=ids).values_list("pk", "machine_id"))
        mismatched = sum(
            1
            for machine in inventory["machines"]
            if (machine["config"].get("metadata") or {}).get("workspace_id") in wanted
            and str(rows.get(uuid.UUID(machine["config"]["metadata"]["workspace_id"]))) != machine["id"]
        )
        return {
            "creates": count,
            "created_201": len(ids),
            "create_seconds": round(created_s, 2),
            "running": done,
            "all_running_seconds": round(last_running.timestamp() - began, 2) if last_running else None,
            "workspaces_with_a_machine": len(machines),
            "duplicate_machines": sum(n - 1 for n in machines.values()),
            "duplicate_volumes": sum(n - 1 for n in volumes.values()),
            "machines_not_matching_their_row": mismatched,
            "cpu_ms_per_workspace": cpu_ms,
        }

    # --- 4. Growth with rows ------------------------------------------------------------------------

    def seed(self, owners: dict[int, dict], filler_users: list[dict], total: int) -> int:
        """Workspace rows by COPY: ``owners`` maps a count to the user who gets that many; the rest
        of ``total`` is spread over ``filler_users``. Statuses as a running fleet has them."""
        from django.db import connection

        columns = (
            "id project_id created_by_id status status_changed_at cpu_kind cpus memory_mb volume_size_gb "
            "gpu_kind keep_active driver machine_id volume_id private_ip git_ref preview_token error_message "
            "provisioned_at last_activity_at deleted_at destroyed_at created_at updated_at"
        ).split()
        now = datetime.now(UTC)
        plan = [(u, n) for n, u in owners.items()]
        rest = total - sum(owners)
        plan += [
            (u, rest // len(filler_users) + (1 if i < rest % len(filler_users) else 0))
            for i, u in enumerate(filler_users)
        ]
        buffer = io.StringIO()
        written = 0
        for owner, n in plan:
            for _ in range(n):
                written += 1
                at = now - timedelta(days=30) + timedelta(seconds=written)
                kind = written % 20
                status, deleted = "running", None
                if kind in (1, 2, 3):
                    status = "stopped"
                elif kind == 4:
                    status = "error"
                elif kind == 5:
                    status, deleted = "stopped", at + timedelta(days=1)
                up = status in ("running", "stopped") and deleted is None
                mid = f"m{written:013x}"
                row = [
                    str(uuid.uuid4()),
                    str(owner["project"].pk),
                    str(owner["user"].pk),
                    status,
                    at.isoformat(),
                    "shared",
                    "1",
                    "256",
                    "1",
                    r"\N",
                    "f",
                    "fly",
                    mid if up else r"\N",
                    f"vol_{written:016x}" if up else r"\N",
                    r"\N",
                    r"\N",
                    "ptk_" + secrets.token_urlsafe(24),
                    "Seeded error." if status == "error" else r"\N",
                    at.isoformat() if status != "error" else r"\N",
                    at.isoformat(),
                    deleted.isoformat() if deleted else r"\N",
                    deleted.isoformat() if deleted else r"\N",
                    at.isoformat(),
                    at.isoformat(),
                ]
                buffer.write("\t".join(row) + "\n")
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(f"COPY workspaces_workspace ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            cursor.execute("ANALYZE")
        return written

    def list_queries(self, user: dict, limit: int | None) -> int:
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client()
        path = "/workspaces" + (f"?limit={limit}" if limit else "")
        headers = {"HTTP_AUTHORIZATION": f"Bearer {user['token']}"}
        client.get(path, **headers)
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(path, **headers)
        assert answer.status_code == 200, answer.content
        return len(queries)

    def listing(self, owners: dict[int, dict]) -> dict:
        out = {}
        reps = 30 if self.quick else 100
        for count, user in owners.items():
            for limit in (100, None):
                path = "/workspaces" + (f"?limit={limit}" if limit else "")
                job = {
                    "url": self.url,
                    "concurrency": 1,
                    "count": reps if limit else max(10, reps // 5),
                    "requests": [{"method": "GET", "path": path, "token": user["token"]}],
                }
                load({**job, "count": 5})
                name = f"{count}_rows_limit_{limit or 'default'}"
                web = process_tree(self.web.process.pid)[1:]
                cpu = cpu_seconds(web)
                out[name] = load_summary(load(job), 200)
                out[name]["web_cpu_ms_per_request"] = round((cpu_seconds(web) - cpu) / job["count"] * 1000, 2)
                out[name]["queries"] = self.list_queries(user, limit)
                print(f"  list {name}: {out[name]}", flush=True)
        return out

    def reconciler(self) -> dict:
        """Passes of the reconciler in this process over every row, with the provider's inventory
        answered instantly from memory (every live running/stopped row has its machine, plus a few
        orphans and a few vanished machines), so that the time is ours alone."""
        from unittest import mock

        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from workspaces import reconciler
        from workspaces.drivers import Machine, MachineState, Volume
        from workspaces.models import Workspace

        live = list(
            Workspace.live.filter(status__in=["running", "stopped"], machine_id__isnull=False).values_list(
                "pk", "status", "machine_id", "volume_id"
            )
        )
        vanished = {str(row[0]) for row in live[:5]}
        deleted = list(Workspace.objects.filter(deleted_at__isnull=False).values_list("pk", flat=True)[:5])

        class InstantInventory:
            name = "fly"

            def __init__(self):
                self.machines = [
                    Machine(
                        mid,
                        str(pk),
                        MachineState.STARTED if status == "running" else MachineState.STOPPED,
                        volume_id=vid,
                    )
                    for pk, status, mid, vid in live
                    if str(pk) not in vanished
                ] + [Machine(f"orphan{n}", str(pk), MachineState.STARTED) for n, pk in enumerate(deleted)]
                self.volumes = [
                    Volume(m.volume_id or f"vol_o{n}", m.workspace_id) for n, m in enumerate(self.machines)
                ]
                self.destroyed = []

            def list_machines(self):
                return self.machines

            def list_volumes(self):
                return self.volumes

            def destroy(self, workspace_id, *, keep_machine_id=None):
                self.destroyed.append(workspace_id)
                self.machines = [m for m in self.machines if m.workspace_id != workspace_id]
                self.volumes = [v for v in self.volumes if v[1] != workspace_id]

        inventory = InstantInventory()
        passes = []
        with (
            mock.patch.object(reconciler, "get_driver", return_value=inventory),
            mock.patch("workspaces.services.get_driver", return_value=inventory),
        ):
            for _ in range(3):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    report = reconciler.reconcile()
                    seconds = time.perf_counter() - started
                passes.append(
                    {
                        "seconds": round(seconds, 3),
                        "queries": len(queries),
                        "orphans_destroyed": len(report.orphans_destroyed),
                        "vanished": len(report.vanished),
                        "timed_out": len(report.timed_out),
                        "requeued": len(report.requeued),
                    }
                )
                print(f"  reconciler pass: {passes[-1]}", flush=True)
        return {
            "workspace_rows": Workspace.objects.count(),
            "machines_in_inventory": len(live) - len(vanished) + len(deleted),
            "passes": passes,
        }

    # --- The run ------------------------------------------------------------------------------------

    def run(self) -> dict:
        args = self.args
        began = time.monotonic()
        fly_port = args.fake_fly_port or free_port()
        env = stack_environment(args, fly_port)
        log_dir = Path(env["VAR_DIR"]) / "logs"
        print(f"Benchmark database {args.database_url}; logs in {log_dir}", flush=True)
        recreate_database(args.database_url)
        self.setup_django(env)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from config.celery import app as celery_app

        self.results["machine"] = machine_description(args.database_url, args.redis_url)
        self.results["config"] = {
            "web": f"gunicorn -c config/gunicorn.py config.wsgi, {args.web_workers} sync workers",
            "celery": f"1 worker, prefork pool of {args.celery_concurrency}, queue {args.queue!r}",
            "driver": f"fly against tests/fakes/fly.py: latency {args.fly_latency_ms} ms, state delays 0, "
            "Fly's per-action rate limits off",
            "database": "PostgreSQL (fresh database, migrated)",
            "broker_and_cache": args.redis_url,
            "quick": self.quick,
        }
        print("Load generator ceiling (a trivial server, concurrency 32)...", flush=True)
        self.results["generator_ceiling"] = self.generator_ceiling()
        print(f"  {self.results['generator_ceiling']}", flush=True)

        fly = FakeFlyProcess(fly_port, args.fly_latency_ms, log_dir)
        fly.start()
        stack = LiveStack(
            database_url=args.database_url,
            log_dir=log_dir,
            queue=args.queue,
            env=env,
            web_workers=args.web_workers,
            workers=[{"pool": "prefork", "concurrency": args.celery_concurrency}],
        )
        web, worker = stack.webs[0], stack.workers[0]
        self.url, self.web, self.worker = web.url, web, worker
        try:
            users = self.users(64, "creator")
            with celery_app.connection_for_write() as conn:
                conn.default_channel.queue_purge(args.queue)
            web.start()
            # 1. Creates, with no worker consuming: the API's own throughput (the tasks wait in Redis).
            print("Creates (no worker consuming; provisioning waits in the queue)...", flush=True)
            self.results["create_queries"] = self.create_queries(users[0])
            print(f"  queries per create: {self.results['create_queries']['count']}", flush=True)
            self.results["creates"] = self.creates(users)
            self.retire_unprovisioned(args.queue, celery_app)
            worker.start()
            print("POST → running with the instant provider...", flush=True)
            self.results["post_to_running"] = self.post_to_running(users)
            print(f"  {self.results['post_to_running']}", flush=True)
            print("Burst of creates...", flush=True)
            self.results["burst"] = self.burst(users, fly)
            print(f"  {self.results['burst']}", flush=True)
            self.results["memory_after_creates_mb"] = self.memory(web, worker)
            worker.stop()
            print("Seeding rows for listing and the reconciler...", flush=True)
            owners = {n: u for n, u in zip((100, 1000, 10000), self.users(3, "lister"), strict=True)}
            total = 20_000 if self.quick else 100_000
            from workspaces.models import Workspace

            started = time.perf_counter()
            existing = Workspace.objects.count()
            self.seed(owners, self.users(200, "filler"), total - existing)
            self.results["seed_seconds"] = round(time.perf_counter() - started, 1)
            self.results["listing"] = self.listing(owners)
            self.results["memory_mb"] = self.memory(web, None)
            self.results["memory_mb"]["celery"] = self.results["memory_after_creates_mb"]["celery"]
            self.results["reconciler"] = self.reconciler()
        finally:
            stack.stop()
            fly.stop()
            if not args.keep_db:
                from django.db import connections

                connections.close_all()
                drop_database(args.database_url)
        self.results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.results["total_seconds"] = round(time.monotonic() - began, 1)
        return self.results

    def retire_unprovisioned(self, queue: str, celery_app) -> None:
        """The creates of part 1 were never provisioned (no worker ran): drop their messages and
        mark them deleted and destroyed, so that they take no part in what follows."""
        from django.utils import timezone

        from workspaces.models import Workspace

        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
        now = timezone.now()
        Workspace.objects.filter(status="creating").update(deleted_at=now, destroyed_at=now)

    def memory(self, web, worker) -> dict:
        out = {}
        if web is not None:
            master, *workers = process_tree(web.process.pid)
            out["web_master"] = rss_mb([master])[0] if rss_mb([master]) else None
            out["web_workers"] = rss_mb(workers)
        if worker is not None:
            out["celery"] = rss_mb(process_tree(worker.process.pid))
        return out


# --- Output --------------------------------------------------------------------------------------------


def table(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, "
        f"PostgreSQL {m['postgres']}, Redis {m['redis']}; {m['date']} (load {m['load_average_at_start']} → "
        f"{m.get('load_average_at_end')}); commit {m['git_commit']}",
        f"Load generator ceiling (trivial server, c=32): {results['generator_ceiling']['req_per_s']} req/s",
        "",
        f"{'measure':<44} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'queries':>8}",
    ]
    q = results["create_queries"]["count"]
    for c, row in results["creates"].items():
        lines.append(
            f"{'create, concurrency ' + c:<44} {row['req_per_s']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} "
            f"{row['p99_ms']:>8} {q:>8}"
        )
    p = results["post_to_running"]
    lines.append(
        f"{'201 → running (instant provider)':<44} {'':>8} {p['p50_ms']:>8} {p['p95_ms']:>8} {p['p99_ms']:>8}"
    )
    for name, row in results["listing"].items():
        lines.append(
            f"{'GET /workspaces, ' + name.replace('_', ' '):<44} {row['req_per_s']:>8} {row['p50_ms']:>8} "
            f"{row['p95_ms']:>8} {row['p99_ms']:>8} {row['queries']:>8}"
        )
    b = results["burst"]
    lines += [
        "",
        f"Burst: {b['created_201']}/{b['creates']} created in {b['create_seconds']} s; {b['running']} running after "
        f"{b['all_running_seconds']} s; duplicate machines {b['duplicate_machines']}, duplicate volumes "
        f"{b['duplicate_volumes']}, machines not matching their row {b['machines_not_matching_their_row']}",
    ]
    r = results["reconciler"]
    lines.append(
        f"Reconciler over {r['workspace_rows']} rows: "
        + ", ".join(f"{x['seconds']} s / {x['queries']} queries" for x in r["passes"])
    )
    mem = results["memory_mb"]
    lines.append(
        f"RSS (MB): web master {mem['web_master']}, web workers {mem['web_workers']}, celery {mem['celery']}"
    )
    lines.append(f"Total time: {results['total_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results = Bench(args).run()
    print()
    print(table(results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nWritten: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
