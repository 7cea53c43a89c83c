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

from junction_test import BINARY, BROKER, ROOT, junction_env, redis_cli, request, wait_until
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
    cfg["consumer"] = {"dead_letter_topic": f"dead_letter_{tag}"}
    cfg["pipelines"] = {"default": {
        "group_id": f"group_{tag}", "streams": {"customers": {"topic": f"customer_data_{tag}"}},
        "tables": {"products": {"topic": f"inventory_data_{tag}"}}}}
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


# ---- everything secured at once --------------------------------------------------------

def make_cert(tmp_path):
    """A CA of the test's own and a server certificate it signed for 127.0.0.1."""
    d = str(tmp_path)
    run_ssl = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True,  # noqa
                                        timeout=60)
    run_ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            "/CN=junction test HTTPS CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    run_ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            f"{d}/srv.key", "-out", f"{d}/srv.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run_ssl("x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.pem", "-CAkey",
            f"{d}/ca.key", "-CAcreateserial", "-days", "1", "-extfile", f"{d}/ext.cnf", "-out",
            f"{d}/srv.pem")
    # A client certificate of the same CA, for a receiver that asks who is calling.
    run_ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=junction sink", "-keyout",
            f"{d}/client.key", "-out", f"{d}/client.csr")
    run_ssl("x509", "-req", "-in", f"{d}/client.csr", "-CA", f"{d}/ca.pem", "-CAkey",
            f"{d}/ca.key", "-CAcreateserial", "-days", "1", "-out", f"{d}/client.pem")
    return f"{d}/ca.pem", f"{d}/srv.pem", f"{d}/srv.key"


def j_scripts():
    return os.path.join(ROOT, "scripts")


class TlsFront:
    """An HTTPS server of the test's own in front of a plain HTTP one: it ends TLS with
    its certificate and passes the bytes on both ways."""

    def __init__(self, cert, key, backend_port, client_ca=None):
        import socket
        import ssl
        import threading
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if client_ca:  # mutual TLS: a client without a certificate of client_ca is refused
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.backend = backend_port
        self.handshakes_failed = 0
        self.threading = threading
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        import ssl
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshakes_failed += 1
                raw.close()
                continue
            back = socket.create_connection(("127.0.0.1", self.backend))
            for a, b in ((conn, back), (back, conn)):
                self.threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_everything_secured_at_once(secrets_never_logged, make_junction, tmp_path,
                                    private_redis):
    """The seed pipeline over the SASL_SSL listener (credentials from files), de-duplicating
    in a Redis that wants an ACL user's password (from a file), delivering to an HTTPS
    analytics endpoint that wants a bearer token (from a file) and a client certificate,
    and whose own certificate only the CA file names: merged=1000 delivered=1000 lost=0."""
    redis_port, redis = private_redis
    ca, cert, key = make_cert(tmp_path)
    token = "analytics-t0ken-" + uuid.uuid4().hex[:8]
    token_file, redis_pass = tmp_path / "analytics-token", tmp_path / "redis-password"
    token_file.write_text(token + "\n")
    redis_pass.write_text("m4rker-pass\n")
    base = config(secure_kafka_config())
    ana_port = int(base["analytics"]["listen"].rsplit(":", 1)[1])
    front = TlsFront(cert, key, ana_port, client_ca=ca)
    c = base["pipelines"]["default"]
    dead = base["consumer"]["dead_letter_topic"]
    base["analytics"]["token"] = {"file": str(token_file)}
    base["redis"] = {"host": "127.0.0.1", "port": redis_port, "username": "marker",
                     "password": {"file": str(redis_pass)}}
    base["pipelines"] = {"default": {
        "group_id": c["group_id"], "dead_letter_topic": dead,
        "hold_ms": 1000, "transform": os.path.join(j_scripts(), "merge.lua"),
        "streams": {"customers": c["streams"]["customers"]["topic"]},
        "tables": {"products": c["tables"]["products"]["topic"]},
        "sinks": {"analytics": {
            "type": "http", "url": f"https://127.0.0.1:{front.port}/analytics",
            "ca_file": ca, "cert_file": str(tmp_path / "client.pem"),
            "key_file": str(tmp_path / "client.key"),
            "headers": {"Authorization": {"file": str(token_file), "prefix": "Bearer "}}}}}}
    try:
        j = make_junction(base, start=False, command="run")
        p = subprocess.run([BINARY, "run", "--config", j.config, "--until-idle"], cwd=ROOT,
                           capture_output=True, text=True, timeout=180,
                           env=junction_env(password_env(tmp_path)))
        with open(tmp_path / "secured-run.out", "w") as f:
            f.write(p.stdout + p.stderr)
        assert p.returncode == 0, p.stderr[-3000:]
        s = summary(p.stdout)
        assert s["merged"] == 1000 and s["delivered"] == 1000 and s["lost"] == 0, \
            (s, p.stderr[-3000:])
        keys = subprocess.run(redis + ["--scan", "--pattern", "processed:*"],
                              capture_output=True, text=True).stdout.split()
        assert len(keys) >= 1000
        for secret_text in (token, "m4rker-pass"):
            assert secret_text not in p.stdout + p.stderr
        assert front.handshakes_failed == 0
    finally:
        front.close()


def test_an_untrusted_sink_certificate_is_one_clear_line_and_loses_nothing(
        secrets_never_logged, make_junction, tmp_path):
    """The HTTPS analytics endpoint's certificate is signed by a CA the sink was not given:
    nothing is delivered, the reason is logged once per outage with the key to set, and
    nothing is dead-lettered (the records wait for the sink)."""
    ca, cert, key = make_cert(tmp_path)
    base = config()
    ana_port = int(base["analytics"]["listen"].rsplit(":", 1)[1])
    front = TlsFront(cert, key, ana_port)
    c = base["pipelines"]["default"]
    dead = base["consumer"]["dead_letter_topic"]
    base["pipelines"] = {"default": {
        "group_id": c["group_id"], "dead_letter_topic": dead,
        "transform": os.path.join(j_scripts(), "merge.lua"),
        "dedupe": {"prefix": f"processed:{c['group_id']}:"},
        "streams": {"customers": c["streams"]["customers"]["topic"]},
        "tables": {"products": c["tables"]["products"]["topic"]},
        "sinks": {"analytics": {"type": "http",
                                "url": f"https://127.0.0.1:{front.port}/analytics",
                                "retry_max_ms": 500}}}}
    try:
        j = make_junction(base, command="run")
        # Said once, however many handshakes fail: wait for a few of them.
        assert wait_until(lambda: "certificate" in j.logs() and front.handshakes_failed >= 3, 60), \
            (front.handshakes_failed, j.logs()[-3000:])
        logs = j.logs()
        lines = [line for line in logs.splitlines() if "certificate" in line]
        assert len(lines) == 1, logs[-3000:]
        assert "ca_file" in lines[0], lines[0]
        st = request(j.admin + "/api/status").json()
        assert st["analytics"]["records"] == 0
        assert st["consumer"]["dead_lettered"] == 0 and st["consumer"]["delivered"] == 0
        assert front.handshakes_failed >= 1
    finally:
        front.close()
