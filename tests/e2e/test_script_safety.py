"""A script can never take the host down: each defect found by trying it as a user would
(empty or half-saved scripts, pcall around a runaway loop, a pattern that backtracks for
seconds, memory hogs, one script patching a shared module, a script path that is a
folder or /dev/zero, a repeated id) ends in a clear error, with the previous version
serving and the process alive and answering."""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from junction_test import BINARY, ROOT, request, wait_until


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def sanitized(pid):
    """ASan keeps freed memory in a quarantine and adds its own: RSS means nothing there."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def script_status(j, name):
    return [s for s in request(j.admin + "/api/status").json()["scripts"] if s["name"] == name][0]


def reload_errors(j, name):
    return j.metric("junction_script_reloads_total", script=name, result="error") or 0


class Pinger:
    """Asks /healthz every 50 ms from another thread and keeps the slowest answer."""

    def __init__(self, j):
        self.j, self.worst, self.failures, self.stop_ = j, 0.0, [], False
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_:
            t = time.time()
            try:
                ok = request(self.j.admin + "/healthz", timeout=2).status == 200
                if not ok:
                    self.failures.append("status")
            except OSError as e:
                self.failures.append(str(e))
            self.worst = max(self.worst, time.time() - t)
            time.sleep(0.05)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ = True
        self.t.join()


def generate_with(j, code):
    """Rewrites crm.lua so that generate() runs `code` first."""
    path = os.path.join(j.scripts, "crm.lua")
    good = read(os.path.join(ROOT, "scripts", "crm.lua"))
    assert "function M.generate(opts)" in good
    write(path, good.replace("function M.generate(opts)", "function M.generate(opts)\n" + code, 1))
    return path


def reload_rejected(j, name="crm"):
    r = request(j.admin + "/api/reload", "POST", timeout=30)
    assert r.status == 422, r.body
    return script_status(j, name)["last_error"]


def assert_old_version_serves(j):
    assert len(request(j.crm + "/customers").json()) == 1000
    assert script_status(j, "crm")["version"] == 1
    assert j.proc.poll() is None


# ---- saving an empty or half-written script ---------------------------------------------

@pytest.mark.parametrize("text", ["", "return nil\n", "local M = {}\n", "return 42\n"])
def test_empty_or_moduleless_script_is_a_reload_error_not_a_crash(make_junction, text):
    j = make_junction({"scripts": {"watch": True}})
    write(os.path.join(j.scripts, "crm.lua"), text)
    assert wait_until(lambda: reload_errors(j, "crm") >= 1, 5), j.logs()
    time.sleep(0.3)
    assert j.proc.poll() is None, j.logs()
    assert request(j.admin + "/healthz").status == 200
    assert_old_version_serves(j)
    err = script_status(j, "crm")["last_error"]
    assert "crm.lua" in err and "return M" in err, err
    assert "PANIC" not in j.logs()


def test_a_module_missing_a_function_names_it(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    write(path, read(path).replace("function M.generate(opts)", "function M.generate_(opts)"))
    assert wait_until(lambda: reload_errors(junction, "crm") >= 1, 5), junction.logs()
    assert "generate" in script_status(junction, "crm")["last_error"]
    assert_old_version_serves(junction)


def test_module_whose_metatable_raises_is_a_reload_error(junction):
    write(os.path.join(junction.scripts, "crm.lua"),
          "return setmetatable({}, {__index = function(_, k) error('no field ' .. k) end})\n")
    assert wait_until(lambda: reload_errors(junction, "crm") >= 1, 5), junction.logs()
    assert "no field" in script_status(junction, "crm")["last_error"]
    assert_old_version_serves(junction)


def test_truncate_then_write_later_loads_once_without_an_error(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    good = read(path).replace('"Customer " .. i', '"Saved " .. i')
    with open(path, "w"):
        pass  # truncated, as editors that rewrite in place do first
    time.sleep(0.05)
    write(path, good)
    assert wait_until(lambda: script_status(junction, "crm")["version"] == 2, 5), junction.logs()
    time.sleep(0.5)
    st = script_status(junction, "crm")
    assert st["version"] == 2 and st["last_error"] is None, st
    assert reload_errors(junction, "crm") == 0
    assert request(junction.crm + "/customers/1").json()["name"] == "Saved 1"


def test_several_quick_writes_load_the_final_text_once(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    good = read(path).replace('"Customer " .. i', '"Final " .. i')
    for cut in (len(good) // 3, 2 * len(good) // 3, len(good)):
        write(path, good[:cut])
        time.sleep(0.03)
    assert wait_until(lambda: script_status(junction, "crm")["version"] == 2, 5), junction.logs()
    time.sleep(0.5)
    assert reload_errors(junction, "crm") == 0, junction.logs()
    assert request(junction.crm + "/customers/1").json()["name"] == "Final 1"


def test_empty_script_at_start_is_a_clear_startup_error(make_junction):
    j = make_junction(start=False)
    write(os.path.join(j.scripts, "crm.lua"), "")
    p = subprocess.run([BINARY, "api", "--config", j.config], cwd=ROOT, capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0 and p.returncode != -signal.SIGABRT and p.returncode != 134
    assert "crm.lua" in p.stderr and "return M" in p.stderr, p.stderr
    assert "PANIC" not in p.stderr


@pytest.mark.parametrize("target", ["folder", "/dev/zero"])
def test_script_path_that_is_not_a_regular_file_is_refused(make_junction, tmp_path, target):
    path = str(tmp_path) if target == "folder" else target
    j = make_junction({"apis": {"crm": {"script": path}}}, start=False)
    t = time.time()
    p = subprocess.run([BINARY, "api", "--config", j.config], cwd=ROOT, capture_output=True,
                       text=True, timeout=20)
    assert time.time() - t < 10
    assert p.returncode not in (0, 134, -signal.SIGABRT), p.stderr
    assert "not a regular file" in p.stderr and path in p.stderr, p.stderr


def test_empty_map_script_under_produce_keeps_the_old_version(make_junction):
    j = make_junction({"sources": {"crm": {"enabled": False}, "inventory": {"enabled": True}}},
                      command="produce")
    write(os.path.join(j.scripts, "map_products.lua"), "")
    assert wait_until(lambda: reload_errors(j, "map_inventory") + reload_errors(j, "inventory") >= 1
                    or "rejected" in j.logs(), 5), j.logs()
    time.sleep(0.3)
    assert j.proc.poll() is None, j.logs()
    assert "PANIC" not in j.logs() and "return M" in j.logs()
    assert request(j.admin + "/healthz").status == 200


# ---- CPU and time limits ------------------------------------------------------------------

HOSTILE_CPU = {
    "pcall around a runaway loop":
        "while true do pcall(function() while true do end end) end",
    "xpcall with a handler that loops":
        "while true do xpcall(function() while true do end end, function() while true do end end) end",
    "coroutines that swallow errors":
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    "a pattern that backtracks for seconds":
        "string.find(string.rep('a', 400), '.-.-.-b')",
    "the same pattern as a string method":
        "local s = ('a'):rep(400); while true do pcall(s.find, s, '.-.-.-b') end",
    "table.move over an enormous range":
        "table.move({1}, 1, 1e15, 2)",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CPU))
def test_cpu_hogs_are_stopped_and_the_loop_stays_responsive(make_junction, name):
    j = make_junction({"scripts": {"watch": False, "time_limit_ms": 300}})
    generate_with(j, HOSTILE_CPU[name])
    with Pinger(j) as p:
        t = time.time()
        err = reload_rejected(j)
        took = time.time() - t
    assert "limit" in err, err
    assert took < 5, took
    assert not p.failures and p.worst < 1.0, (p.worst, p.failures)
    assert_old_version_serves(j)
    # The process still stops on SIGTERM.
    assert j.stop() == 0


def test_sigterm_during_a_runaway_reload_still_stops_the_process(make_junction):
    j = make_junction({"scripts": {"watch": False, "time_limit_ms": 2000,
                                   "instruction_limit": 1000000000000}})
    generate_with(j, HOSTILE_CPU["pcall around a runaway loop"])
    threading.Thread(target=lambda: request(j.admin + "/api/reload", "POST", timeout=30),
                     daemon=True).start()
    time.sleep(0.3)
    t = time.time()
    assert j.stop(timeout=10) == 0
    assert time.time() - t < 8


# ---- memory ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", [
    'local s = string.rep("x", 1 << 30)',
    "local t = {} for i = 1, 2e7 do t[i] = {i} end",
    "local t = {} for i = 1, 2e7 do t[i] = ('x'):rep(64) .. i end",
    "local t = {} while true do pcall(function() for i = 1, 1e6 do t[#t + 1] = {i} end end) end",
])
def test_memory_hogs_fail_under_the_ceiling_and_memory_is_given_back(make_junction, code):
    limit_mb = 64
    # Time and instructions to spare (the sanitizer build is slow): the ceiling must be
    # what stops each hog.
    j = make_junction({"scripts": {"watch": False, "memory_limit_mb": limit_mb,
                                   "time_limit_ms": 30000,
                                   "instruction_limit": 100000000000}})
    base = rss_bytes(j.proc.pid)
    generate_with(j, code)
    peak = [base]
    stop = [False]

    def sample():
        while not stop[0]:
            peak[0] = max(peak[0], rss_bytes(j.proc.pid))
            time.sleep(0.01)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    with Pinger(j) as p:
        err = reload_rejected(j)
    stop[0] = True
    t.join()
    assert not p.failures, p.failures
    if not sanitized(j.proc.pid):
        # Filling the ceiling takes well under a second, and a script that catches the
        # error does not keep the loop (the sanitizer build is several times slower).
        assert p.worst < 1.0, p.worst
    assert "not enough memory" in err and f"memory limit of {limit_mb} MB" in err, err
    if not sanitized(j.proc.pid):
        # The ceiling holds (plus the pool's current chunk and the process's own), and
        # what the rejected version built is given back.
        assert peak[0] - base < (limit_mb + 48) << 20, (base, peak[0])
        after = rss_bytes(j.proc.pid)
        assert after - base < 24 << 20, (base, after)
    assert_old_version_serves(j)
    # The state is usable: a good version loads afterwards.
    write(os.path.join(j.scripts, "crm.lua"), read(os.path.join(ROOT, "scripts", "crm.lua")))
    assert request(j.admin + "/api/reload", "POST", timeout=30).status == 200
    assert script_status(j, "crm")["version"] == 2


# ---- isolation ------------------------------------------------------------------------

def test_one_script_cannot_patch_junction_for_the_others(junction):
    path = os.path.join(junction.scripts, "inventory.lua")
    write(path, read(path).replace("function M.generate(opts)",
                                   "junction.sha256 = function() return 'tampered' end\n"
                                   "function M.generate(opts)", 1))
    assert wait_until(lambda: reload_errors(junction, "inventory") >= 1, 5), junction.logs()
    assert "read-only" in script_status(junction, "inventory")["last_error"]
    # rawset only reaches the script's own view.
    crm = os.path.join(junction.scripts, "crm.lua")
    write(path, read(os.path.join(ROOT, "scripts", "inventory.lua")).replace(
        "function M.generate(opts)",
        "rawset(junction, 'sha256', function() return 'tampered' end)\n"
        "function M.generate(opts)", 1))
    write(crm, read(crm).replace("function M.generate(opts)",
                                 "function M.generate(opts)\n"
                                 "  assert(junction.sha256('') ~= 'tampered', 'tampered')", 1))
    r = request(junction.admin + "/api/reload", "POST", timeout=30)
    assert r.status == 200, r.body


# ---- data ---------------------------------------------------------------------------------

def test_a_repeated_id_in_generated_data_is_a_reload_error_naming_it(junction):
    path = os.path.join(junction.scripts, "crm.lua")
    generate_with(junction, "")
    text = read(path)
    m = re.search(r"return out\n", text)
    assert m, text
    write(path, text.replace("return out\n", "out[#out + 1] = out[7]\n  return out\n", 1))
    assert wait_until(lambda: reload_errors(junction, "crm") >= 1, 5), junction.logs()
    err = script_status(junction, "crm")["last_error"]
    assert "repeats id 7" in err, err
    assert_old_version_serves(junction)
