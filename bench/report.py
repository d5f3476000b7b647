"""A Markdown before/after table of two ``bench/results/*.json`` files, for docs/benchmarks.md.

python -m bench.report bench/results/before.json bench/results/reference.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(r: dict) -> dict[str, tuple[str, str]]:
    """measure -> (value, target) for one run."""
    out: dict[str, tuple[str, str]] = {}
    q = r["create_queries"]["count"]
    out["SQL statements per create"] = (str(q), "≤ 6")
    for c, x in r["creates"].items():
        cpu = x.get("web_cpu_ms_per_request")
        cpu_text = f"; web CPU {cpu} ms/req" if cpu is not None else ""
        target = {"1": "p50 < 10 ms, p99 < 25 ms", "32": "≥ 250 req/s"}.get(c, "")
        out[f"Create, concurrency {c}"] = (
            f"{x['req_per_s']} req/s; p50 {x['p50_ms']} / p95 {x['p95_ms']} / p99 {x['p99_ms']} ms{cpu_text}",
            target,
        )
    p = r["post_to_running"]
    out["201 → running (instant provider)"] = (
        f"p50 {p['p50_ms']} / p95 {p['p95_ms']} ms ({p['running']}/{p['creates']} running)",
        "p50 < 150 ms, p95 < 500 ms",
    )
    b = r["burst"]
    cpu = b.get("cpu_ms_per_workspace")
    cpu_text = f"; CPU per workspace {cpu}" if cpu else ""
    out["Burst of 1,000 creates"] = (
        f"created in {b['create_seconds']} s, all {b['running']} running after {b['all_running_seconds']} s; "
        f"duplicate machines {b['duplicate_machines']}, duplicate volumes {b['duplicate_volumes']}{cpu_text}",
        "all running < 30 s, 0 duplicates",
    )
    for name, x in r["listing"].items():
        rows_, _, _, limit = name.split("_", 3)
        target = "p95 < 100 ms, same queries as 100" if rows_ == "10000" and limit == "limit_100" else ""
        cpu = x.get("web_cpu_ms_per_request")
        cpu_text = f"; web CPU {cpu} ms/req" if cpu is not None else ""
        out[f"GET /workspaces, {int(rows_):,} workspaces, {limit.replace('_', '=')}"] = (
            f"p50 {x['p50_ms']} / p95 {x['p95_ms']} ms; {x['queries']} queries{cpu_text}",
            target,
        )
    rec = r["reconciler"]
    out[f"Reconciler pass, {rec['workspace_rows']:,} rows"] = (
        ", ".join(f"{x['seconds']} s ({x['queries']} queries)" for x in rec["passes"]),
        "< 2 s",
    )
    m = r["memory_mb"]
    out["RSS after the runs (MB)"] = (
        f"web workers {m['web_workers']}, web master {m['web_master']}, Celery {m['celery']}",
        "",
    )
    out["Load generator ceiling (trivial server, c=32)"] = (
        f"{r['generator_ceiling']['req_per_s']} req/s",
        "",
    )
    return out


def machine(r: dict) -> str:
    m = r["machine"]
    return (
        f"{m['date']}: {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"PostgreSQL {m['postgres']}, Redis {m['redis']}, commit {m['git_commit']}; load average "
        f"{m['load_average_at_start']} at the start, {m.get('load_average_at_end')} at the end; "
        f"{r['total_seconds']} s in all"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="the earlier run (e.g. bench/results/before.json)")
    parser.add_argument("after", type=Path, help="the later run (e.g. bench/results/reference.json)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    before, after = (json.loads(path.read_text()) for path in (args.before, args.after))
    b, a = rows(before), rows(after)
    print(f"Before: {machine(before)}.  \nAfter: {machine(after)}.\n")
    print("| measure | target | before | after |")
    print("|---|---|---|---|")
    for key in a:
        print(f"| {key} | {a[key][1]} | {b.get(key, ('—', ''))[0]} | {a[key][0]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
