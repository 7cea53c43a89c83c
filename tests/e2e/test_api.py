"""End-to-end tests of `junction api` over real sockets: every route, the error
answers, limits and timeouts, hot reload and shutdown."""
import json
import os
import re
import signal
import socket
import subprocess
import time

from junction_test import free_ports, request, wait_until
from junction_test import raw_exchange as raw


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


def test_integer_ids_out_of_range_are_400_and_the_next_id_never_wraps(junction):
    """PUT /customers/99999999999999999999999 used to create id 9223372036854775807 that
    GET could not find; two POSTs after it both got -9223372036854775808, the second
    replacing the first (and the sanitizer build aborted on the overflow)."""
    crm = junction.crm + "/customers"
    body = '{"name":"Big","email":"big@example.com"}'
    for too_big in ("99999999999999999999999", "9223372036854775808", "0"):
        for method, data in (("PUT", body), ("GET", None), ("PATCH", body), ("DELETE", None)):
            r = request(f"{crm}/{too_big}", method, data)
            assert r.status == 400, (too_big, method, r.body)
            err = r.json()["error"]
            assert "out of range" in err and "from 1 to 9223372036854775807" in err, err
    assert len(request(crm).json()) == 1000
    # The largest id itself is fine, and found again; then no POST can get a next one.
    top = f"{crm}/9223372036854775807"
    r = request(top, "PUT", body)
    assert r.status == 201 and r.json()["id"] == 9223372036854775807
    assert request(top).json() == r.json()
    for _ in range(2):
        r = request(crm, "POST", '{"name":"Next","email":"next@example.com"}')
        assert r.status == 409, r.body
        assert "no id is left" in r.json()["error"] and "PUT /customers/<id>" in r.json()["error"]
    customers = request(crm).json()
    assert len(customers) == 1001 and all(c["id"] > 0 for c in customers)
    assert request(top, "DELETE").status == 204
    r = request(crm, "POST", '{"name":"Next","email":"next@example.com"}')
    assert r.status == 201 and r.json()["id"] == 1001


def test_path_ids_of_integer_resources_have_one_spelling(junction):
    """PUT /customers/007 used to store a second record beside 7, and GET /customers listed
    7 twice. A path id is the plain decimal the record is stored under, else a 400."""
    crm = junction.crm + "/customers"
    seven = request(crm + "/7").json()
    body = '{"name":"Bond","email":"bond@example.com"}'
    for spelling in ("007", "+7", "%207", "7%20", "7.0", "0x7", "-7", "1e3", "seven", "%01"):
        for method, data in (("PUT", body), ("GET", None), ("PATCH", body), ("DELETE", None)):
            r = request(f"{crm}/{spelling}", method, data)
            assert r.status == 400, (spelling, method, r.body)
            assert "plain decimal" in r.json()["error"], r.body
    r = request(crm + "/%01", "PUT", body)
    assert '"\\x01"' in r.json()["error"], r.body  # shown, not printed raw
    ids = [c["id"] for c in request(crm).json()]
    assert ids == list(range(1, 1001))
    assert request(crm + "/7").json() == seven
    # String ids are names, kept as written: "007" and "7" are two products.
    inv = junction.inventory + "/products"
    assert request(inv + "/007", "PUT", '{"name":"Bond","stock":7}').status == 201
    assert request(inv + "/7").json()["name"] != "Bond"
    assert request(inv + "/007").json() == {"id": "007", "name": "Bond", "stock": 7}


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
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD, POST"
    assert "DELETE" in r.json()["error"]
    r = request(junction.inventory + "/customers")
    assert r.status == 404


def test_allow_lists_every_method_a_route_takes_head_included(junction):
    """HEAD works wherever GET does, so a 405's Allow names it (it was missing); each
    method Allow lists answers something other than 405."""
    for url, method, allow in ((junction.crm + "/customers", "DELETE", "GET, HEAD, POST"),
                               (junction.crm + "/customers/1", "POST",
                                "DELETE, GET, HEAD, PUT, PATCH"),
                               (junction.inventory + "/products/1", "OPTIONS",
                                "DELETE, GET, HEAD, PUT, PATCH")):
        r = request(url, method, "" if method == "POST" else None)
        assert r.status == 405 and r.headers["Allow"] == allow, (url, method, r.headers)
        for m in allow.split(", "):
            if m != "DELETE":
                assert request(url, m, "{}" if m in ("POST", "PUT", "PATCH") else None) \
                    .status != 405, (url, m)
    # A 404 (no such route, or no such record) has no methods to offer.
    for url in (junction.crm + "/nope", junction.crm + "/customers/5000"):
        r = request(url)
        assert r.status == 404 and "Allow" not in r.headers, url


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
    j = make_junction({"apis": {"crm": {"faults": {"error_rate": 1, "error_status": 503}}}})
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


def test_runtime_faults_get_the_ranges_of_the_config(junction):
    """PUT /api/faults/<name> used to take a latency of 2147483647.5 ms (past the config's
    cap of 600000: every request hung), store 1e300 as -2147483648 and take fail_next
    1e18. Each setting is checked against the config's range, the error naming it."""
    faults = junction.admin + "/api/faults/crm"
    before = request(junction.admin + "/api/status").json()["api"]["crm"]["faults"]
    cases = [
        ('{"latency_ms":2147483647.5}', "latency_ms must be an integer from 0 to 600000, "
                                        "got 2147483647.5"),
        ('{"latency_ms":1e300}', "latency_ms must be an integer from 0 to 600000, got 1e+300"),
        ('{"latency_ms":600001}', "latency_ms must be an integer from 0 to 600000, got 600001"),
        ('{"latency_ms":2.5}', "latency_ms must be an integer from 0 to 600000, got 2.5"),
        ('{"latency_ms":"100"}', 'latency_ms must be an integer from 0 to 600000, got "100"'),
        ('{"fail_next":1e18}', "fail_next must be an integer from 0 to 1000000, got 1e+18"),
        ('{"fail_next":-1}', "fail_next must be an integer from 0 to 1000000, got -1"),
        ('{"fail_next":null}', "fail_next must be an integer from 0 to 1000000, got null"),
        ('{"error_status":200}', "error_status must be an integer from 400 to 599, got 200"),
        ('{"error_status":503.5}', "error_status must be an integer from 400 to 599, got 503.5"),
        ('{"error_rate":7}', "error_rate must be a number from 0 to 1, got 7"),
        ('{"malformed_rate":true}', "malformed_rate must be a number from 0 to 1, got true"),
        ('{"malformed_rate":[0.5]}', "malformed_rate must be a number from 0 to 1, got an "
                                     "array or object"),
        ('{"latency":5}', 'there is no setting "latency"; the settings are latency_ms, '
                          'error_rate, error_status, malformed_rate and fail_next'),
    ]
    for body, want in cases:
        r = request(faults, "PUT", body)
        assert r.status == 400, (body, r.body)
        assert r.json() == {"error": "faults: " + want}, (body, r.body)
    assert request(junction.admin + "/api/status").json()["api"]["crm"]["faults"] == before
    # Whole numbers written as floats count, and the ends of each range are fine.
    r = request(faults, "PUT", '{"latency_ms":600000.0,"fail_next":1000000,"error_status":599,'
                               '"error_rate":1,"malformed_rate":0}')
    assert r.status == 200, r.body
    got = r.json()["crm"]["faults"]
    assert (got["latency_ms"], got["fail_next"], got["error_status"]) == (600000, 1000000, 599)
    assert request(faults, "PUT", "{}").status == 200
    assert request(junction.crm + "/customers/1").status == 200


def test_faults_body_that_is_not_an_object_is_one_plain_message(junction):
    """A body of [1] used to answer {"error":"{\\"error\\":\\"request body must be ...\\"}"}:
    an error document inside the error string."""
    faults = junction.admin + "/api/faults/crm"
    for body, want in (("[1]", "faults: request body must be a JSON object"),
                       ("1", "faults: request body must be a JSON object"),
                       ("", "faults: request body is empty; send a JSON object"),
                       ('{"latency_ms":', "faults: malformed JSON body: ")):
        r = request(faults, "PUT", body)
        assert r.status == 400, (body, r.body)
        err = r.json()["error"]
        assert err.startswith(want) and "{" not in err, (body, err)


def test_script_faults_get_the_ranges_of_the_config(junction):
    """M.faults set a latency past the config's cap too: now such a version is refused,
    naming the setting, and the old one keeps serving."""
    path = os.path.join(junction.scripts, "crm.lua")
    edit(path, 'M.count = 1000', 'M.count = 1000\nM.faults = { latency_ms = 1e9 }')
    assert request(junction.admin + "/api/reload", "POST").status == 422
    assert "M.faults.latency_ms must be an integer from 0 to 600000, got 1000000000.0" in \
        junction.logs()
    edit(path, 'latency_ms = 1e9', 'latency_ms = 5, error_status = 429')
    assert request(junction.admin + "/api/reload", "POST").status == 200
    crm = request(junction.admin + "/api/status").json()["api"]["crm"]["faults"]
    assert crm["latency_ms"] == 5 and crm["error_status"] == 429


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
    ok = wait_until(lambda: request(junction.inventory + "/products/1").json()["name"] == "Inkweto v2",
                  1.0)
    assert ok, junction.logs()
    assert time.time() - t <= 1.0


def test_script_syntax_error_keeps_old_data_and_reports(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    before = request(junction.crm + "/customers").body
    with open(path, "a") as f:
        f.write("\nthis is not lua (\n")
    ok = wait_until(lambda: junction.metric("junction_script_reloads_total", script="crm",
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
    ok = wait_until(lambda: junction.metric("junction_script_reloads_total", script="inventory",
                                          result="error") == 1, 5.0)
    assert ok, junction.logs()
    # Whichever comes first: the instruction count or the time limit (sanitizer builds).
    assert "instruction limit" in junction.logs() or "time limit" in junction.logs()
    assert len(request(junction.inventory + "/products").json()) == 10
    with open(path, "w") as f:
        f.write(good.replace("function M.validate(p)", "function M.validate(p)\n  error('boom')"))
    ok = wait_until(lambda: junction.metric("junction_script_reloads_total", script="inventory",
                                          result="error") == 2, 5.0)
    assert ok and "boom" in junction.logs()
    assert len(request(junction.inventory + "/products").json()) == 10


def test_script_error_answers_the_message_and_logs_the_traceback(junction):
    """A validate() that fails answered the client with Lua's traceback and the script's
    paths; the client now gets the message, the log the whole error."""
    path = os.path.join(junction.scripts, "crm.lua")
    edit(path, "function M.validate(c)\n",
         "function M.validate(c)\n  if c.name == 'crash' then return c.nothing.here end\n")
    assert request(junction.admin + "/api/reload", "POST").status == 200
    for method, url in (("POST", "/customers"), ("PUT", "/customers/3"),
                        ("PATCH", "/customers/4")):
        r = request(junction.crm + url, method, '{"name":"crash","email":"c@example.com"}')
        assert r.status == 400, r.body
        assert r.json() == {"error": "invalid customers: attempt to index a nil value "
                                     "(field 'nothing')"}, r.body
        assert junction.scripts not in r.body.decode() and "traceback" not in r.body.decode()
    logs = junction.logs()
    # Lua names the script by its path (cut to its end when long), in the message and in
    # each line of the traceback.
    assert re.search(r"validate\(\) failed on POST /customers, answered 400: \S*scripts/crm\.lua:"
                     r"\d+: attempt to index a nil value \(field 'nothing'\)\nstack traceback:\n"
                     r"\t\S*scripts/crm\.lua:\d+: in function <", logs), logs
    assert "validate() failed on PATCH /customers/4" in logs
    assert request(junction.crm + "/customers/3").json()["name"] == "Customer 3"
    # A record the script rejects is answered with the script's reason, as before; a null
    # is called null.
    r = request(junction.crm + "/customers", "POST",
                '{"name":"N","email":"n@example.com","productIds":[null,1]}')
    assert r.status == 400 and r.json() == {
        "error": "invalid customers: productIds[1] must be a product id string, got null"}
    r = request(junction.crm + "/customers", "POST",
                '{"name":"N","email":"n@example.com","productIds":[1e300]}')
    assert r.status == 400 and r.json() == {
        "error": "invalid customers: productIds[1] must be a product id string, got 1e+300"}


def test_reload_endpoint_and_sighup(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    # Changes made while the watcher is off reach the server through explicit reloads.
    edit(path, '"Customer " .. i', '"Client " .. i')
    r = request(junction.admin + "/api/reload", "POST")
    assert r.status == 200 and r.json()["ok"] is True
    assert request(junction.crm + "/customers/1").json()["name"] == "Client 1"
    edit(path, '"Client " .. i', '"Kunde " .. i')
    junction.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: request(junction.crm + "/customers/1").json()["name"] == "Kunde 1", 2)
    with open(path, "a") as f:
        f.write("\n(\n")
    r = request(junction.admin + "/api/reload", "POST")
    assert r.status == 422 and r.json()["ok"] is False


def test_sandbox_denies_os_execute(junction):
    path = os.path.join(junction.scripts, "inventory.lua")
    edit(path, "function M.generate(opts)", "function M.generate(opts)\n  os.execute('true')")
    ok = wait_until(lambda: junction.metric("junction_script_reloads_total", script="inventory",
                                          result="error") == 1, 2.0)
    assert ok and "execute" in junction.logs()


def test_counts_and_seed_come_from_config(make_junction):
    j = make_junction({"apis": {"crm": {"count": 25, "seed": 7}, "inventory": {"count": 3}}})
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
    j = make_junction({"apis": {"crm": {"count": "many"}}}, start=False)
    import subprocess
    from junction_test import BINARY, ROOT
    p = subprocess.run([BINARY, "api", "--config", j.config], cwd=ROOT, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2
    assert "apis.crm.count" in p.stderr and '"many"' in p.stderr and "integer" in p.stderr


def test_environment_overrides_the_config(make_junction):
    # The file says 1 MiB; the variable wins (an API's own keys read variables with env()
    # in the file: test_local_example_serves_what_the_defaults_serve).
    j = make_junction({"api": {"max_body_bytes": 1048576}},
                      env={"JUNCTION_MAX_BODY_BYTES": "1024"})
    r = request(j.crm + "/customers", "POST", '{"name":"' + "x" * 4000 + '"}')
    assert r.status == 413


def test_port_in_use_is_a_clear_error(make_junction, junction):
    j = make_junction({"apis": {"crm": {"listen": f"127.0.0.1:{junction.crm_port}"}}},
                      start=False)
    import subprocess
    from junction_test import BINARY, ROOT
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
    assert wait_until(answers, 10)
    assert j.metric("junction_http_accept_errors_total", server="crm") > 0
    logs = j.logs()
    assert logs.count("cannot accept connections: too many open files") == 1, logs[-2000:]
    assert "raise the descriptor limit" in logs


# ---- any number of APIs from the config (`apis`) ---------------------------------------

def more_ports(j, n):
    """n free ports, distinct from each other and from j's four."""
    return free_ports(n, (j.crm_port, j.inv_port, j.admin_port, j.analytics_port))


def apis_junction(make_junction, apis, env=None, start=True):
    """A `junction api` whose config has `apis` (name -> entry; each gets a port of its own
    as its listen address, and scripts are named by file, from the test's copy of
    scripts/). Returns the junction and name -> base URL."""
    from junction_test import lua_value
    j = make_junction(env=env, start=False)
    ports = more_ports(j, len(apis))
    entries, urls = {}, {}
    for (name, entry), port in zip(apis.items(), ports):
        e = dict(entry, listen=f"127.0.0.1:{port}")
        e["script"] = os.path.join(j.scripts, e["script"])
        entries[name] = e
        urls[name] = f"http://127.0.0.1:{port}"
    cfg = {"admin": {"listen": f"127.0.0.1:{j.admin_port}"}, "apis": entries}
    with open(j.config, "w") as f:
        f.write("return " + lua_value(cfg) + "\n")
    return (j.start() if start else j), urls


def start_fails(j):
    import subprocess
    from junction_test import BINARY, ROOT
    return subprocess.run([BINARY, "api", "--config", j.config], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env=j.env)


def test_three_apis_from_the_orders_example(make_junction):
    """examples/orders.lua serves the seed's two APIs and the orders API (a bearer token,
    cursor pages of 1000 in an envelope): every order comes once, over 50 pages."""
    from junction_test import ROOT
    j = make_junction(start=False)
    (orders_port,) = more_ports(j, 1)
    j.env.update({"JUNCTION_CRM_LISTEN": f"127.0.0.1:{j.crm_port}",
                  "JUNCTION_INVENTORY_LISTEN": f"127.0.0.1:{j.inv_port}",
                  "ORDERS_API_LISTEN": f"127.0.0.1:{orders_port}",
                  "JUNCTION_ADMIN_LISTEN": f"127.0.0.1:{j.admin_port}",
                  "ORDERS_API_TOKEN": "orders-s3cret", "ANALYTICS_TOKEN": "unused"})
    j.config = os.path.join(ROOT, "examples", "orders.lua")
    j.start()
    assert len(request(j.crm + "/customers").json()) == 1000
    assert len(request(j.inventory + "/products").json()) == 10
    orders = f"http://127.0.0.1:{orders_port}/orders"
    auth = {"Authorization": "Bearer orders-s3cret"}
    assert request(orders).status == 401
    ids, pages, url = [], 0, orders
    while True:
        r = request(url, headers=auth)
        assert r.status == 200, r.body
        page = r.json()
        assert set(page) == {"data", "next_cursor"}
        pages += 1
        ids += [o["id"] for o in page["data"]]
        if page["next_cursor"] is None:
            break
        assert isinstance(page["next_cursor"], str) and page["next_cursor"]
        url = orders + "?cursor=" + page["next_cursor"]
    assert pages == 50 and len(page["data"]) == 1000
    assert ids == list(range(1, 50001))
    o = request(orders + "/17", headers=auth).json()
    assert o["id"] == 17 and 1 <= o["customerId"] <= 1000 and o["items"]
    assert request(orders + "/50001", headers=auth).json() == {"error": "Order not found"}
    status = request(j.admin + "/api/status").json()["api"]
    assert sorted(status) == ["crm", "inventory", "orders"]
    assert status["orders"]["records"] == 50000 and status["orders"]["paging"] == "cursor"
    assert status["orders"]["auth"] is True and status["crm"]["auth"] is False
    assert "orders-s3cret" not in request(j.admin + "/api/status").body.decode()
    assert "orders-s3cret" not in j.logs()


def test_resource_and_noun_come_from_the_script_or_the_config(make_junction):
    j, url = apis_junction(make_junction, {
        "orders": {"script": "orders.lua", "count": 5},
        "people": {"script": "crm.lua", "count": 3, "resource": "v1/people",
                   "singular": "Person"},
        "things": {"script": "inventory.lua"},
    })
    assert [o["id"] for o in request(url["orders"] + "/orders").json()] == [1, 2, 3, 4, 5]
    assert request(url["orders"] + "/orders/9").json() == {"error": "Order not found"}
    assert len(request(url["people"] + "/v1/people").json()) == 3
    assert request(url["people"] + "/v1/people/9").json() == {"error": "Person not found"}
    assert request(url["people"] + "/customers").status == 404
    assert len(request(url["things"] + "/products").json()) == 10  # the script's M.count
    status = request(j.admin + "/api/status").json()["api"]
    assert status["people"]["resource"] == "/v1/people" and status["people"]["records"] == 3
    assert j.metric("junction_http_requests_total", server="people", route="/v1/people/:id",
                    status="404") == 1


def test_bearer_token_is_required_on_every_route(make_junction, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("T0k.en-42\n")
    j, url = apis_junction(make_junction, {
        "crm": {"script": "crm.lua", "count": 5, "token": {"file": str(token_file)}},
        "open": {"script": "inventory.lua"},
    })
    crm = url["crm"] + "/customers"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer T0k.en-4"},
                    {"Authorization": "Bearer T0k.en-421"}, {"Authorization": "Basic T0k.en-42"},
                    {"Authorization": "T0k.en-42"}):
        r = request(crm, headers=headers)
        assert r.status == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.headers["Content-Type"].startswith("application/json")
        assert "bearer token" in r.json()["error"] and "T0k" not in r.body.decode()
    assert request(crm + "/1", "DELETE").status == 401
    assert request(crm, "POST", '{"name":"A","email":"a@b"}').status == 401
    assert request(url["crm"] + "/nowhere").status == 401
    ok = {"Authorization": "Bearer T0k.en-42"}
    assert len(request(crm, headers=ok).json()) == 5
    assert request(crm + "/2", headers={"Authorization": "bearer   T0k.en-42"}).status == 200
    assert request(url["open"] + "/products").status == 200  # the other API asks for none
    assert j.metric("junction_http_requests_total", server="crm", route="unauthorized",
                    status="401") >= 8
    assert "T0k.en-42" not in j.logs()
    assert "T0k.en-42" not in request(j.admin + "/api/status").body.decode()


def walk_offset(base, limit=None):
    ids, offset = [], 0
    while True:
        q = f"?offset={offset}" + (f"&limit={limit}" if limit else "")
        r = request(base + q)
        assert r.status == 200, r.body
        page = r.json()
        assert isinstance(page, list)
        if not page:
            return ids
        ids += [x["id"] for x in page]
        offset += len(page)


def walk_link(base, per_page):
    ids, url, pages = [], f"{base}?page=1&per_page={per_page}", 0
    while url:
        r = request(url)
        assert r.status == 200, r.body
        page = r.json()
        assert isinstance(page, list) and page
        pages += 1
        ids += [x["id"] for x in page]
        link = r.headers.get("Link")
        url = None
        if link:
            assert link.endswith('>; rel="next"') and link.startswith("<"), link
            url = link[1:link.index(">")]
    return ids, pages


def walk_cursor(base, limit):
    ids, url = [], f"{base}?limit={limit}"
    while True:
        r = request(url)
        assert r.status == 200, r.body
        page = r.json()
        ids += [x["id"] for x in page["data"]]
        if page["next_cursor"] is None:
            return ids
        url = f"{base}?limit={limit}&cursor={page['next_cursor']}"


def test_each_paging_style_returns_every_id_once(make_junction):
    j, url = apis_junction(make_junction, {
        "off": {"script": "crm.lua", "count": 1234, "paging": {"style": "offset",
                                                               "page_size": 100}},
        "lnk": {"script": "crm.lua", "count": 1234, "paging": "link"},
        "cur": {"script": "crm.lua", "count": 1234, "paging": {"style": "cursor",
                                                               "page_size": 50}},
        "plain": {"script": "crm.lua", "count": 1234},
    })
    every = list(range(1, 1235))
    off = url["off"] + "/customers"
    assert walk_offset(off) == every
    assert walk_offset(off, limit=7) == every
    r = request(off)
    assert len(r.json()) == 100 and r.headers["X-Total-Count"] == "1234"
    assert "ETag" not in r.headers
    assert request(off + "?offset=1234").json() == []
    assert [c["id"] for c in request(off + "?offset=1230&limit=10").json()] == [1231, 1232,
                                                                                1233, 1234]
    ids, pages = walk_link(url["lnk"] + "/customers", 100)
    assert ids == every and pages == 13
    assert request(url["lnk"] + "/customers?page=14&per_page=100").json() == []
    cur = url["cur"] + "/customers"
    assert walk_cursor(cur, 50) == every
    assert walk_cursor(cur, 1234) == every
    first = request(cur).json()
    assert len(first["data"]) == 50 and isinstance(first["next_cursor"], str)
    last = request(cur + "?limit=5000").json()  # cut to the largest page, 1000
    assert len(last["data"]) == 1000
    full = request(cur + "?limit=1000&cursor=" + last["next_cursor"]).json()
    assert [c["id"] for c in full["data"]] == list(range(1001, 1235))
    assert full["next_cursor"] is None
    # Without paging, GET /<resource> still answers the whole array, with its ETag.
    r = request(url["plain"] + "/customers")
    assert [c["id"] for c in r.json()] == every
    assert request(url["plain"] + "/customers", headers={"If-None-Match": r.headers["ETag"]}) \
        .status == 304


def test_pages_follow_id_order_whatever_the_writes(make_junction):
    j, url = apis_junction(make_junction, {
        "cur": {"script": "crm.lua", "count": 20, "paging": {"style": "cursor", "page_size": 6}},
        "off": {"script": "inventory.lua", "count": 12, "paging": {"style": "offset",
                                                                   "page_size": 5}},
    })
    body = '{"name":"N","email":"n@example.com"}'
    for i in (500, 30, 7000, 21):
        assert request(url["cur"] + f"/customers/{i}", "PUT", body).status == 201
    assert request(url["cur"] + "/customers/4", "DELETE").status == 204
    want = [i for i in range(1, 21) if i != 4] + [21, 30, 500, 7000]
    assert walk_cursor(url["cur"] + "/customers", 6) == want
    # String ids that are numbers go by value: "9" before "10".
    assert walk_offset(url["off"] + "/products") == [str(i) for i in range(1, 13)]
    # A cursor past a record deleted meanwhile still finds the page after it.
    page = request(url["cur"] + "/customers?limit=3").json()
    assert [c["id"] for c in page["data"]] == [1, 2, 3]
    assert request(url["cur"] + "/customers/3", "DELETE").status == 204
    nxt = request(url["cur"] + "/customers?limit=3&cursor=" + page["next_cursor"]).json()
    assert [c["id"] for c in nxt["data"]] == [5, 6, 7]


def test_bad_paging_parameters_are_400_naming_the_parameter(make_junction):
    j, url = apis_junction(make_junction, {
        "off": {"script": "crm.lua", "count": 10, "paging": "offset"},
        "lnk": {"script": "crm.lua", "count": 10, "paging": "link"},
        "cur": {"script": "crm.lua", "count": 10, "paging": "cursor"},
    })
    cases = [("off", "offset=-1", "offset"), ("off", "offset=abc", "offset"),
             ("off", "limit=-5", "limit"), ("off", "limit=0", "limit"),
             ("off", "limit=1.5", "limit"), ("lnk", "page=0", "page"),
             ("lnk", "page=x", "page"), ("lnk", "per_page=-1", "per_page"),
             ("cur", "limit=x", "limit"), ("cur", "cursor=garbage", "cursor"),
             ("cur", "cursor=", "cursor")]
    for name, query, param in cases:
        r = request(url[name] + f"/customers?{query}")
        assert r.status == 400, (name, query, r.body)
        err = r.json()["error"]
        assert err.startswith(param + " ") or err.startswith(param + " \""), err
    good = request(url["cur"] + "/customers?limit=2").json()["next_cursor"]
    altered = good[:-1] + ("0" if good[-1] != "0" else "1")
    r = request(url["cur"] + "/customers?cursor=" + altered)
    assert r.status == 400 and "cursor" in r.json()["error"]


def test_link_header_names_the_host_asked_for(make_junction):
    j, url = apis_junction(make_junction, {
        "lnk": {"script": "inventory.lua", "resource": "products", "paging": {
            "style": "link", "page_size": 4}},
    })
    port = url["lnk"].rsplit(":", 1)[1]
    r = request(url["lnk"] + "/products")
    assert r.headers["Link"] == \
        f'<http://127.0.0.1:{port}/products?page=2&per_page=4>; rel="next"'
    assert r.headers["X-Total-Count"] == "10"
    r = request(url["lnk"] + "/products?page=2&per_page=4", headers={"Host": "api.example:9"})
    assert r.headers["Link"] == '<http://api.example:9/products?page=3&per_page=4>; rel="next"'
    assert "Link" not in request(url["lnk"] + "/products?page=3&per_page=4").headers
    # A Host that cannot go into a URL as it is: the listen address instead.
    out = raw(int(port), b"GET /products HTTP/1.1\r\nHost: a>b\r\nConnection: close\r\n\r\n")
    assert f"Link: <http://127.0.0.1:{port}/products?page=2&per_page=4>".encode() in out


def test_admin_faults_route_knows_the_configured_names(make_junction):
    j, url = apis_junction(make_junction, {
        "orders": {"script": "orders.lua", "count": 3},
        "people": {"script": "crm.lua", "count": 3},
    })
    r = request(j.admin + "/api/faults/people", "PUT", '{"fail_next":1,"error_status":503}')
    assert r.status == 200 and r.json()["people"]["faults"]["fail_next"] == 1
    assert request(url["people"] + "/customers").status == 503
    assert request(url["people"] + "/customers").status == 200
    r = request(j.admin + "/api/faults/crm", "PUT", "{}")
    assert r.status == 404
    assert r.json() == {"error": "no such API in this process; use orders or people"}


def test_duplicate_names_or_listeners_stop_start_up_naming_both(make_junction):
    from junction_test import lua_value
    j = make_junction(start=False)
    crm = os.path.join(j.scripts, "crm.lua")

    def fails_with(apis, needle):
        with open(j.config, "w") as f:
            f.write("return " + lua_value({"admin": {"listen": f"127.0.0.1:{j.admin_port}"},
                                           "apis": apis}) + "\n")
        p = start_fails(j)
        assert p.returncode == 2 and needle in p.stderr, p.stderr

    same = f"127.0.0.1:{j.crm_port}"
    fails_with({"a": {"listen": same, "script": crm}, "b": {"listen": same, "script": crm}},
               f"apis.a.listen and apis.b.listen are both {same}")
    fails_with([{"name": "a", "listen": same, "script": crm},
                {"name": "a", "listen": f"127.0.0.1:{j.inv_port}", "script": crm}],
               "apis.a is defined twice (apis[1] and apis[2])")


def test_missing_or_empty_token_stops_start_up_naming_key_and_file(make_junction, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    missing = tmp_path / "missing"
    for token, needles in (({"file": str(empty)}, ["apis.o.token", str(empty), "is empty"]),
                           ({"file": str(missing)}, ["apis.o.token", str(missing),
                                                     "No such file"]),
                           ({"env": "JN_E2E_UNSET_TOKEN"},
                            ["apis.o.token", "JN_E2E_UNSET_TOKEN is not set",
                             "JN_E2E_UNSET_TOKEN_FILE"])):
        j, _ = apis_junction(make_junction, {"o": {"script": "orders.lua", "count": 1,
                                                   "token": token}}, start=False)
        j.env.pop("JN_E2E_UNSET_TOKEN", None)
        j.env.pop("JN_E2E_UNSET_TOKEN_FILE", None)
        p = start_fails(j)
        assert p.returncode == 2, p.stderr
        for n in needles:
            assert n in p.stderr, p.stderr


def test_local_example_serves_what_the_defaults_serve(make_junction):
    """examples/local.lua declares the seed's two APIs, with their ports from the
    environment; they answer byte for byte what the test harness's copy of them does."""
    from junction_test import ROOT
    legacy = make_junction()
    j = make_junction(start=False)
    j.env.update({"JUNCTION_CRM_LISTEN": f"127.0.0.1:{j.crm_port}",
                  "JUNCTION_INVENTORY_LISTEN": f"127.0.0.1:{j.inv_port}",
                  "JUNCTION_ADMIN_LISTEN": f"127.0.0.1:{j.admin_port}"})
    j.config = os.path.join(ROOT, "examples", "local.lua")
    j.start()
    for path in ("/customers", "/customers/7", "/customers?limit=3&offset=5"):
        a, b = request(legacy.crm + path), request(j.crm + path)
        assert (a.status, a.body, a.headers["ETag"]) == (b.status, b.body, b.headers["ETag"])
    for path in ("/products", "/products/3"):
        a, b = request(legacy.inventory + path), request(j.inventory + path)
        assert (a.status, a.body) == (b.status, b.body)
    assert request(j.crm + "/customers/5000").json() == {"error": "Customer not found"}
    assert request(j.inventory + "/products/99").json() == {"error": "Product not found"}
    a = request(legacy.admin + "/api/status").json()["api"]
    b = request(j.admin + "/api/status").json()["api"]
    for s in (a, b):
        for api in s.values():
            api.pop("port")
    assert a == b and sorted(a) == ["crm", "inventory"]
    assert a["crm"]["resource"] == "/customers" and a["crm"]["paging"] == "none"
    r = request(legacy.admin + "/api/faults/nope", "PUT", "{}")
    assert r.json() == {"error": "no such API in this process; use crm or inventory"}
