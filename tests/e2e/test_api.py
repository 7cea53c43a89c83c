"""End-to-end tests of `junction api` over real sockets: every route, the error
answers, limits and timeouts, hot reload and shutdown."""
import json
import os
import signal
import socket
import subprocess
import time

from conftest import request, wait_for


def raw(port, data, timeout=5):
    """Sends raw bytes and returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


# ---- the original system's contract ---------------------------------------------------

def test_get_customers_returns_all_1000_in_the_original_shape(junction):
    r = request(junction.crm + "/customers")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    customers = r.json()
    assert len(customers) == 1000
    assert [c["id"] for c in customers] == list(range(1, 1001))
    c7 = customers[6]
    assert set(c7) == {"id", "name", "email", "phone", "productIds"}
    assert c7["name"] == "Customer 7" and c7["email"] == "customer7@example.com"
    assert c7["productIds"][0] == "1" and all(isinstance(p, str) for p in c7["productIds"])
    assert len(customers[7]["productIds"]) == 2  # even ids reference a second product


def test_get_customer_by_id_and_not_found(junction):
    r = request(junction.crm + "/customers/42")
    assert r.status == 200 and r.json()["id"] == 42
    r = request(junction.crm + "/customers/5000")
    assert r.status == 404 and r.json() == {"error": "Customer not found"}


def test_get_products_and_product_by_id(junction):
    products = request(junction.inventory + "/products").json()
    assert len(products) == 10
    assert [p["id"] for p in products] == [str(i) for i in range(1, 11)]
    assert products[0]["name"] == "Inkweto"
    assert all(isinstance(p["stock"], int) and p["stock"] >= 0 for p in products)
    r = request(junction.inventory + "/products/3")
    assert r.status == 200 and r.json() == products[2]
    r = request(junction.inventory + "/products/99")
    assert r.status == 404 and r.json() == {"error": "Product not found"}


def test_post_customer_assigns_next_id(junction):
    r = request(junction.crm + "/customers", "POST",
                json.dumps({"name": "Ada", "email": "ada@example.com", "productIds": ["2"]}),
                {"Content-Type": "application/json"})
    assert r.status == 201
    created = r.json()
    assert created["id"] == 1001 and created["name"] == "Ada"
    assert request(junction.crm + "/customers/1001").json() == created
    assert len(request(junction.crm + "/customers").json()) == 1001


def test_post_product_assigns_next_string_id(junction):
    r = request(junction.inventory + "/products", "POST", '{"name":"Umuceri","stock":4}')
    assert r.status == 201 and r.json() == {"id": "11", "name": "Umuceri", "stock": 4}


def test_put_patch_delete_by_id(junction):
    url = junction.crm + "/customers/5"
    r = request(url, "PUT", '{"name":"Five","email":"five@example.com","productIds":[]}')
    assert r.status == 200 and r.json()["name"] == "Five" and r.json()["id"] == 5
    r = request(url, "PATCH", '{"phone":"0700"}')
    assert r.status == 200 and r.json()["phone"] == "0700" and r.json()["name"] == "Five"
    assert request(url).json()["phone"] == "0700"
    assert request(url, "DELETE").status == 204
    assert request(url).status == 404
    assert request(url, "DELETE").status == 404
    ids = [c["id"] for c in request(junction.crm + "/customers").json()]
    assert 5 not in ids and len(ids) == 999
    r = request(junction.inventory + "/products/2", "PATCH", '{"stock":0}')
    assert r.status == 200 and r.json()["stock"] == 0


def test_write_keeps_the_path_id(junction):
    r = request(junction.crm + "/customers/9", "PUT",
                '{"id":77,"name":"N","email":"n@example.com"}')
    assert r.status == 200 and r.json()["id"] == 9


def test_invalid_record_is_rejected_with_the_field_named(junction):
    r = request(junction.crm + "/customers", "POST", '{"name":"No mail"}')
    assert r.status == 400 and "email" in r.json()["error"]
    r = request(junction.inventory + "/products/1", "PATCH", '{"stock":-3}')
    assert r.status == 400 and "stock" in r.json()["error"]
    assert request(junction.inventory + "/products/1").json()["stock"] >= 0


# ---- pagination and conditional requests ----------------------------------------------

def test_pagination_with_limit_and_offset(junction):
    r = request(junction.crm + "/customers?limit=10&offset=20")
    page = r.json()
    assert [c["id"] for c in page] == list(range(21, 31))
    assert r.headers["X-Total-Count"] == "1000"
    assert [c["id"] for c in request(junction.crm + "/customers?offset=995").json()] == \
        [996, 997, 998, 999, 1000]
    assert request(junction.crm + "/customers?offset=5000").json() == []
    r = request(junction.crm + "/customers?limit=abc")
    assert r.status == 400 and "limit" in r.json()["error"]


def test_etag_and_if_none_match(junction):
    r = request(junction.crm + "/customers")
    etag = r.headers["ETag"]
    assert etag.startswith('"')
    r2 = request(junction.crm + "/customers", headers={"If-None-Match": etag})
    assert r2.status == 304 and r2.body == b""
    one = request(junction.crm + "/customers/3")
    assert request(junction.crm + "/customers/3",
                   headers={"If-None-Match": one.headers["ETag"]}).status == 304
    # A change gives the collection a new ETag, so the old one no longer matches.
    request(junction.crm + "/customers/3", "PATCH", '{"name":"Changed"}')
    r3 = request(junction.crm + "/customers", headers={"If-None-Match": etag})
    assert r3.status == 200 and r3.headers["ETag"] != etag


# ---- bad input ----------------------------------------------------------------------

def test_malformed_json_is_400(junction):
    r = request(junction.crm + "/customers", "POST", '{"name": "x",')
    assert r.status == 400
    assert "malformed JSON" in r.json()["error"]
    r = request(junction.crm + "/customers", "POST", "[1,2]")
    assert r.status == 400
    r = request(junction.crm + "/customers", "POST", "")
    assert r.status == 400 and "empty" in r.json()["error"]


def test_oversized_body_is_413(make_junction):
    j = make_junction({"api": {"max_body_bytes": 1024}})
    r = request(j.crm + "/customers", "POST", '{"name":"' + "x" * 4000 + '"}')
    assert r.status == 413 and "too large" in r.json()["error"]
    # The server is still fine afterwards.
    assert request(j.crm + "/customers/1").status == 200


def test_unknown_route_is_404_and_wrong_method_is_405(junction):
    r = request(junction.crm + "/nope")
    assert r.status == 404 and "error" in r.json()
    r = request(junction.crm + "/customers/1/extra")
    assert r.status == 404
    r = request(junction.crm + "/customers", "DELETE")
    assert r.status == 405 and r.headers["Allow"] == "GET, POST"
    assert "DELETE" in r.json()["error"]
    r = request(junction.inventory + "/customers")
    assert r.status == 404


def test_garbage_request_line_is_400_and_closed(junction):
    out = raw(junction.crm_port, b"HELLO WORLD\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 501")
    assert b'"error"' in out and b"Connection: close" in out


def test_stalled_half_sent_request_is_closed_by_timeout(make_junction):
    j = make_junction({"api": {"request_timeout_ms": 300}})
    start = time.time()
    out = raw(j.crm_port, b"GET /customers HTTP/1.1\r\nHost: x\r\n", timeout=5)
    elapsed = time.time() - start
    assert out.startswith(b"HTTP/1.1 408"), out[:80]
    assert elapsed < 3
    # A body that never arrives is cut off the same way.
    out = raw(j.crm_port, b"POST /customers HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"na", timeout=5)
    assert out.startswith(b"HTTP/1.1 408")


def test_keep_alive_and_pipelining_answer_in_order(junction):
    reqs = b"".join(b"GET /customers/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in (1, 2, 3))
    reqs += b"GET /customers/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw(junction.crm_port, reqs)
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])
              for part in out.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b["id"] for b in bodies] == [1, 2, 3, 4]


# ---- fault injection ------------------------------------------------------------------

def test_faults_from_config_error_rate(make_junction):
    j = make_junction({"api": {"crm": {"faults": {"error_rate": 1, "error_status": 503}}}})
    r = request(j.crm + "/customers")
    assert r.status == 503 and r.headers["Retry-After"] == "1"
    assert request(j.inventory + "/products").status == 200


def test_faults_set_at_runtime(junction):
    r = request(junction.admin + "/api/faults/crm", "PUT", '{"fail_next":2,"error_status":500}')
    assert r.status == 200
    assert [request(junction.crm + "/customers/1").status for _ in range(3)] == [500, 500, 200]
    request(junction.admin + "/api/faults/crm", "PUT", '{"latency_ms":300}')
    t = time.time()
    assert request(junction.crm + "/customers/1").status == 200
    assert time.time() - t >= 0.25
    request(junction.admin + "/api/faults/crm", "PUT", '{"malformed_rate":1}')
    body = request(junction.crm + "/customers").body
    try:
        json.loads(body)
        raise AssertionError("body should be cut short")
    except ValueError:
        pass
    r = request(junction.admin + "/api/faults/crm", "PUT", '{"error_rate":7}')
    assert r.status == 400
    r = request(junction.admin + "/api/faults/nope", "PUT", '{}')
    assert r.status == 404


# ---- hot reload -----------------------------------------------------------------------

def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def test_editing_a_script_serves_new_data_within_one_second(junction):
    path = os.path.join(junction.scripts, "inventory.lua")
    edit(path, '"Inkweto"', '"Inkweto v2"')
    t = time.time()
    ok = wait_for(lambda: request(junction.inventory + "/products/1").json()["name"] == "Inkweto v2",
                  1.0)
    assert ok, junction.logs()
    assert time.time() - t <= 1.0


def test_script_syntax_error_keeps_old_data_and_reports(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    before = request(junction.crm + "/customers").body
    with open(path, "a") as f:
        f.write("\nthis is not lua (\n")
    ok = wait_for(lambda: junction.metric("junction_script_reloads_total", script="crm",
                                          result="error") == 1, 2.0)
    assert ok, junction.logs()
    assert request(junction.crm + "/customers").body == before
    assert "crm.lua" in junction.logs() and "rejected" in junction.logs()
    status = request(junction.admin + "/api/status").json()
    crm = [s for s in status["scripts"] if s["name"] == "crm"][0]
    assert crm["version"] == 1 and "crm.lua" in crm["last_error"]


def test_script_runtime_error_and_runaway_loop_keep_old_data(junction):
    path = os.path.join(junction.scripts, "inventory.lua")
    with open(path) as f:
        good = f.read()
    with open(path, "w") as f:
        f.write(good.replace("local pick = generator(opts.seed)",
                             "local pick = generator(opts.seed); while true do end"))
    ok = wait_for(lambda: junction.metric("junction_script_reloads_total", script="inventory",
                                          result="error") == 1, 5.0)
    assert ok, junction.logs()
    # Whichever comes first: the instruction count or the time limit (sanitizer builds).
    assert "instruction limit" in junction.logs() or "time limit" in junction.logs()
    assert len(request(junction.inventory + "/products").json()) == 10
    with open(path, "w") as f:
        f.write(good.replace("function M.validate(p)", "function M.validate(p)\n  error('boom')"))
    ok = wait_for(lambda: junction.metric("junction_script_reloads_total", script="inventory",
                                          result="error") == 2, 5.0)
    assert ok and "boom" in junction.logs()
    assert len(request(junction.inventory + "/products").json()) == 10


def test_reload_endpoint_and_sighup(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    # Changes made while the watcher is off reach the server through explicit reloads.
    edit(path, '"Customer " .. i', '"Client " .. i')
    r = request(junction.admin + "/api/reload", "POST")
    assert r.status == 200 and r.json()["ok"] is True
    assert request(junction.crm + "/customers/1").json()["name"] == "Client 1"
    edit(path, '"Client " .. i', '"Kunde " .. i')
    junction.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: request(junction.crm + "/customers/1").json()["name"] == "Kunde 1", 2)
    with open(path, "a") as f:
        f.write("\n(\n")
    r = request(junction.admin + "/api/reload", "POST")
    assert r.status == 422 and r.json()["ok"] is False


def test_sandbox_denies_os_execute(junction):
    path = os.path.join(junction.scripts, "inventory.lua")
    edit(path, "function M.generate(opts)", "function M.generate(opts)\n  os.execute('true')")
    ok = wait_for(lambda: junction.metric("junction_script_reloads_total", script="inventory",
                                          result="error") == 1, 2.0)
    assert ok and "execute" in junction.logs()


def test_counts_and_seed_come_from_config(make_junction):
    j = make_junction({"api": {"crm": {"count": 25, "seed": 7}, "inventory": {"count": 3}}})
    assert len(request(j.crm + "/customers").json()) == 25
    assert len(request(j.inventory + "/products").json()) == 3


# ---- admin ----------------------------------------------------------------------------

def test_admin_healthz_and_metrics(junction):
    assert request(junction.admin + "/healthz").json() == {"status": "ok"}
    request(junction.crm + "/customers")
    request(junction.crm + "/customers/99999")
    text = request(junction.admin + "/metrics").body.decode()
    assert "# TYPE junction_http_requests_total counter" in text
    assert junction.metric("junction_http_requests_total", server="crm", route="/customers",
                           status="200") >= 1
    assert junction.metric("junction_http_requests_total", server="crm",
                           route="/customers/:id", status="404") == 1
    assert junction.metric("junction_http_request_duration_seconds_count", server="crm") >= 2
    assert junction.metric("junction_script_reloads_total", script="crm", result="ok") == 1


# ---- configuration and life -----------------------------------------------------------

def test_bad_config_value_exits_2_naming_the_key(make_junction):
    j = make_junction({"api": {"crm": {"count": "many"}}}, start=False)
    import subprocess
    from conftest import BINARY, ROOT
    p = subprocess.run([BINARY, "api", "--config", j.config], cwd=ROOT, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2
    assert "api.crm.count" in p.stderr and '"many"' in p.stderr and "integer" in p.stderr


def test_environment_overrides_the_config(make_junction):
    import socket as s_
    from conftest import free_port
    port = free_port()
    j = make_junction(env={"JUNCTION_CRM_LISTEN": f"127.0.0.1:{port}"})
    with s_.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert request(f"http://127.0.0.1:{port}/customers/1").status == 200


def test_port_in_use_is_a_clear_error(make_junction, junction):
    j = make_junction({"api": {"crm": {"listen": f"127.0.0.1:{junction.crm_port}"}}}, start=False)
    import subprocess
    from conftest import BINARY, ROOT
    p = subprocess.run([BINARY, "api", "--config", j.config], cwd=ROOT, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2 and "address already in use" in p.stderr


def test_sigterm_finishes_in_flight_request_then_exits_0(make_junction):
    j = make_junction()
    request(j.admin + "/api/faults/crm", "PUT", '{"latency_ms":700}')
    with socket.create_connection(("127.0.0.1", j.crm_port), timeout=5) as s:
        s.sendall(b"GET /customers/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        j.proc.send_signal(signal.SIGTERM)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    assert out.startswith(b"HTTP/1.1 200") and b'"id":1' in out
    assert j.proc.wait(5) == 0
    # New connections are refused once stopping began.
    try:
        socket.create_connection(("127.0.0.1", j.crm_port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused


def test_head_answers_every_get_route_without_a_body(make_junction):
    """RFC 9110 §9.3.2: HEAD gets the GET's status and headers, Content-Length included,
    and no body (it used to get 405)."""
    j = make_junction()
    for url in (j.crm + "/customers", j.crm + "/customers/1", j.inventory + "/products",
                j.admin + "/healthz", j.admin + "/metrics", j.admin + "/api/status"):
        get = request(url)
        head = request(url, "HEAD")
        assert head.status == get.status == 200, url
        assert head.body == b"", url
        assert head.headers["Content-Type"] == get.headers["Content-Type"], url
        if "/metrics" not in url and "/api/status" not in url:  # those change between calls
            assert int(head.headers["Content-Length"]) == len(get.body), url
    # curl -I on a product: the same ETag as the GET
    assert request(j.inventory + "/products/1", "HEAD").headers["ETag"] == \
        request(j.inventory + "/products/1").headers["ETag"]
    out = raw(j.crm_port, b"HEAD /customers/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /customers/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, rest = out.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200") and rest.startswith(b"HTTP/1.1 200"), out[:200]


def test_bodies_with_bad_utf8_or_lone_surrogates_are_400(junction):
    """RFC 8259 §8.1: they used to be stored and served back."""
    for body in (b'{"name":"\xff","email":"a@b.c"}', b'{"name":"\\ud800","email":"a@b.c"}'):
        r = request(junction.crm + "/customers", "POST", body,
                    {"Content-Type": "application/json"})
        assert r.status == 400, (body, r.body)
        assert b"UTF-8" in r.body or b"surrogate" in r.body, r.body
    assert all(c["name"] != "\ufffd" for c in request(junction.crm + "/customers").json())


def test_running_out_of_descriptors_is_logged_once_and_counted(make_junction):
    """With 200 descriptors and 500 connections, accepts fail: one log line per burst
    naming the cause and what to do, a counter in /metrics, and the server still answers
    once descriptors are free again."""
    j = make_junction(start=False)
    j.start()
    subprocess.run(["prlimit", f"--pid={j.proc.pid}", "--nofile=200:200"], check=True)
    socks = []
    for _ in range(500):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", j.crm_port))
        except OSError:
            pass
        socks.append(s)
    time.sleep(1)
    for s in socks:
        s.close()

    def answers():
        try:
            return request(j.crm + "/customers/1").status == 200
        except OSError:  # a connection still queued from the flood is closed at accept
            return False
    assert wait_for(answers, 10)
    assert j.metric("junction_http_accept_errors_total", server="crm") > 0
    logs = j.logs()
    assert logs.count("cannot accept connections: too many open files") == 1, logs[-2000:]
    assert "raise the descriptor limit" in logs
