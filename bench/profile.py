"""Profile one endpoint in-process, on a benchmark database of its own, with the benchmark's settings.

    python -m bench.profile create [--n 300]     # POST /projects/{id}/workspaces
    python -m bench.profile list [--rows 10000]  # GET /workspaces?limit=100

Prints the SQL of one request and the top of a cProfile of ``n`` requests (by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

from bench.run import CREATE_BODY, parse_args, recreate_database, stack_environment, with_db


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("what", choices=["create", "list", "reconciler", "endpoints"])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--plain", action="store_true", help="no profiler: just time and CPU per request")
    parser.add_argument("--callers", help="also print who calls the functions matching this regex")
    parser.add_argument(
        "--wall", action="store_true", help="profile wall time (default: this process's CPU time)"
    )
    own = parser.parse_args(argv)
    args = parse_args([])
    args.database_url = with_db(args.database_url, "workspaces_bench_profile")
    recreate_database(args.database_url)
    os.environ.update(stack_environment(args, 1))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.run import Bench

    call_command("migrate", verbosity=0)
    try:
        bench = Bench(args)
        (user,) = bench.users(1, "profile")
        client = Client()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {user['token']}"}
        if own.what == "create":
            path = f"/projects/{user['project'].pk}/workspaces"

            def request():
                answer = client.post(path, CREATE_BODY, content_type="application/json", **headers)
                assert answer.status_code == 201, answer.content
        elif own.what == "endpoints":
            # What the framework costs before our work: CPU per request of cheaper endpoints beside a create.
            project_path = f"/projects/{user['project'].pk}"
            cases = {
                "GET /nope (404, no token)": lambda: client.get("/nope"),
                "GET /profile": lambda: client.get("/profile", **headers),
                "GET /projects/{id}": lambda: client.get(project_path, **headers),
                "POST .../workspaces/plan": lambda: client.post(
                    f"{project_path}/workspaces/plan",
                    CREATE_BODY,
                    content_type="application/json",
                    **headers,
                ),
                "POST .../workspaces": lambda: client.post(
                    f"{project_path}/workspaces", CREATE_BODY, content_type="application/json", **headers
                ),
            }
            for name, call in cases.items():
                for _ in range(20):
                    call()
                cpu, started = time.process_time(), time.perf_counter()
                for _ in range(own.n):
                    status = call().status_code
                cpu, wall = (
                    (time.process_time() - cpu) / own.n * 1000,
                    (time.perf_counter() - started) / own.n * 1000,
                )
                print(f"{name:36} {status}  CPU {cpu:6.2f} ms  wall {wall:6.2f} ms")
            return 0
        elif own.what == "reconciler":
            bench.seed({100: user}, bench.users(50, "filler"), own.rows)
            profiler = cProfile.Profile() if own.wall else cProfile.Profile(time.process_time)
            if not own.plain:
                profiler.enable()
            print(bench.reconciler())
            profiler.disable()
            if not own.plain:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(own.top)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return 0
        else:
            bench.seed(
                {own.rows: user}, bench.users(50, "filler"), max(own.rows, 100_000)
            )  # others' rows too
            path = "/workspaces?limit=100"

            def request():
                answer = client.get(path, **headers)
                assert answer.status_code == 200, answer.content

        for _ in range(20):
            request()
        with CaptureQueriesContext(connection) as queries:
            request()
        print(f"{len(queries)} queries:")
        for q in queries:
            print(f"  [{q['time']}s] {q['sql'][:400]}")
        profiler = cProfile.Profile() if own.wall else cProfile.Profile(time.process_time)
        cpu = time.process_time()
        started = time.perf_counter()
        if not own.plain:
            profiler.enable()
        for _ in range(own.n):
            request()
        profiler.disable()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        print(
            f"\n{own.n} requests in {elapsed:.2f} s: {elapsed / own.n * 1000:.2f} ms each, CPU {cpu / own.n * 1000:.2f} ms{'' if own.plain else ' (profiled)'}\n"
        )
        if not own.plain:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(own.top)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            if own.callers:
                pstats.Stats(profiler).sort_stats("cumulative").print_callers(own.callers)
    finally:
        from django.db import connections

        from bench.run import drop_database

        connections.close_all()
        drop_database(args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
