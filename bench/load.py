"""The load generator: a process of its own, so that the server's CPU time and ours never mix.

It reads one job (JSON) on stdin and writes its results (JSON) on stdout. No Django, no httpx: plain
``http.client`` on threads, one connection per thread (re-opened when the server closes it, as
gunicorn's sync workers do after every answer), so that the generator's own cost per request stays
far below the server's. ``python -m bench.load trivial --port N`` serves a fixed answer instead, to
measure the generator's own ceiling (``bench/run.py`` does that first and records it).

A job::

    {"url": "http://127.0.0.1:8000", "concurrency": 32, "count": 1000,
     "requests": [{"method": "POST", "path": "/projects/<id>/workspaces", "token": "wsk_...",
                   "body": {...}}, ...],
     "pause": 0.0}

Thread ``k`` sends ``requests[k % len(requests)]`` (each thread its own user, say) until ``count``
requests have been sent in all. Each result row: [sent (epoch s), latency (s), status, id or null].
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def run(job: dict) -> dict:
    parts = urlsplit(job["url"])
    host, port = parts.hostname, parts.port or 80
    templates = job["requests"]
    concurrency = int(job["concurrency"])
    count = int(job["count"])
    pause = float(job.get("pause", 0))
    results: list[list] = []
    lock = threading.Lock()
    issued = [0]
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)

    def encode(template: dict) -> tuple[str, str, bytes | None, dict[str, str]]:
        headers = {"Authorization": f"Bearer {template['token']}", "Accept": "application/json"}
        body = None
        if template.get("body") is not None:
            body = json.dumps(template["body"]).encode()
            headers["Content-Type"] = "application/json"
        return template.get("method", "GET"), template["path"], body, headers

    prepared = [encode(t) for t in templates]

    def worker(index: int) -> None:
        method, path, body, headers = prepared[index % len(prepared)]
        connection = http.client.HTTPConnection(host, port, timeout=60)
        mine = []
        start.wait()
        while True:
            with lock:
                if issued[0] >= count:
                    break
                issued[0] += 1
            sent_wall, sent = time.time(), time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                latency = time.perf_counter() - sent
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                mine.append([sent_wall, time.perf_counter() - sent, 0, None])
                continue
            ident = None
            if response.status == 201:
                try:
                    ident = json.loads(data).get("id")
                except ValueError:
                    pass
            mine.append([sent_wall, latency, response.status, ident])
            if pause:
                time.sleep(pause)
        connection.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    results.sort(key=lambda row: row[0])
    return {"elapsed": elapsed, "results": results, "errors": errors[:20], "error_count": len(errors)}


def serve_trivial(port: int) -> None:
    """A fixed 201 answer and a closed connection, as fast as Python serves: the generator's ceiling."""
    answer = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
        b'Connection: close\r\n\r\n{"id": null}\n'
    )
    server = socket.create_server(("127.0.0.1", port), backlog=1024)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Read one load job (JSON) on stdin, send its requests, write the results (JSON) on "
        "stdout; or, with 'trivial', serve a fixed answer to measure the generator's own ceiling.",
    )
    parser.add_argument("mode", nargs="?", choices=["trivial"], help="serve a fixed 201 answer instead")
    parser.add_argument("--port", type=int, help="with 'trivial': the loopback port to serve on")
    args = parser.parse_args(argv)
    if args.mode == "trivial" and args.port is None:
        parser.error("trivial needs --port")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.mode == "trivial":
        serve_trivial(args.port)
        return 0
    json.dump(run(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
