-- Consumer merge script that adds `total_stock` to every merged record: the sum of the
-- stock of the products the customer references and that are known, e.g.
--   {"id": 7, ..., "products": [{"id": "1", "stock": 3}, {"id": "4", "stock": 9}],
--    "total_stock": 12, "merged_at": "..."}
-- A product not seen yet adds nothing (it is listed in `missing_product_ids`, as
-- before), a product referenced twice counts twice, like its two entries in `products`,
-- and a customer without products has total_stock 0. When a product's stock changes,
-- the records re-emitted for its customers carry the new total.
--
-- It builds on the stock merge instead of copying it: `require "stock.merge"` loads
-- scripts/merge.lua (scripts.stock_path) with this script's state table, so the
-- contract, the hold policy and the state kept across reloads are the stock ones. Use it
-- with
--   pipelines = { default = { transform = "examples/transforms/merge_total_stock.lua", ... } }
local merge = require "stock.merge"

local M = {}

-- merge.lua returns the customer tables themselves, with `products` filled in.
local function with_totals(records)
  for i = 1, #records do
    local r = records[i]
    local total, products = 0, r.products
    for j = 1, products and #products or 0 do
      local stock = products[j].stock
      if type(stock) == "number" then total = total + stock end
    end
    r.total_stock = total
  end
  return records
end

function M.customer(c, ctx) return with_totals(merge.customer(c, ctx)) end
function M.product(p, ctx) return with_totals(merge.product(p, ctx)) end
function M.expire(ctx) return with_totals(merge.expire(ctx)) end
M.stats = merge.stats
M.on = { customers = M.customer, products = M.product }
M.timer = M.expire
M.restore, M.revoke = merge.restore, merge.revoke

return M
