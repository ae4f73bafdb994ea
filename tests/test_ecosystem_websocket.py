"""trio-websocket 0.12, unchanged, on vivace installed as trio (issue 10): a
``serve_websocket`` echo server and ``open_websocket_url`` clients in one run
(tests/ecosystem/prog_websocket.py)."""

from __future__ import annotations

from _ecosystem import run_program


def test_echo_text_and_bytes_then_clean_close() -> None:
    run_program("prog_websocket.py", "echo")


def test_ping_server_initiated_close_and_rejected_handshake() -> None:
    run_program("prog_websocket.py", "server_close")
