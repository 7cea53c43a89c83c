-- scripts/map_customers.lua and scripts/map_products.lua: the producer's map scripts.
-- The host decodes each API response with junction.json_decode (integers stay integers),
-- calls M.map(record, ctx) per record with ctx = {source = ..., topic = ...}, and expects
-- {key = string, value = table or string, headers = table of strings} or nil.
local loader = require "script_loader"
local junction = require "junction"

-- Decodes JSON text exactly as the producer does.
local function decode(text)
  local v, err = junction.json_decode(text)
  assert(v ~= nil, err)
  return v
end

-- The records a data script serves, as the producer receives them: generated, sent as
-- JSON by the API, decoded again.
local function served(path, count)
  local data = loader.load(path).generate({ count = count, seed = 42 })
  return decode(junction.json_encode(data))
end

-- Checks the shape the host accepts and returns the result.
local function check_shape(out)
  assert.is_table(out)
  assert.is_string(out.key)
  assert.is_true(#out.key > 0)
  assert.is_true(type(out.value) == "table" or type(out.value) == "string")
  if out.headers ~= nil then
    assert.is_table(out.headers)
    local n = 0
    for name, value in pairs(out.headers) do
      assert.is_string(name)
      assert.is_string(value)
      n = n + 1
    end
    assert.is_true(n <= 16)
  end
  return out
end

local CASES = {
  {
    script = "scripts/map_customers.lua",
    data = "scripts/crm.lua",
    count = 1000,
    ctx = { source = "crm", topic = "customer_data" },
    json = '{"id":7,"name":"Customer 7","email":"customer7@example.com",'
      .. '"phone":"078807","productIds":["1"]}',
    key = "7",
  },
  {
    script = "scripts/map_products.lua",
    data = "scripts/inventory.lua",
    count = 10,
    ctx = { source = "inventory", topic = "inventory_data" },
    json = '{"id":"3","name":"Ipantalo","stock":42}',
    key = "3",
  },
}

for _, case in ipairs(CASES) do
  describe(case.script, function()
    local m

    before_each(function()
      m = loader.load(case.script)
    end)

    it("defines map(record, ctx)", function()
      assert.is_function(m.map)
    end)

    it("keys the record by its id as a string", function()
      local out = check_shape(m.map(decode(case.json), case.ctx))
      assert.are.equal(case.key, out.key)
    end)

    it("sends the record itself as the value", function()
      local record = decode(case.json)
      local out = check_shape(m.map(record, case.ctx))
      assert.are.same(decode(case.json), out.value) -- same fields, nothing added or changed
      assert.are.equal(junction.json_encode(decode(case.json)), junction.json_encode(out.value))
    end)

    it("sets headers.source from ctx.source", function()
      local out = check_shape(m.map(decode(case.json), case.ctx))
      assert.is_table(out.headers)
      assert.are.equal(case.ctx.source, out.headers.source)
      -- taken from ctx, not written into the script
      local other = { source = "elsewhere", topic = "t" }
      assert.are.equal("elsewhere", check_shape(m.map(decode(case.json), other)).headers.source)
    end)

    it("gives every record the data script serves a unique key", function()
      local records = served(case.data, case.count)
      assert.are.equal(case.count, #records)
      local seen, n = {}, 0
      for i, record in ipairs(records) do
        local out = check_shape(m.map(record, case.ctx))
        assert.is_nil(seen[out.key], "key " .. out.key .. " of record " .. i .. " repeats")
        seen[out.key] = i
        n = n + 1
        assert.are.equal(case.ctx.source, out.headers.source)
        assert.are.same(record, out.value)
      end
      assert.are.equal(case.count, n)
      -- the ids are 1..count, so the keys are "1".."count": never "1.0"
      for i = 1, case.count do
        assert.are.equal(i, seen[tostring(i)])
      end
    end)
  end)
end

describe("map_customers.lua", function()
  it("keys customer 7 as \"7\", never \"7.0\"", function()
    local m = loader.load("scripts/map_customers.lua")
    local record = decode('{"id":7,"name":"Customer 7","email":"customer7@example.com"}')
    assert.are.equal("integer", math.type(record.id)) -- as the host decodes it
    local out = m.map(record, { source = "crm", topic = "customer_data" })
    assert.are.equal("7", out.key)
    assert.are_not.equal("7.0", out.key)
  end)
end)
