-- examples/transforms/enrich_orders.lua: the orders pipeline's transform (examples/
-- orders.lua). on.customers and on.products keep the tables; on.orders returns the
-- order with its customer and its items' product names and stock.
local loader = require "script_loader"

local PATH = "examples/transforms/enrich_orders.lua"

describe("enrich_orders.lua", function()
  local t
  before_each(function() t = loader.load(PATH, {}) end)

  it("has a hook per input of the orders pipeline, and keeps tables silently", function()
    assert.is_function(t.on.orders)
    assert.is_nil(t.on.customers({ id = 7, name = "Ada", email = "ada@example.com", x = 1 }, {}))
    assert.is_nil(t.on.products({ id = "3", name = "Pen", stock = 4 }, {}))
  end)

  it("enriches an order with its customer and products", function()
    t.on.customers({ id = 7, name = "Ada", email = "ada@example.com", phone = "1" }, {})
    t.on.products({ id = "3", name = "Pen", stock = 4 }, {})
    t.on.products({ id = "5", name = "Ink", stock = 9 }, {})
    local out = t.on.orders({ id = "o-1", customerId = 7, items = {
      { productId = "3", quantity = 2 }, { productId = 5, quantity = 1 } } }, { now = 0 })
    assert.are.same({ {
      id = "o-1", customerId = 7,
      customer = { id = 7, name = "Ada", email = "ada@example.com" },
      items = { { productId = "3", quantity = 2, name = "Pen", stock = 4 },
                { productId = 5, quantity = 1, name = "Ink", stock = 9 } },
      total_quantity = 3,
      enriched_at = "1970-01-01T00:00:00Z",
    } }, out)
  end)

  it("names what it could not find", function()
    local r = t.on.orders({ id = "o-2", customerId = 8, items = {
      { productId = "4", quantity = 1 } } }, { now = 0 })[1]
    assert.is_true(r.missing_customer)
    assert.are.same({ "4" }, r.missing_product_ids)
    assert.are.equal(1, r.total_quantity)
  end)
end)
