-- scripts/map_orders.lua: the orders source's map script (examples/orders.lua), cursor
-- pages in an envelope through stock.paging.
local loader = require "script_loader"
local junction = require "junction"

describe("map_orders.lua", function()
  local m = loader.load("scripts/map_orders.lua")
  local body = junction.json_decode(
    '{"data":[{"id":"o-1","customerId":7,"items":[{"productId":"3","quantity":2}]}],"next_cursor":"c1"}')

  it("finds the orders in the envelope and maps each to a record keyed by its id", function()
    local records = m.records(body, { source = "orders", topic = "order_data", page = 1 })
    assert.are.equal(1, #records)
    local out = m.map(records[1], { source = "orders", topic = "order_data", page = 1 })
    assert.are.equal("o-1", out.key)
    assert.are.same(records[1], out.value)
    assert.are.same({ source = "orders" }, out.headers)
  end)

  it("asks for the next page with the cursor, and stops at a null one", function()
    local response = { status = 200, url = "http://127.0.0.1:8084/orders?limit=1000", page = 1,
                       headers = {}, body = body, records = body.data }
    assert.are.equal("http://127.0.0.1:8084/orders?limit=1000&cursor=c1", m.next(response, {}))
    response.body = junction.json_decode('{"data":[],"next_cursor":null}')
    assert.is_nil(m.next(response, {}))
  end)
end)
