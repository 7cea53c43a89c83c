"""Who may change state: admin.token guards every state-changing admin and analytics
request (reload, faults, DELETE of the analytics records), cross-site browser requests
are refused whatever their token, OPTIONS answers what a route allows without opening
it to other sites, and a listener beyond loopback without a token does not start."""
import subprocess

from junction_test import BINARY, ROOT, free_port, request

TOKEN = "adm1n-t0ken-e2e"


def versions(j):
    return {s["name"]: s["version"] for s in request(j.admin + "/api/status").json()["scripts"]}


def test_state_changing_admin_requests_need_the_token(make_junction):
    j = make_junction({"admin": {"token": TOKEN}})
    before = versions(j)
    faults = request(j.admin + "/api/status").json()["api"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN}):
        r = request(j.admin + "/api/reload", "POST", "", headers)
        assert r.status == 401, r.body
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"admin.token" in r.body
        r = request(j.admin + "/api/faults/crm", "PUT", '{"error_rate":1}', headers)
        assert r.status == 401
    assert versions(j) == before
    assert request(j.admin + "/api/status").json()["api"] == faults
    assert request(j.crm + "/customers").status == 200  # no fault got in

    ok = {"Authorization": "Bearer " + TOKEN}
    assert request(j.admin + "/api/reload", "POST", "", ok).status == 200
    assert all(v == before[k] + 1 for k, v in versions(j).items())
    assert request(j.admin + "/api/faults/crm", "PUT", '{"fail_next":1}', ok).status == 200
    assert request(j.crm + "/customers").status == 503
    # Reads stay open.
    for path in ("/healthz", "/readyz", "/metrics", "/api/status", "/"):
        assert request(j.admin + path).status == 200, path
    assert TOKEN not in j.logs()


def test_analytics_delete_and_faults_need_the_admin_token(make_junction):
    a = make_junction({"admin": {"token": TOKEN}}, command="analytics")
    body = '[{"id":"1"}]'
    assert request(a.analytics + "/analytics", "POST", body,
                   {"Content-Type": "application/json", "Idempotency-Key": "k1"}).status == 200
    assert request(a.analytics + "/analytics/records", "DELETE").status == 401
    assert request(a.analytics + "/analytics/faults", "PUT", '{"error_rate":1}').status == 401
    assert request(a.analytics + "/analytics/stats").json()["records"] == 1
    assert request(a.analytics + "/analytics/faults").json()["error_rate"] == 0
    ok = {"Authorization": "Bearer " + TOKEN}
    assert request(a.analytics + "/analytics/records", "DELETE", None, ok).status == 200
    assert request(a.analytics + "/analytics/stats").json()["records"] == 0


def test_cross_site_requests_are_refused_and_options_opens_nothing(make_junction):
    j = make_junction({"admin": {"token": TOKEN}})
    before = versions(j)
    port = j.admin.rsplit(":", 1)[1]
    ok = {"Authorization": "Bearer " + TOKEN}
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{int(port) + 1}"):
        r = request(j.admin + "/api/reload", "POST", "reload",
                    dict(ok, Origin=origin, **{"Content-Type": "text/plain"}))
        assert r.status == 403, (origin, r.body)
    assert versions(j) == before
    same = dict(ok, Origin=f"http://127.0.0.1:{port}")
    assert request(j.admin + "/api/reload", "POST", "", same).status == 200

    r = request(j.admin + "/api/reload", "OPTIONS", None,
                {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    assert "POST" in r.headers["Allow"] and "OPTIONS" in r.headers["Allow"]
    assert "Access-Control-Allow-Origin" not in r.headers


def test_a_listener_beyond_loopback_needs_a_token(make_junction):
    for command, key in (("api", "admin"), ("analytics", "analytics")):
        j = make_junction({key: {"listen": f"0.0.0.0:{free_port()}"}}, command=command,
                          start=False)
        r = subprocess.run([BINARY, command, "--config", j.config], cwd=ROOT, env=j.env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert f"{key}: listening on 0.0.0.0" in r.stderr, r.stderr
        assert "beyond loopback, needs admin.token" in r.stderr, r.stderr
