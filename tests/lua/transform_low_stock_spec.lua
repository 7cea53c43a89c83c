-- examples/transforms/map_low_stock.lua and map_low_stock_only.lua: producer map scripts
-- for the Inventory source. The first publishes every product with the header
-- low_stock = "true"/"false" (stock below JUNCTION_LOW_STOCK, default 5); the second
-- publishes only the low ones (map returns nil for the others), for a producer whose
-- topic is a low-stock topic.
local loader = require "script_loader"
local junction = require "junction"

local FLAG = "examples/transforms/map_low_stock.lua"
local ONLY = "examples/transforms/map_low_stock_only.lua"
local CTX = { source = "inventory", topic = "inventory_data" }

-- Loads a script as script_loader does, but with junction.env answering from `vars`
-- for the names it lists (and with the default for JUNCTION_LOW_STOCK when it is not
-- listed), so the specs do not depend on the environment busted runs in.
local function load_with_env(path, vars)
  local fake = setmetatable({
    env = function(name, default)
      local v = vars[name]
      if v ~= nil then return v end
      if name == "JUNCTION_LOW_STOCK" then return default end
      return junction.env(name, default)
    end,
  }, { __index = junction })
  local env = setmetatable({ junction = fake }, {
    __index = function(_, k)
      local v = _G[k]
      if v == nil then error("read of undefined global '" .. tostring(k) .. "'", 2) end
      return v
    end,
  })
  local chunk = assert(loadfile(path, "t", env))
  return chunk({})
end

local function product(id, stock)
  return { id = id, name = "Product " .. id, stock = stock }
end

-- The products the Inventory script serves, as the producer receives them.
local function served(count)
  local data = loader.load("scripts/inventory.lua").generate({ count = count, seed = 42 })
  local v, err = junction.json_decode(junction.json_encode(data))
  assert(v ~= nil, err)
  return v
end

describe(FLAG, function()
  it("marks stock below 5 low by default, and 5 itself not", function()
    local m = load_with_env(FLAG, {})
    assert.are.equal(5, m.threshold)
    assert.are.equal("true", m.map(product("1", 0), CTX).headers.low_stock)
    assert.are.equal("true", m.map(product("1", 4), CTX).headers.low_stock)
    assert.are.equal("false", m.map(product("1", 5), CTX).headers.low_stock)
    assert.are.equal("false", m.map(product("1", 90), CTX).headers.low_stock)
  end)

  it("takes the threshold from JUNCTION_LOW_STOCK", function()
    local m = load_with_env(FLAG, { JUNCTION_LOW_STOCK = "10" })
    assert.are.equal(10, m.threshold)
    assert.are.equal("true", m.map(product("2", 9), CTX).headers.low_stock)
    assert.are.equal("false", m.map(product("2", 10), CTX).headers.low_stock)
    m = load_with_env(FLAG, { JUNCTION_LOW_STOCK = "0" })
    assert.are.equal("false", m.map(product("2", 0), CTX).headers.low_stock)
  end)

  it("reads the real environment through junction.env", function()
    -- A child Lua with JUNCTION_LOW_STOCK set, loading the script with the real module.
    local cmd = "JUNCTION_LOW_STOCK=17 lua5.4 -e 'package.cpath = \"build/?.so;\" .. package.cpath;"
      .. " package.path = \"tests/lua/?.lua;\" .. package.path'"
      .. " -e 'io.write(require(\"script_loader\").load(\"" .. FLAG .. "\").threshold)' 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.are.equal("17", out)
  end)

  it("refuses to load with a threshold that is not a whole number", function()
    for _, bad in ipairs({ "lots", "", "2.5" }) do
      local ok, err = pcall(load_with_env, FLAG, { JUNCTION_LOW_STOCK = bad })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("JUNCTION_LOW_STOCK must be a whole number", 1, true))
    end
  end)

  it("publishes the product itself, keyed by its id, with the source header", function()
    local m = load_with_env(FLAG, {})
    local p = product("3", 2)
    local out = m.map(p, CTX)
    assert.are.equal("3", out.key)
    assert.are.same(product("3", 2), out.value)
    assert.are.same({ source = "inventory", low_stock = "true" }, out.headers)
  end)

  it("does not call a product without a numeric stock low", function()
    local m = load_with_env(FLAG, {})
    assert.are.equal("false", m.map({ id = "4", name = "x" }, CTX).headers.low_stock)
    assert.are.equal("false", m.map({ id = "4", stock = "1" }, CTX).headers.low_stock)
  end)

  it("flags exactly the served products below the threshold", function()
    local m = load_with_env(FLAG, { JUNCTION_LOW_STOCK = "50" })
    local low, high = 0, 0
    for _, p in ipairs(served(10)) do
      local out = m.map(p, CTX)
      assert.are.equal(p.stock < 50 and "true" or "false", out.headers.low_stock)
      if p.stock < 50 then low = low + 1 else high = high + 1 end
    end
    -- the seed gives both kinds, so both branches were exercised
    assert.is_true(low > 0 and high > 0)
  end)
end)

describe(ONLY, function()
  it("skips (returns nil for) every product that is not low", function()
    local m = load_with_env(ONLY, {})
    assert.is_nil(m.map(product("1", 5), CTX))
    assert.is_nil(m.map(product("1", 80), CTX))
    assert.is_nil(m.map({ id = "1", name = "no stock" }, CTX))
  end)

  it("publishes a low product as itself, with low_stock = \"true\"", function()
    local m = load_with_env(ONLY, {})
    local out = m.map(product("7", 4), CTX)
    assert.are.equal("7", out.key)
    assert.are.same(product("7", 4), out.value)
    assert.are.same({ source = "inventory", low_stock = "true" }, out.headers)
  end)

  it("takes the threshold from JUNCTION_LOW_STOCK", function()
    local m = load_with_env(ONLY, { JUNCTION_LOW_STOCK = "30" })
    assert.is_table(m.map(product("1", 29), CTX))
    assert.is_nil(m.map(product("1", 30), CTX))
    assert.is_false(pcall(load_with_env, ONLY, { JUNCTION_LOW_STOCK = "x" }))
  end)

  it("publishes exactly the products map_low_stock.lua flags", function()
    for _, threshold in ipairs({ "0", "5", "50", "1000" }) do
      local flag = load_with_env(FLAG, { JUNCTION_LOW_STOCK = threshold })
      local only = load_with_env(ONLY, { JUNCTION_LOW_STOCK = threshold })
      for _, p in ipairs(served(10)) do
        local flagged = flag.map(p, CTX).headers.low_stock == "true"
        local out = only.map(p, CTX)
        assert.are.equal(flagged, out ~= nil)
        if out then assert.are.same(flag.map(p, CTX), out) end
      end
    end
  end)
end)
