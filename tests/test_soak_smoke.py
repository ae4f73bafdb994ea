"""The echo soak (benchmarks/soak) runs briefly against a server on the engine under test.

The long runs are in benchmarks/soak/README.md; here 50 connections for 3 seconds still
exercise every mode (the client's seed fixes the first 50 connections' modes, and every
one of those runs its plan to the end: drops, resets and pauses happen at planned
stream offsets, and a CANCEL connection ends only by the server's cancellation), and
every byte echoed is checked by the client.
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import threading

RUNNER = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "soak" / "run.py"


def test_soak_with_50_connections_checks_every_stream_and_returns_every_fd(
    engine: str, tmp_path: pathlib.Path
) -> None:
    summary_file = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--engine", engine, "--connections", "50",
         "--duration", "3", "--sample-seconds", "0.5", "--drain-seconds", "15",
         "--fd-settle-seconds", "15", "--json", str(summary_file)],
        capture_output=True,
        text=True,
        timeout=55,  # a hang guard below pytest's 60 s; a healthy run takes ~6 s
    )
    assert summary_file.exists(), proc.stdout + proc.stderr
    summary = json.loads(summary_file.read_text())
    report = proc.stdout + proc.stderr
    assert summary["errors"] == 0, report
    assert proc.returncode == 0, report
    assert summary["engine"] == engine
    assert summary["server"]["engine"] == engine  # the server really ran on it
    assert summary["fds_after"] == summary["fds_baseline"], report
    assert summary["fds_peak"] > summary["fds_baseline"], report  # connections were open
    client, server = summary["client"], summary["server"]
    assert summary["bytes_checked"] > 0
    # Every connection ended by design; each mode was exercised.
    assert summary["connections_completed"] == summary["connections_opened"] >= 50
    assert all(client["started"][mode] >= 1 for mode in client["started"]), report
    assert client["completed"] == client["started"], report
    assert client["resets"] >= 1 and client["drops"] >= 1 and client["pauses"] >= 1, report
    assert server["outcomes"].get("cancelled", 0) == client["completed"]["cancel"], report
    assert server["accepted"] == summary["connections_opened"], report
    assert summary["cross_check"]["mismatches"] == 0, report


def _corrupting_echo_server(stop: threading.Event) -> tuple[int, threading.Thread]:
    """A stdlib echo server speaking the soak's header protocol that flips the bits of
    stream byte 100 of every connection: what a lost or altered byte looks like."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def serve_one(conn: socket.socket) -> None:
        with conn:
            header = b""
            offset = 0
            try:
                while len(header) < 16:
                    chunk = conn.recv(16 - len(header))
                    if not chunk:
                        return
                    header += chunk
                while not stop.is_set():
                    data = bytearray(conn.recv(65536))
                    if not data:
                        return
                    if offset <= 100 < offset + len(data):
                        data[100 - offset] ^= 0xFF
                    offset += len(data)
                    conn.sendall(data)
            except OSError:
                return

    def accept_loop() -> None:
        with listener:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.settimeout(5)  # a client that stops reading cannot keep it forever
                threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop)
    thread.start()
    return listener.getsockname()[1], thread


def test_soak_client_reports_an_echo_that_differs_from_its_stream(
    tmp_path: pathlib.Path,
) -> None:
    # The checker itself: against a server that alters one byte, the client must fail
    # and say where.
    stop = threading.Event()
    port, thread = _corrupting_echo_server(stop)
    try:
        proc = subprocess.run(
            [sys.executable, str(RUNNER.parent / "client.py"), "--port", str(port),
             "--connections", "10", "--duration", "1", "--drain-seconds", "3",
             "--records", str(tmp_path / "records.json")],
            capture_output=True,
            text=True,
            timeout=40,
        )
    finally:
        stop.set()
        thread.join(10)
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert summary["errors"] >= 1
    assert any("echo differs from the stream at offset 100 " in e
               for e in summary["error_samples"]), summary["error_samples"]
