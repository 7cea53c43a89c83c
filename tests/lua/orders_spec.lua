-- scripts/orders.lua: the mock orders API of examples/orders.lua, whose orders reference
-- the seed's customers and products.
local loader = require "script_loader"

local PATH = "scripts/orders.lua"

local function order(overrides)
  local o = {
    id = 1,
    customerId = 7,
    items = { { productId = "3", quantity = 2 } },
    status = "paid",
    createdAt = "2024-01-01T00:01:00Z",
  }
  for k, v in pairs(overrides or {}) do
    o[k] = v
  end
  return o
end

describe("orders.lua", function()
  local orders

  before_each(function()
    orders = loader.load(PATH)
  end)

  it("loads with plain loadfile too, returning the module", function()
    local m = assert(loadfile(PATH))()
    assert.is_function(m.generate)
    assert.is_function(m.validate)
  end)

  it("declares what the API serves: integer ids at /orders, 50,000 by default", function()
    assert.are.equal("integer", orders.id_type)
    assert.are.same({ "id", "customerId", "items", "status", "createdAt" }, orders.fields)
    assert.are.equal("orders", orders.resource)
    assert.are.equal("Order", orders.singular)
    assert.are.equal(50000, orders.count)
  end)

  describe("generate", function()
    it("generates exactly opts.count orders, ids 1..count", function()
      for _, n in ipairs({ 0, 1, 7, 1000 }) do
        local out = orders.generate({ count = n, seed = 42 })
        assert.are.equal(n, #out)
        local keys = 0
        for _ in pairs(out) do
          keys = keys + 1
        end
        assert.are.equal(n, keys)
        for i, o in ipairs(out) do
          assert.are.equal(i, o.id)
        end
      end
    end)

    it("is deterministic for a seed, and differs between seeds", function()
      local a = orders.generate({ count = 300, seed = 42 })
      local again = loader.load(PATH).generate({ count = 300, seed = 42 })
      assert.are.same(a, again)
      assert.are.equal(loader.hash(a), loader.hash(again))
      local b = orders.generate({ count = 300, seed = 7 })
      assert.are_not.equal(loader.hash(a), loader.hash(b))
    end)

    it("keeps the data it serves for seed 42", function()
      local out = orders.generate({ count = 2, seed = 42 })
      assert.are.same({
        id = 1, customerId = 335, status = "paid", createdAt = "2024-01-01T00:01:00Z",
        items = { { productId = "7", quantity = 4 }, { productId = "8", quantity = 5 } },
      }, out[1])
      assert.are.equal(970, out[2].customerId)
    end)

    it("references the seed's customers (1..1000) and products ('1'..'10')", function()
      local customers, products = {}, {}
      for _, o in ipairs(orders.generate({ count = 2000, seed = 42 })) do
        assert.are.equal("integer", math.type(o.customerId))
        assert.is_true(o.customerId >= 1 and o.customerId <= 1000)
        customers[o.customerId] = true
        assert.is_true(#o.items >= 1 and #o.items <= 3)
        local seen = {}
        for _, item in ipairs(o.items) do
          assert.is_string(item.productId)
          local n = tonumber(item.productId)
          assert.is_true(math.type(n) == "integer" and n >= 1 and n <= 10, item.productId)
          assert.is_nil(seen[item.productId], "a product twice in order " .. o.id)
          seen[item.productId] = true
          products[item.productId] = true
          assert.is_true(math.type(item.quantity) == "integer" and item.quantity >= 1
            and item.quantity <= 5)
        end
      end
      local nc, np = 0, 0
      for _ in pairs(customers) do nc = nc + 1 end
      for _ in pairs(products) do np = np + 1 end
      assert.is_true(nc > 500, "orders spread over the customers")
      assert.are.equal(10, np)
    end)

    it("stamps orders a minute apart from 2024-01-01, in id order", function()
      local out = orders.generate({ count = 61, seed = 1 })
      assert.are.equal("2024-01-01T00:01:00Z", out[1].createdAt)
      assert.are.equal("2024-01-01T01:01:00Z", out[61].createdAt)
      for i = 2, #out do
        assert.is_true(out[i].createdAt > out[i - 1].createdAt)
      end
    end)

    it("produces records its own validate() accepts", function()
      for _, o in ipairs(orders.generate({ count = 500, seed = 11 })) do
        local ok, err = orders.validate(o)
        assert.is_table(ok, err)
      end
    end)
  end)

  it("joins with the seed's customers and products in enrich_orders.lua, nothing missing",
    function()
      local crm = loader.load("scripts/crm.lua")
      local inventory = loader.load("scripts/inventory.lua")
      local enrich = loader.load("examples/transforms/enrich_orders.lua", {})
      for _, c in ipairs(crm.generate({ count = crm.count, seed = 42 })) do
        enrich.on.customers(c, {})
      end
      for _, p in ipairs(inventory.generate({ count = inventory.count, seed = 42 })) do
        enrich.on.products(p, {})
      end
      for _, o in ipairs(orders.generate({ count = 300, seed = 42 })) do
        local quantity = 0
        for _, item in ipairs(o.items) do quantity = quantity + item.quantity end
        local r = enrich.on.orders(o, { now = 0 })[1]
        assert.is_nil(r.missing_customer)
        assert.is_nil(r.missing_product_ids)
        assert.are.equal(o.customerId, r.customer.id)
        assert.are.equal(quantity, r.total_quantity)
        for _, item in ipairs(r.items) do
          assert.is_string(item.name)
        end
      end
    end)

  describe("validate", function()
    local function rejects(record, field)
      local out, err = orders.validate(record)
      assert.is_nil(out)
      assert.is_string(err)
      assert.is_truthy(err:find(field, 1, true), "message does not name " .. field .. ": " .. err)
    end

    it("accepts a good order and returns it", function()
      local out, err = orders.validate(order())
      assert.is_nil(err)
      assert.are.same(order(), out)
    end)

    it("fills status with placed, and takes an order without createdAt", function()
      local o = order()
      o.status, o.createdAt = nil, nil
      local out = assert(orders.validate(o))
      assert.are.equal("placed", out.status)
      assert.is_nil(out.createdAt)
    end)

    it("normalises whole numbers: customerId 7.0, productId 3 and quantity 2.0", function()
      local out = assert(orders.validate(order({
        customerId = 7.0, items = { { productId = 3, quantity = 2.0 } } })))
      assert.are.equal("integer", math.type(out.customerId))
      assert.are.equal("3", out.items[1].productId)
      assert.are.equal("integer", math.type(out.items[1].quantity))
    end)

    it("rejects a bad customerId", function()
      rejects(order({ customerId = 0 }), "customerId")
      rejects(order({ customerId = 1.5 }), "customerId")
      rejects(order({ customerId = "7" }), "customerId")
      local o = order()
      o.customerId = nil
      rejects(o, "customerId")
    end)

    it("rejects items that are missing, empty, not a list or badly shaped", function()
      local o = order()
      o.items = nil
      rejects(o, "items")
      rejects(order({ items = {} }), "items")
      rejects(order({ items = { x = { productId = "1", quantity = 1 } } }), "items")
      rejects(order({ items = { "1" } }), "items[1]")
      rejects(order({ items = { { productId = "", quantity = 1 } } }), "items[1].productId")
      rejects(order({ items = { { productId = true, quantity = 1 } } }), "items[1].productId")
      rejects(order({ items = { { productId = "1", quantity = 0 } } }), "items[1].quantity")
      rejects(order({ items = { { productId = "1", quantity = 1 }, { productId = "2" } } }),
        "items[2].quantity")
    end)

    it("names a JSON null as null, not as a userdata", function()
      local null = require("junction").null
      local function says(record, want)
        local out, err = orders.validate(record)
        assert.is_nil(out)
        assert.are.equal(want, err)
      end
      says(order({ customerId = null }),
        "customerId must be a customer's id, a whole number of 1 or more, got null")
      says(order({ items = { null } }),
        "items[1] must be an object { productId, quantity }, got null")
      says(order({ items = { { productId = null, quantity = 1 } } }),
        "items[1].productId must be a product id string, got null")
      says(order({ items = { { productId = "1", quantity = null } } }),
        "items[1].quantity must be a whole number of 1 or more, got null")
    end)

    it("rejects an unknown status and a createdAt that is not a UTC time", function()
      rejects(order({ status = "lost" }), "status")
      rejects(order({ status = 3 }), "status")
      rejects(order({ createdAt = "yesterday" }), "createdAt")
      rejects(order({ createdAt = 1704067260 }), "createdAt")
    end)
  end)
end)
