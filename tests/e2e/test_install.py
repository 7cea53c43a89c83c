"""`cmake --install` of this build into a temporary prefix, then the installed
`bin/junction run --until-idle` started from a folder that holds nothing of junction's,
against the real Kafka and Redis from tools/services: the binary must find its stock
scripts under the prefix (share/junction/scripts), not in the working directory or the
source tree. The config gives ports, topics, group and a Redis database of the test's
own, and no script path at all: the defaults ("scripts/crm.lua", ...) must resolve."""
import filecmp
import os
import random
import re
import subprocess

import pytest

from junction_test import BINARY, BROKER, REDIS_HOST, REDIS_PORT, ROOT, free_port, junction_env, \
    lua_value, redis_cli

SUMMARY = re.compile(r"published=(\d+) duplicates=(\d+) merged=(\d+) delivered=(\d+) "
                     r"dead_lettered=(\d+) lost=(\d+) seconds=\d+(?:\.\d+)?")


@pytest.fixture(scope="module", autouse=True)
def services_up():
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The build of the binary under test, installed into a fresh prefix."""
    where = tmp_path_factory.mktemp("prefix")
    p = subprocess.run(["cmake", "--install", os.path.dirname(BINARY), "--prefix", str(where)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return str(where)


def test_install_puts_the_binary_scripts_and_examples_in_standard_places(prefix):
    assert os.access(os.path.join(prefix, "bin", "junction"), os.X_OK)
    share = os.path.join(prefix, "share", "junction")
    for folder in ("scripts", "examples", os.path.join("examples", "transforms")):
        names = sorted(os.listdir(os.path.join(ROOT, folder)))
        names = [n for n in names if os.path.isfile(os.path.join(ROOT, folder, n))]
        assert names, folder
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(ROOT, folder),
                                                   os.path.join(share, folder), names,
                                                   shallow=False)
        assert not mismatch and not errors, (folder, mismatch, errors)


def test_installed_run_until_idle_works_from_another_directory(prefix, tmp_path):
    cwd = tmp_path / "elsewhere"  # holds the config only: no scripts/, no examples/
    cwd.mkdir()
    tag = f"install_{random.randrange(1 << 32):08x}"
    db = random.randint(1, 15)  # a database of its own on the shared Redis
    redis_cli("-n", str(db), "FLUSHDB")
    ports = set()
    while len(ports) < 4:  # free_port closes its socket: two calls may return one port
        ports.add(free_port())
    crm, inv, ana, admin = sorted(ports)
    cfg = {
        "admin": {"listen": f"127.0.0.1:{admin}"},
        "analytics": {"listen": f"127.0.0.1:{ana}"},
        # Scripts by the relative paths examples/local.lua gives them: found under the
        # prefix, as no scripts/ is beside the config.
        "apis": {"crm": {"listen": f"127.0.0.1:{crm}", "script": "scripts/crm.lua"},
                 "inventory": {"listen": f"127.0.0.1:{inv}",
                               "script": "scripts/inventory.lua"}},
        "producer": {"poll_interval_ms": 200},
        "sources": {"crm": {"url": f"http://127.0.0.1:{crm}/customers",
                            "topic": f"customer_data_{tag}",
                            "script": "scripts/map_customers.lua"},
                    "inventory": {"url": f"http://127.0.0.1:{inv}/products",
                                  "topic": f"inventory_data_{tag}",
                                  "script": "scripts/map_products.lua"}},
        "consumer": {"dead_letter_topic": f"dead_letter_{tag}", "hold_ms": 1000},
        "pipelines": {"default": {
            "group_id": f"group_{tag}", "transform": "scripts/join.lua",
            "streams": {"customers": {"topic": f"customer_data_{tag}", "changelog": "auto"}},
            "tables": {"products": f"inventory_data_{tag}"},
            "sinks": {"analytics": {"type": "http",
                                    "url": f"http://127.0.0.1:{ana}/analytics"}}}},
        "kafka": {"brokers": BROKER},
        "redis": {"host": REDIS_HOST, "port": int(REDIS_PORT), "db": db},
    }
    (cwd / "config.lua").write_text("return " + lua_value(cfg) + "\n")
    p = subprocess.run([os.path.join(prefix, "bin", "junction"), "run", "--until-idle",
                        "--config", "config.lua"], cwd=str(cwd), capture_output=True,
                       text=True, timeout=120, env=junction_env())
    redis_cli("-n", str(db), "FLUSHDB")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert len(lines) == 1, p.stdout
    m = SUMMARY.fullmatch(lines[0])
    assert m, lines[0]
    _, _, merged, delivered, dead, lost = map(int, m.groups())
    assert merged >= delivered == 1000 and lost == 0 and dead == 0, (lines[0], p.stderr[-3000:])
    # Every script came from the prefix: the defaults, the map scripts and the join.
    scripts = os.path.join(os.path.realpath(prefix), "share", "junction", "scripts")
    for name in ("crm", "inventory", "join", "map_customers", "map_products"):
        assert f"from {scripts}/{name}.lua" in p.stderr, (name, p.stderr[-3000:])
    assert os.listdir(cwd) == ["config.lua"]
