-- Producer map script for the orders source of examples/orders.lua: an orders API that
-- answers a page at a time in an envelope, {"data":[...],"next_cursor":"..."} with
-- "next_cursor":null on the last page, and wants a bearer token (the source's headers).
-- Each order becomes one record on order_data, keyed by its id.
local paging = require "stock.paging"

local M = {}

-- GET <url>, then <url>&cursor=<next_cursor> until the cursor is null.
M.records, M.next = paging.cursor { records = "data", cursor = "next_cursor", param = "cursor" }

function M.map(order, ctx)
  return {
    key = tostring(order.id),
    value = order,
    headers = { source = ctx.source },
  }
end

return M
