"""hypercorn 0.18's trio worker, unchanged, on vivace installed as trio (issue 10).

A child process (tests/ecosystem/prog_hypercorn.py) serves a tiny ASGI app; this process is
the separate load generator: eight threads, each with one kept-alive ``http.client``
connection, send 40 requests apiece (GETs and POSTs with bodies) and check every response.
Then the test closes the child's standard input, its shutdown trigger: the server must
close the connection left idle, run its lifespan shutdown and exit 0.
"""

from __future__ import annotations

import hashlib
import http.client
import queue
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from _ecosystem import ECOSYSTEM_DIR, HANG_GUARD, assert_ran_on_vivace, child_env

CONNECTIONS = 8
REQUESTS_PER_CONNECTION = 40


def _body(conn_index: int, request_index: int) -> bytes:
    # Deterministic bodies of varied sizes (0 to ~40 kB), distinct per request.
    seed = f"{conn_index}/{request_index}".encode()
    return (hashlib.sha256(seed).digest() * 1250)[: (request_index * 997) % 40_000]


def _exchange(conn: http.client.HTTPConnection, method: str, path: str,
              body: bytes) -> tuple[str, str, bool]:
    conn.request(method, path, body=body if method == "POST" else None)
    response = conn.getresponse()
    payload = response.read()
    assert response.status == 200, (response.status, payload)
    return payload.decode(), response.headers["x-client-port"], response.will_close


def _load(port: int, conn_index: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
    try:
        conn.connect()
        own_port = str(conn.sock.getsockname()[1])
        for i in range(REQUESTS_PER_CONNECTION):
            method = "POST" if i % 2 else "GET"
            body = _body(conn_index, i) if method == "POST" else b""
            path = f"/load/{conn_index}/{i}"
            line, client_port, will_close = _exchange(conn, method, path, body)
            expected = f"{method} {path} {len(body)} {hashlib.sha256(body).hexdigest()} trio"
            assert line == expected, (line, expected)
            # The server saw this very connection, and keeps it open for the next request.
            assert client_port == own_port and not will_close, (client_port, own_port)
        return REQUESTS_PER_CONNECTION
    finally:
        conn.close()


def test_trio_worker_serves_keep_alive_load_and_shuts_down_cleanly(tmp_path) -> None:
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr_file:
        proc = subprocess.Popen(
            [sys.executable, str(ECOSYSTEM_DIR / "prog_hypercorn.py")],
            cwd=ECOSYSTEM_DIR, env=child_env(), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_file,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()

    def report() -> str:
        seen = []
        while not lines.empty():
            seen.append(lines.get() or "<eof>\n")
        return f"\n--- stdout:\n{''.join(seen)}\n--- stderr:\n{stderr_path.read_text()}"

    try:
        try:
            first = lines.get(timeout=HANG_GUARD)
        except queue.Empty:
            raise AssertionError("hang guard: the server never reported its port" + report()) \
                from None
        assert first is not None and first.startswith("port="), f"{first!r}{report()}"
        port = int(first.removeprefix("port="))

        # A connection that makes one request and then stays idle through the shutdown.
        idle = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
        idle.sendall(b"GET /idle HTTP/1.1\r\nHost: test\r\n\r\n")
        idle_reply = b""
        while b"GET /idle 0 " not in idle_reply:
            chunk = idle.recv(65536)
            assert chunk, idle_reply
            idle_reply += chunk
        assert idle_reply.startswith(b"HTTP/1.1 200"), idle_reply

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            answered = sum(pool.map(_load, [port] * CONNECTIONS, range(CONNECTIONS)))
        assert answered == CONNECTIONS * REQUESTS_PER_CONNECTION

        assert proc.stdin is not None
        proc.stdin.close()  # the shutdown trigger
        assert idle.recv(65536) == b"", "the idle connection was not closed at shutdown"
        idle.close()
        returncode = proc.wait(timeout=HANG_GUARD)
        reader.join(timeout=HANG_GUARD)
        rest = []
        while (line := lines.get(timeout=HANG_GUARD)) is not None:
            rest.append(line)
        stdout = first + "".join(rest)
        full_report = f"\n--- stdout:\n{stdout}\n--- stderr:\n{stderr_path.read_text()}"
        assert returncode == 0, full_report
        total = answered + 1
        assert f"served requests={total} lifespan=startup,shutdown\n" in stdout, full_report
        assert_ran_on_vivace(stdout, full_report)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=HANG_GUARD)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
