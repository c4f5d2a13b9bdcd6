"""The loopback Hub of tests/hub_server.py binds 127.0.0.1 only and stops on its own."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from hub_server import HubServer


def test_server_binds_loopback_and_stops_after_time_limit() -> None:
    server = HubServer(time_limit=1.0).start()
    try:
        assert server.address is not None
        host, port = server.address
        assert host == "127.0.0.1" and server.url == f"http://127.0.0.1:{port}"
        connection = http.client.HTTPConnection(host, port, timeout=5)
        connection.request("GET", "/api/models/tester/none")
        response = connection.getresponse()
        assert response.status == 404 and response.getheader("X-Error-Code") == "RepoNotFound"
        assert "not found" in json.loads(response.read())["error"]
        connection.close()

        started = time.monotonic()
        assert server.stopped.wait(timeout=15), "server ignored its time limit"
        assert time.monotonic() - started < 10
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=2).close()
    finally:
        server.stop()


def test_server_stops_at_context_exit() -> None:
    with HubServer(time_limit=60) as server:
        host, port = server.address or ("", 0)
        socket.create_connection((host, port), timeout=2).close()
    assert server.stopped.is_set()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()
