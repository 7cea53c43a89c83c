"""End-to-end tests of `junction analytics` (the Analytics REST API stand-in) over real
sockets: accepting and storing batches byte for byte, Idempotency-Key duplicates, the
exact id counts the consumer's tests rely on, bad bodies, fault injection, the JSON-lines
file, clearing, metrics and shutdown."""
import http.client
import json
import signal
import time

import pytest

from junction_test import raw_exchange, request


@pytest.fixture
def analytics(make_junction):
    return make_junction(command="analytics")


def post(j, records, key=None, path="/analytics", raw=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = raw if raw is not None else json.dumps(records)
    return request(j.analytics + path, "POST", body, headers)


def stats(j):
    r = request(j.analytics + "/analytics/stats")
    assert r.status == 200
    return r.json()


def records(j, query=""):
    r = request(j.analytics + "/analytics/records" + query)
    assert r.status == 200
    return r


def set_faults(j, faults):
    r = request(j.analytics + "/analytics/faults", "PUT", json.dumps(faults))
    assert r.status == 200, r.body
    return r.json()


# ---- accepting and storing --------------------------------------------------------------

def test_accepted_batch_is_counted_and_stored(analytics):
    batch = [{"id": 1, "name": "Ada", "products": [{"id": "2"}]}, {"id": 2, "name": "Bo"}]
    r = post(analytics, batch, key="batch-1")
    assert r.status == 200
    assert r.json() == {"status": "accepted", "records": 2}
    s = stats(analytics)
    assert s["batches"] == 1 and s["records"] == 2
    assert s["duplicate_batches"] == 0 and s["batches_without_key"] == 0
    assert s["distinct_ids"] == 2 and s["repeated_ids"] == 0
    r = records(analytics)
    assert r.json() == batch
    assert r.headers["X-Total-Count"] == "2"


def test_records_wrapper_object_and_records_route(analytics):
    r = post(analytics, {"records": [{"id": "a"}], "meta": {"n": 1}}, key="w1")
    assert r.json() == {"status": "accepted", "records": 1}
    r = post(analytics, [{"id": "b"}], key="w2", path="/analytics/records")
    assert r.json() == {"status": "accepted", "records": 1}
    # A key spelled with a JSON escape is still "records".
    r = post(analytics, None, key="w3", raw='{"rec\\u006frds": [{"id": "c"}]}')
    assert r.json() == {"status": "accepted", "records": 1}
    assert [x["id"] for x in records(analytics).json()] == ["a", "b", "c"]


def test_records_are_kept_byte_for_byte(analytics):
    # Key order, spacing and number spelling as sent: nothing is re-encoded.
    texts = ['{"z":1,"id":7,"a":[1,2.50,{"q":"]}\\""}]}', '{ "id" : "x" ,\n  "n" : 1e2 }']
    r = post(analytics, None, key="exact", raw="[" + ",".join(texts) + "]")
    assert r.status == 200
    assert records(analytics).body.decode() == "[" + ",".join(texts) + "]"


def test_empty_batch_is_accepted(analytics):
    r = post(analytics, [], key="empty")
    assert r.json() == {"status": "accepted", "records": 0}
    assert stats(analytics)["batches"] == 1


def test_limit_and_offset(analytics):
    post(analytics, [{"id": i} for i in range(10)], key="page")
    r = records(analytics, "?offset=3&limit=4")
    assert [x["id"] for x in r.json()] == [3, 4, 5, 6]
    assert r.headers["X-Total-Count"] == "10"
    assert records(analytics, "?offset=50").json() == []
    assert request(analytics.analytics + "/analytics/records?limit=x").status == 400


# ---- idempotency ------------------------------------------------------------------------

def test_repeated_idempotency_key_is_a_duplicate_and_not_stored(analytics):
    batch = [{"id": 1}, {"id": 2}, {"id": 3}]
    assert post(analytics, batch, key="k-1").json()["status"] == "accepted"
    for _ in range(2):
        r = post(analytics, batch, key="k-1")
        assert r.status == 200
        assert r.json() == {"status": "duplicate", "records": 3}
    assert post(analytics, [{"id": 4}], key="k-2").json()["status"] == "accepted"
    assert post(analytics, [{"id": 4}], key="k-2").json()["status"] == "duplicate"
    s = stats(analytics)
    assert s["batches"] == 2 and s["records"] == 4
    assert s["duplicate_batches"] == 3 and s["duplicate_records"] == 3 + 3 + 1
    assert s["duplicate_keys"] == {"k-1": 2, "k-2": 1}
    assert s["duplicate_keys_total"] == 2
    assert s["distinct_ids"] == 4 and s["repeated_ids"] == 0
    assert len(records(analytics).json()) == 4
    assert analytics.metric("junction_analytics_batches_total", result="duplicate") == 3
    assert analytics.metric("junction_analytics_batches_total", result="accepted") == 2
    assert analytics.metric("junction_analytics_records_total") == 4


def test_missing_or_blank_key_is_accepted_and_counted(analytics):
    assert post(analytics, [{"id": 1}]).json()["status"] == "accepted"
    assert post(analytics, [{"id": 1}]).json()["status"] == "accepted"
    assert post(analytics, [{"id": 2}], key="  ").json()["status"] == "accepted"
    s = stats(analytics)
    assert s["batches"] == 3 and s["batches_without_key"] == 3 and s["duplicate_batches"] == 0
    assert s["distinct_ids"] == 2 and s["repeated_ids"] == 1


def test_pipelined_requests_do_not_share_a_key(analytics):
    body = b'[{"id":1}]'

    def req(key):
        h = b"Idempotency-Key: " + key + b"\r\n" if key else b""
        return (b"POST /analytics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + h
                + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    last = req(None).replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    out = raw_exchange(analytics.analytics_port, req(b"p-1") + req(None) + req(b"p-1") + last)
    assert out.count(b"HTTP/1.1 200") == 4
    assert out.count(b'"duplicate"') == 1
    s = stats(analytics)
    assert s["batches"] == 3 and s["batches_without_key"] == 2 and s["duplicate_batches"] == 1


# ---- ids ----------------------------------------------------------------------------------

def test_distinct_and_repeated_ids_are_exact(analytics):
    post(analytics, [{"id": i} for i in range(1, 101)], key="a")
    # 50..149: 51 ids seen again (50..100), 49 new ones.
    post(analytics, [{"id": i} for i in range(50, 150)], key="b")
    # 1 and 7 are seen again (7.0 is the number 7); then 1 a third time: still one id.
    post(analytics, [{"id": 1}, {"id": 7.0}], key="c")
    post(analytics, [{"id": 1}], key="c2")
    # A string id is not the number with the same digits; escapes are decoded first.
    post(analytics, [{"id": "1"}, {"id": "\\u0031"}, {"id": "s"}], key="d",
         raw='[{"id": "1"}, {"id": "\\u0031"}, {"id": "s"}]')
    # Records without an id are stored but not counted as ids.
    post(analytics, [{"name": "no id"}, {"id": None}], key="e")
    # Duplicates (same key) and rejected batches do not count.
    post(analytics, [{"id": 1000}], key="a")
    post(analytics, None, key="f", raw='[{"id": 2000}, 3]')
    s = stats(analytics)
    assert s["records"] == 100 + 100 + 2 + 1 + 3 + 2
    assert s["distinct_ids"] == 149 + 2  # 1..149, "1", "s"
    assert s["repeated_ids"] == 51 + 3  # 50..100, then 1, 7 and "1"
    assert s["records_without_id"] == 2


# Spellings of one id each: every group must count as a single id, and the groups as
# different ids. The id is compared as jn_json_encode would write the decoded value.
ID_SPELLINGS = [
    ["7", "7.0", "7e0", "70e-1", "0.7e1", "7.000"],
    ['"7"', '"\\u0037"'],
    ["0", "-0", "0.0"],
    ["1e20", "100000000000000000000", "1E+20"],
    ['"a/b"', '"a\\/b"', '"\\u0061/b"'],
    ['"\u00e9"', '"\\u00e9"'],
    ["true"],
    ['"true"'],
    ['{"b":1,"a":[2]}', '{"a":[2],"b":1}', '{ "a" : [ 2.0 ] , "b" : 1 }', '{"a":[2],"b":0,"b":1}'],
    ["{}", "[]", "[ ]"],
    ["[1,null]", "[1, null]"],
]


def clear(j):
    assert request(j.analytics + "/analytics/records", "DELETE").status == 200


def test_id_spellings_compare_by_value(analytics):
    for group in ID_SPELLINGS:
        clear(analytics)
        raw = "[" + ",".join('{"n":0,"id":%s,"z":[]}' % x for x in group) + "]"
        assert post(analytics, None, raw=raw).status == 200
        s = stats(analytics)
        assert (s["distinct_ids"], s["records_without_id"]) == (1, 0), group
        assert s["repeated_ids"] == (1 if len(group) > 1 else 0), group
    clear(analytics)
    raw = "[" + ",".join('{"id":%s}' % g[-1] for g in ID_SPELLINGS) + "]"
    post(analytics, None, raw=raw)
    assert stats(analytics)["distinct_ids"] == len(ID_SPELLINGS)


def test_id_key_spellings_and_repeats(analytics):
    # A key spelled with escapes is "id"; of a repeated key the last one counts.
    raw = ('[{"i\\u0064": 7}, {"id": "x", "id": 7}, {"\\u0069d": 7.0}, {"id":7},'
           ' {"id": 7, "id ": 8, "ID": 9}]')
    post(analytics, None, raw=raw)
    s = stats(analytics)
    assert (s["distinct_ids"], s["repeated_ids"], s["records_without_id"]) == (1, 1, 0)
    # No id: absent, null (also when it repeats one), a look-alike key, or a number JSON
    # cannot write back (1e999 is infinite).
    clear(analytics)
    raw = ('[{}, {"id": null}, {"id": 7, "id": null}, {"ID": 7}, {"idx": 7}, {"i d": 7},'
           ' {"id": 1e999}, {"a": {"id": 7}}]')
    post(analytics, None, raw=raw)
    s = stats(analytics)
    assert (s["distinct_ids"], s["records_without_id"], s["records"]) == (0, 8, 8)


# ---- bad bodies -----------------------------------------------------------------------------

@pytest.mark.parametrize("body,status,words", [
    ('[{"id": 1,}]', 400, "malformed JSON"),
    ('[{"id": 1}', 400, "malformed JSON"),
    ("", 400, "empty"),
    ('{"id": 1}', 422, "array of record objects"),
    ('[{"id": 1}, 2]', 422, "record 2 is a number"),
    ('[[]]', 422, "record 1 is an array"),
    ('"records"', 422, "array of record objects"),
    ('{"records": {"id": 1}}', 422, "array of record objects"),
])
def test_bad_bodies_are_rejected_with_a_reason(analytics, body, status, words):
    r = post(analytics, None, key="bad", raw=body)
    assert r.status == status
    assert words in r.json()["error"]
    s = stats(analytics)
    assert s["records"] == 0 and s["rejected_batches"] == 1
    # The key of a rejected batch is not remembered: a corrected retry is accepted.
    assert post(analytics, [{"id": 1}], key="bad").json()["status"] == "accepted"
    assert analytics.metric("junction_analytics_batches_total", result="rejected") == 1


def test_unknown_route_and_wrong_method(analytics):
    assert request(analytics.analytics + "/nope").status == 404
    r = request(analytics.analytics + "/analytics")
    assert r.status == 405 and "POST" in r.headers["Allow"]


def test_body_over_max_body_bytes_is_413(make_junction):
    j = make_junction({"analytics": {"max_body_bytes": 1024}}, command="analytics")
    r = post(j, [{"id": i, "pad": "x" * 100} for i in range(20)], key="big")
    assert r.status == 413
    assert stats(j)["records"] == 0


# ---- fault injection ------------------------------------------------------------------------

def test_fail_next_answers_errors_then_recovers(analytics):
    f = set_faults(analytics, {"fail_next": 2, "error_status": 503})
    assert f["fail_next"] == 2 and f["error_status"] == 503
    for _ in range(2):
        r = post(analytics, [{"id": 1}], key="retry-me")
        assert r.status == 503
        assert r.headers["Retry-After"] == "1"
    # Stats and records are never subject to faults.
    assert stats(analytics)["records"] == 0
    r = post(analytics, [{"id": 1}], key="retry-me")
    assert r.status == 200 and r.json()["status"] == "accepted"
    s = stats(analytics)
    assert s["failed_batches"] == 2 and s["batches"] == 1 and s["duplicate_batches"] == 0
    assert s["faults"]["fail_next"] == 0
    assert analytics.metric("junction_analytics_batches_total", result="failed") == 2


def test_error_rate_one_with_a_status_then_reset(analytics):
    set_faults(analytics, {"error_rate": 1, "error_status": 400})
    for _ in range(3):
        r = post(analytics, [{"id": 1}], key="e")
        assert r.status == 400 and r.json() == {"error": "injected fault"}
        assert "Retry-After" not in r.headers
    assert set_faults(analytics, {}) == {"error_rate": 0, "error_status": 503, "latency_ms": 0,
                                         "drop_rate": 0, "fail_next": 0}
    assert post(analytics, [{"id": 1}], key="e").status == 200
    assert stats(analytics)["records"] == 1


def test_latency_delays_the_answer(analytics):
    set_faults(analytics, {"latency_ms": 400})
    t = time.monotonic()
    assert post(analytics, [{"id": 1}], key="slow").status == 200
    assert time.monotonic() - t >= 0.38
    t = time.monotonic()
    stats(analytics)
    assert time.monotonic() - t < 0.3  # inspection routes are not delayed


def test_drop_closes_the_connection_without_an_answer(analytics):
    set_faults(analytics, {"drop_rate": 1})
    body = b'[{"id":1}]'
    out = raw_exchange(analytics.analytics_port,
                       b"POST /analytics HTTP/1.1\r\nHost: x\r\nIdempotency-Key: d\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert out == b""
    conn = http.client.HTTPConnection("127.0.0.1", analytics.analytics_port, timeout=5)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.request("POST", "/analytics", body=body, headers={"Idempotency-Key": "d"})
        conn.getresponse()
    conn.close()
    s = stats(analytics)
    assert s["dropped_batches"] == 2 and s["records"] == 0
    set_faults(analytics, {})
    assert post(analytics, [{"id": 1}], key="d").json()["status"] == "accepted"


@pytest.mark.parametrize("faults", [
    {"error_rate": 2}, {"error_status": 200}, {"error_status": 600}, {"drop_rate": -1},
    {"latency_ms": "slow"}, {"bogus": 1}, [1],
])
def test_bad_fault_settings_are_rejected(analytics, faults):
    r = request(analytics.analytics + "/analytics/faults", "PUT", json.dumps(faults))
    assert r.status == 400 and "error" in r.json()
    assert request(analytics.analytics + "/analytics/faults").json()["error_rate"] == 0


# ---- clearing, file, admin, shutdown ----------------------------------------------------

def test_delete_clears_records_keys_and_counters(analytics):
    post(analytics, [{"id": 1}, {"id": 1}], key="x")
    post(analytics, [{"id": 2}], key="x")
    set_faults(analytics, {"latency_ms": 1})
    r = request(analytics.analytics + "/analytics/records", "DELETE")
    assert r.status == 200 and r.json() == {"status": "cleared", "records": 2}
    s = stats(analytics)
    for k in ("batches", "records", "duplicate_batches", "distinct_ids", "repeated_ids",
              "duplicate_keys_total"):
        assert s[k] == 0, k
    assert s["duplicate_keys"] == {}
    assert s["faults"]["latency_ms"] == 1  # faults are settings, not data
    assert records(analytics).json() == []
    # The key is forgotten too.
    assert post(analytics, [{"id": 2}], key="x").json()["status"] == "accepted"


def test_accepted_records_are_appended_to_the_file_one_per_line(make_junction, tmp_path):
    path = tmp_path / "received.jsonl"
    j = make_junction({"analytics": {"file": str(path)}}, command="analytics")
    post(j, [{"id": 1, "n": "a"}, {"id": 2}], key="f1")
    post(j, [{"id": 1, "n": "a"}, {"id": 2}], key="f1")  # duplicate: not written
    set_faults(j, {"fail_next": 1})
    post(j, [{"id": 9}], key="f2")  # failed: not written
    post(j, None, key="f3", raw='[{"id": 3,\n  "pretty": true}]')
    post(j, None, key="f4", raw="[1]")  # rejected: not written
    lines = path.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"id": 1, "n": "a"}, {"id": 2},
                                              {"id": 3, "pretty": True}]
    assert lines[0] == '{"id": 1, "n": "a"}'  # as sent (json.dumps spacing)
    assert j.stop() == 0


def test_unwritable_file_fails_at_start(make_junction, tmp_path):
    j = make_junction({"analytics": {"file": str(tmp_path / "no" / "such" / "dir.jsonl")}},
                      command="analytics", start=False)
    with pytest.raises(AssertionError, match="analytics.file"):
        j.start()


def test_admin_status_includes_analytics(analytics):
    post(analytics, [{"id": 1}], key="s")
    r = request(analytics.admin + "/api/status")
    assert r.json()["analytics"]["records"] == 1


def test_sigterm_exits_zero(analytics):
    post(analytics, [{"id": 1}], key="t")
    assert analytics.stop(signal.SIGTERM) == 0
    assert "stopped" in analytics.logs()
