-- Hostile scripts under the real host: each attack is saved as the CRM data script of a
-- running `junction api` and reloaded. Throughout, /healthz must answer within 1 s, the
-- reload must be refused with a clear error, the previous version must keep serving its
-- 1000 customers, and the process's memory must stay under the configured ceiling plus a
-- margin. Needs the built binary (build/junction, or $JUNCTION_BIN) and curl.
local junction = require "junction"

local BIN = os.getenv("JUNCTION_BIN") or "build/junction"
local CEILING_MB = 64
local MARGIN_MB = 48

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function free_port()
  return tonumber(sh([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']]))
end

-- status code and body of one request
local function http(method, url, timeout)
  local out = sh(string.format("curl -s -X %s --max-time %d -w '\\n%%{http_code}' '%s'",
    method, timeout or 5, url))
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code), body
end

local function status_kb(pid, field)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

local GOOD = read("scripts/crm.lua")

local function in_generate(code)
  local text, n = GOOD:gsub("function M%.generate%(opts%)", "function M.generate(opts)\n" .. code, 1)
  assert(n == 1)
  return text
end

local ATTACKS = {
  { "an empty file", "" },
  { "a chunk that returns nil", "return nil\n" },
  { "a module without generate", (GOOD:gsub("function M%.generate", "function M.gen")) },
  { "a module whose metatable raises",
    "return setmetatable({}, {__index = function(_, k) error('no ' .. k) end})\n" },
  { "a runaway loop", in_generate("while true do end") },
  { "pcall around a runaway loop", in_generate("while true do pcall(function() while true do end end) end") },
  { "xpcall whose handler loops",
    in_generate("while true do xpcall(function() while true do end end, function() while true do end end) end") },
  { "a coroutine that swallows the error",
    in_generate("while true do coroutine.resume(coroutine.create(function() while true do end end)) end") },
  { "a pattern that backtracks for seconds", in_generate("string.find(string.rep('a', 400), '.-.-.-b')") },
  { "table.move over 1e15 slots", in_generate("table.move({1}, 1, 1e15, 2)") },
  { "a gigabyte string", in_generate("local s = string.rep('x', 1 << 30)") },
  { "twenty million tables", in_generate("local t = {} for i = 1, 2e7 do t[i] = {i} end") },
  { "memory errors caught in a loop",
    in_generate("local t = {} while true do pcall(function() for i = 1, 1e6 do t[#t + 1] = {i} end end) end") },
  { "patching the shared junction module", in_generate("junction.sha256 = function() return 'x' end") },
  { "a finalizer that loops", in_generate("setmetatable({}, {__gc = function() while true do end end})") },
  { "reading a file outside the scripts folder", in_generate("io.open('/etc/passwd')") },
  { "running a command", in_generate("os.execute('true')") },
  { "a huge chunk for load", in_generate("load(string.rep(' ', 8 << 20))") },
  { "a repeated id", (GOOD:gsub("\n  return out\n", "\n  out[#out + 1] = out[7]\n  return out\n", 1)) },
}

describe("the host under hostile scripts", function()
  local dir, pid, admin, crm, script

  setup(function()
    dir = sh("mktemp -d /tmp/jn_hostile_XXXXXX"):gsub("%s+$", "")
    sh("cp -r scripts " .. dir .. "/scripts")
    script = dir .. "/scripts/crm.lua"
    local aport, cport, iport = free_port(), free_port(), free_port()
    admin = "http://127.0.0.1:" .. aport
    crm = "http://127.0.0.1:" .. cport
    write(dir .. "/config.lua", string.format([[
return {
  admin = { listen = "127.0.0.1:%d" },
  scripts = { watch = false, memory_limit_mb = %d, time_limit_ms = 300 },
  apis = {
    crm = { listen = "127.0.0.1:%d", script = %q, resource = "customers", singular = "Customer" },
    inventory = { listen = "127.0.0.1:%d", script = %q, resource = "products", singular = "Product" },
  },
}
]], aport, CEILING_MB, cport, script, iport, dir .. "/scripts/inventory.lua"))
    pid = sh(string.format("%s api --config %s/config.lua >%s/junction.log 2>&1 & echo $!",
      BIN, dir, dir)):gsub("%s+$", "")
    for _ = 1, 100 do
      if http("GET", admin .. "/healthz", 1) == 200 then return end
      sh("sleep 0.1")
    end
    error("junction did not start:\n" .. read(dir .. "/junction.log"))
  end)

  teardown(function()
    if pid then sh("kill " .. pid .. "; sleep 0.5") end
    if dir then sh("rm -rf " .. dir) end
  end)

  for _, attack in ipairs(ATTACKS) do
    local name, text = attack[1], attack[2]
    it("survives " .. name, function()
      local base_kb = assert(status_kb(pid, "VmRSS"))
      sh("echo 5 > /proc/" .. pid .. "/clear_refs") -- peak RSS (VmHWM) starts again here
      write(script, text)
      -- /healthz asked every 50 ms from another process while the reload runs.
      local ping = dir .. "/ping"
      sh(string.format("touch %s.on; (while [ -e %s.on ]; do curl -s -o /dev/null --max-time 1 " ..
        "-w '%%{http_code} %%{time_total}\\n' %s/healthz; sleep 0.05; done) >%s.log 2>&1 &",
        ping, ping, admin, ping))
      sh("sleep 0.1")
      local code, body = http("POST", admin .. "/api/reload", 60)
      sh("sleep 0.2; rm -f " .. ping .. ".on; sleep 1.2")
      assert.are.equal(422, code, body)
      local st = junction.json_decode(body)
      local last
      for _, s in ipairs(st.scripts) do
        if s.name == "crm" then last = s end
      end
      assert.are.equal(1, last.version)
      assert.is_string(last.last_error)
      local pings = 0
      for line in io.lines(ping .. ".log") do
        local c, t = line:match("^(%d+) ([%d.]+)$")
        assert.are.equal("200", c, "a /healthz went unanswered: " .. line)
        assert.is_true(tonumber(t) < 1.0, "a /healthz took " .. t .. " s")
        pings = pings + 1
      end
      assert.is_true(pings >= 2, "the pinger never ran")
      local c2, customers = http("GET", crm .. "/customers")
      assert.are.equal(200, c2)
      assert.are.equal(1000, #junction.json_decode(customers))
      local peak_kb = assert(status_kb(pid, "VmHWM"))
      assert.is_true(peak_kb - base_kb < (CEILING_MB + MARGIN_MB) * 1024,
        string.format("peak RSS %d kB, %d kB before the attack", peak_kb, base_kb))
      assert.is_true(status_kb(pid, "VmRSS") - base_kb < 24 * 1024, "memory was not given back")
    end)
  end

  it("still loads a good version afterwards", function()
    write(script, (GOOD:gsub('"Customer " %.%. i', '"After " .. i')))
    local code, body = http("POST", admin .. "/api/reload", 60)
    assert.are.equal(200, code, body)
    local _, one = http("GET", crm .. "/customers/1")
    assert.are.equal("After 1", junction.json_decode(one).name)
  end)
end)
