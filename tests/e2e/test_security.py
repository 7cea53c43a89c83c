"""End-to-end tests of junction against a secured Kafka: the SASL_SSL listener
tools/services runs beside the plain one (TLS with a certificate of its own test CA,
SCRAM-SHA-512 logins; the CA, user and password in .services/kafka/secure/). The seed
pipeline runs through it with the credentials read from files; a wrong password and a
certificate nobody trusts each give one line naming the cause, at start-up for
`junction run`, and for `junction consume` an unready /readyz with the reason while
librdkafka retries. No log, status page or error any test kept holds the password."""
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BINARY, BROKER, ROOT, junction_env, redis_cli, request
from test_run import config, summary

SECURE_DIR = os.path.join(ROOT, ".services", "kafka", "secure")
SECURE = os.environ.get("KAFKA_SECURE_BOOTSTRAP") or "127.0.0.1:%s" % (
    os.environ.get("KAFKA_SECURE_PORT") or int(BROKER.rsplit(":", 1)[1]) + 2)
WRONG_PASSWORD = "not-the-password-" + uuid.uuid4().hex[:8]


def secure_file(name):
    return os.path.join(SECURE_DIR, name)


def read(path):
    with open(path) as f:
        return f.read().strip()


@pytest.fixture(scope="module", autouse=True)
def secure_kafka():
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    if not os.path.exists(secure_file("client.properties")):
        pytest.fail(f"no {SECURE_DIR}/: this checkout's tools/services did not start the broker "
                    "(one of another checkout answers); `tools/services restart-kafka` does")
    p = subprocess.run(["kcat", "-F", secure_file("client.properties"), "-b", SECURE, "-L",
                        "-m", "10"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        pytest.fail(f"the SASL_SSL listener {SECURE} does not take {SECURE_DIR}/'s login (a "
                    "broker started before it existed? `tools/services restart-kafka`):\n"
                    + p.stderr[-2000:])


@pytest.fixture
def secrets_never_logged(tmp_path):
    """Every file the test leaves in tmp_path (junction's logs, the outputs kept) is read
    afterwards: neither password may appear in any."""
    yield
    password = read(secure_file("password"))
    for dirpath, _, files in os.walk(tmp_path):
        for name in files:
            if not name.endswith((".log", ".out")):
                continue
            with open(os.path.join(dirpath, name), errors="replace") as f:
                text = f.read()
            assert password not in text, f"the SASL password is in {name}"
            assert WRONG_PASSWORD not in text, f"the wrong password is in {name}"


def secure_kafka_config(ca=None):
    """The Kafka part of a config for the secure listener: the user from its file, the CA
    from its file (or `ca`); the password is left to KAFKA_SASL_PASSWORD_FILE."""
    return {"kafka": {"brokers": SECURE,
                      "security_protocol": "SASL_SSL",
                      "sasl": {"mechanism": "SCRAM-SHA-512",
                               "username": {"file": secure_file("user")}},
                      "ssl": {"ca_file": ca or secure_file("ca.pem")}}}


def password_env(tmp_path, wrong=False):
    path = secure_file("password")
    if wrong:
        path = str(tmp_path / "wrong-password")
        with open(path, "w") as f:
            f.write(WRONG_PASSWORD + "\n")
    return {"KAFKA_SASL_PASSWORD_FILE": path}


def untrusted_ca(tmp_path):
    """A CA of the test's own, which never signed the broker's certificate."""
    key, pem = str(tmp_path / "other-ca.key"), str(tmp_path / "other-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=a CA the broker never heard of", "-keyout", key, "-out", pem],
                   check=True, capture_output=True, timeout=60)
    return pem


def run(make_junction, tmp_path, overrides, env, args=("--until-idle",), timeout=120):
    """One `junction run` to completion; its outputs are kept for secrets_never_logged."""
    j = make_junction(config(overrides), start=False, command="run")
    started = time.time()
    p = subprocess.run([BINARY, "run", "--config", j.config, *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout, env=junction_env(env))
    tag = uuid.uuid4().hex[:6]
    for name, text in (("stdout", p.stdout), ("stderr", p.stderr)):
        with open(tmp_path / f"run-{tag}.{name}.out", "w") as f:
            f.write(text)
    return p.returncode, p.stdout, p.stderr, time.time() - started


def test_the_seed_pipeline_over_sasl_ssl_delivers_1000_customers(secrets_never_logged,
                                                                  make_junction, tmp_path):
    redis_cli("FLUSHALL")
    rc, out, err, secs = run(make_junction, tmp_path, secure_kafka_config(),
                             password_env(tmp_path))
    assert rc == 0, err[-3000:]
    s = summary(out)
    assert s["merged"] == 1000 and s["delivered"] == 1000 and s["lost"] == 0, (s, err[-3000:])
    assert s["published"] == 1010 and s["dead_lettered"] == 0, s
    assert "_AUTHENTICATION" not in err and "SSL handshake failed" not in err, err[-3000:]


def one_line_naming(err, *words):
    lines = [line for line in err.splitlines() if line.startswith("junction: kafka: ")]
    assert len(lines) == 1, err[-3000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_run_with_a_wrong_password_exits_naming_the_login(secrets_never_logged, make_junction,
                                                          tmp_path):
    rc, out, err, secs = run(make_junction, tmp_path, secure_kafka_config(),
                             password_env(tmp_path, wrong=True))
    assert rc != 0 and out == "", (rc, out, err[-3000:])
    one_line_naming(err, f"the brokers at {SECURE} refuse", "SASL authentication error",
                    "Authentication failed", "kafka.sasl.password")
    assert secs < 30, secs
    # Refused before any role started: nothing to undo.
    assert "starting run" not in err, err


def test_run_with_an_untrusted_certificate_exits_naming_it(secrets_never_logged, make_junction,
                                                           tmp_path):
    rc, out, err, secs = run(make_junction, tmp_path, secure_kafka_config(untrusted_ca(tmp_path)),
                             password_env(tmp_path))
    assert rc != 0 and out == "", (rc, out, err[-3000:])
    one_line_naming(err, f"the brokers at {SECURE} refuse", "certificate verify failed",
                    "kafka.ssl.ca_file")
    assert secs < 30, secs
    assert "starting run" not in err, err


@pytest.mark.parametrize("case", ["wrong password", "untrusted certificate"])
def test_consume_stays_unready_and_says_why_while_retrying(secrets_never_logged, make_junction,
                                                           tmp_path, case):
    wrong = case == "wrong password"
    tag = uuid.uuid4().hex[:8]
    cfg = secure_kafka_config(None if wrong else untrusted_ca(tmp_path))
    cfg["consumer"] = {"group_id": f"group_{tag}", "customer_topic": f"customer_data_{tag}",
                       "product_topic": f"inventory_data_{tag}",
                       "dead_letter_topic": f"dead_letter_{tag}"}
    # librdkafka's own debug lines too, where a careless one could echo a setting.
    cfg["kafka"]["properties"] = {"debug": "security,broker,conf"}
    c = make_junction(cfg, env=dict(password_env(tmp_path, wrong=wrong),
                                    JUNCTION_LOG_LEVEL="debug"), command="consume")
    cause = "SASL authentication error" if wrong else "certificate verify failed"
    deadline = time.time() + 20
    ready = None
    while time.time() < deadline:
        ready = request(c.admin + "/readyz")
        if ready.status == 503 and cause in ready.json()["reason"]:
            break
        time.sleep(0.2)
    assert ready.status == 503, (ready.status, ready.body, c.logs()[-3000:])
    reason = ready.json()["reason"]
    assert cause in reason and "Kafka refuses the connection" in reason, reason
    assert ("kafka.sasl.password" if wrong else "kafka.ssl.ca_file") in reason, reason
    # Logged, and tried again: librdkafka reconnects with a growing backoff (its debug
    # lines show each attempt; it leaves out a refusal identical to the last one, so the
    # warnings may be fewer than the attempts).
    attempt = f"Connecting to ipv4#{SECURE}"
    deadline = time.time() + 20
    while time.time() < deadline and c.logs().count(attempt) < 3:
        time.sleep(0.2)
    assert c.logs().count(attempt) >= 3, c.logs()[-3000:]
    warned = [line for line in c.logs().splitlines() if " warn " in line and cause in line]
    assert warned, c.logs()[-3000:]
    # Still not ready, still saying why; the status pages hold no secret either.
    assert request(c.admin + "/readyz").status == 503
    for page in ("/api/status", "/metrics", "/readyz"):
        body = request(c.admin + page).body.decode()
        with open(tmp_path / f"page-{page.strip('/').replace('/', '-')}-{tag}.out", "w") as f:
            f.write(body)
    assert c.stop(signal.SIGTERM) == 0, c.logs()[-3000:]


def test_help_config_lists_the_kafka_connection_keys():
    p = subprocess.run([BINARY, "--help-config"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    for key in ("kafka.properties", "KAFKA_PROPERTY_<NAME>", "kafka.security_protocol",
                "kafka.sasl.mechanism", "kafka.sasl.username", "kafka.sasl.password",
                "KAFKA_SASL_PASSWORD[_FILE]", "kafka.ssl.ca_file", "kafka.ssl.cert_file",
                "kafka.ssl.key_file", "kafka.ssl.key_password"):
        assert key in p.stdout, key
