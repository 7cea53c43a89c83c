"""The four roles started side by side on one machine, each in a process of its own, with
no config file of the test's: `junction api`, `junction produce`, `junction consume` and
`junction analytics` all come up, each with its admin on a port of its own (run 8000, api
8001, produce 8002, consume 8003, analytics 8004; README, "Running").

These are fixed ports, the defaults under test, so this file must not run beside
another junction on them: ctest runs the e2e files one at a time (RUN_SERIAL), and a
port already taken (a `tools/run` of someone's) fails the test at once, naming the
ports, rather than letting it pass untested. Kafka and Redis are the real ones of tools/services; the consumer joins a group
of its own and reads only what arrives after it joined, so nobody else's pipeline is
disturbed."""
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from junction_test import BINARY, BROKER, REDIS_HOST, REDIS_PORT, ROOT, request, wait_until

ADMIN = {"api": 8001, "produce": 8002, "consume": 8003, "analytics": 8004}
# What else the roles listen on by default: the mock APIs and the receiver.
DATA = {"api": (8081, 8082), "analytics": (8083,)}
ROLES = ("api", "analytics", "consume", "produce")  # servers first, as a person would


@pytest.fixture(scope="module", autouse=True)
def services_up():
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)


def port_taken(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def role_env():
    """The test's environment without anything that would configure junction (so only
    its defaults and the config file, if any, speak), plus where Kafka and Redis are and
    a consumer group of the test's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUNCTION_", "KAFKA_", "REDIS_")) and k != "ANALYTICS_URL"}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": BROKER,
        "REDIS_HOST": REDIS_HOST,
        "REDIS_PORT": REDIS_PORT,
        "JUNCTION_GROUP_ID": "side-by-side-" + uuid.uuid4().hex[:8],
        # Only what arrives from now on: the default topics hold other runs' records.
        # (No changelog topic per group either: tools/services creates customer_data
        # compacted, and examples/local.lua's changelog "auto" then reads it.)
        "JUNCTION_AUTO_OFFSET_RESET": "latest",
    })
    return env


def up(role):
    """Whether the role's admin says it can do its work: /readyz for the two that wait
    for Kafka (and Redis), /healthz for the servers, whose data ports must answer too."""
    try:
        path = "/readyz" if role in ("produce", "consume") else "/healthz"
        if request(f"http://127.0.0.1:{ADMIN[role]}{path}", timeout=2).status != 200:
            return False
        for port in DATA.get(role, ()):
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        return True
    except OSError:
        return False


@pytest.mark.parametrize("where", ["repository", "no_file"])
def test_four_roles_side_by_side_with_the_default_config(tmp_path, where):
    """From the repository root the roles read examples/local.lua (what `build/junction
    api` does for a person); from a folder without it, the copy that came with junction
    (the source tree's, for a binary in its build tree; an install's under
    share/junction)."""
    taken = [p for p in list(ADMIN.values()) + [8081, 8082, 8083] if port_taken(p)]
    if taken:
        pytest.fail(f"ports {taken} are taken by another process; this test needs the default "
                    f"ports free (stop whatever listens there and run it again)")
    if where == "repository":
        cwd = ROOT
        config = "config: examples/local.lua"
    else:
        cwd = str(tmp_path / "cwd")
        os.mkdir(cwd)
        config = "config: " + os.path.join(os.path.realpath(ROOT), "examples", "local.lua")
    env = role_env()
    procs, logs = {}, {}
    try:
        for role in ROLES:
            logs[role] = str(tmp_path / f"{role}.log")
            with open(logs[role], "w") as out:
                procs[role] = subprocess.Popen([BINARY, role], cwd=cwd, env=env, stdout=out,
                                               stderr=subprocess.STDOUT)

        def show(role):
            with open(logs[role]) as f:
                return f"--- junction {role} ---\n{f.read()}"

        deadline = time.time() + 60
        for role in ROLES:
            came_up = wait_until(lambda: procs[role].poll() is not None or up(role),
                               max(1, deadline - time.time()))
            assert procs[role].poll() is None, \
                f"junction {role} exited with {procs[role].returncode}:\n{show(role)}"
            assert came_up and up(role), f"junction {role} did not come up:\n{show(role)}"
        # All four still run, each says what it is, and none borrowed another's admin.
        for role in ROLES:
            assert procs[role].poll() is None, show(role)
            status = request(f"http://127.0.0.1:{ADMIN[role]}/api/status").json()
            present = {k for k in ("api", "producer", "consumer", "analytics") if k in status}
            want = {"api": "api", "produce": "producer", "consume": "consumer",
                    "analytics": "analytics"}[role]
            assert present == {want}, (role, present)
            assert config in open(logs[role]).read(), show(role)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {}
        for role, p in procs.items():
            try:
                codes[role] = p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[role] = p.wait()
    assert codes == {role: 0 for role in ROLES}, codes
