"""Fixtures for end-to-end tests: each test starts the real build/junction binary on
free loopback ports with its own config and scripts, and talks to it over sockets. The
helpers themselves are tests/support/junction_test.py, shared with tests/chaos and
tests/containers."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from junction_test import Junctions, free_port, wait_until  # noqa: E402


@pytest.fixture
def make_junction(tmp_path):
    junctions = Junctions(tmp_path)
    yield junctions
    junctions.close()


@pytest.fixture
def junction(make_junction):
    return make_junction()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own, with a password for the default user and an ACL
    user that may only check and mark keys under processed:*."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    assert wait_until(lambda: subprocess.run(cli + ["PING"], capture_output=True,
                                             text=True).stdout.strip() == "PONG", 10)
    subprocess.run(cli + ["ACL", "SETUSER", "marker", "on", ">m4rker-pass", "resetkeys",
                          "~processed:*", "-@all", "+exists", "+mget", "+set"], check=True,
                   capture_output=True)
    subprocess.run(cli + ["CONFIG", "SET", "requirepass", "d3fault-pass"], check=True,
                   capture_output=True)
    yield port, cli + ["--no-auth-warning", "-a", "d3fault-pass"]
    proc.kill()
    proc.wait()
