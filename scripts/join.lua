-- The stock merge, done by the host: customers joined with the products they reference,
-- with the policy of scripts/merge.lua (see there), without a script call per record.
--
-- junction keeps each customer's text and a product -> customers index itself (src/join.c),
-- outside the scripts' memory, and builds each merged record by copying the customer's
-- fields around the three it sets. So the consumer's hot path runs no Lua at all. The
-- merged records are the same as merge.lua's, record for record (tests/unit/test_join.c
-- checks it); what differs is where the state lives (it is the pipeline's, kept across
-- reloads of this file, and /metrics shows its size), and that nothing here can be
-- changed per record. To change the policy in Lua, use merge.lua, or a script built on
-- it (examples/transforms/merge_total_stock.lua).
local M = {}

M.join = {
  stream = "customers",            -- the stream joined...
  table = "products",              -- ...with this table
  refs = "productIds",             -- a customer's field: the ids of its products
  into = "products",               -- set to the products referenced, in that order
  missing = "missing_product_ids", -- the ids not known yet (dropped when none is)
  stamp = "merged_at",             -- when the record was merged (ISO 8601, UTC, ms)
  fields = { "id", "name", "stock" }, -- what a product brings into a merged record
}

return M
