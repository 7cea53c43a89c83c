-- Producer map script for the CRM source: turns one customer from GET /customers into
-- the Kafka record published to customer_data.
--
-- map(record, ctx) returns {key = ..., value = ..., headers = {...}}, or nil to skip the
-- record. ctx.source is "crm", ctx.topic the target topic. value may be a table (sent as
-- JSON with sorted keys) or a string (sent as is). As in the original system the key is
-- the record's id and the value the record itself.
local M = {}

-- Records come as views (README, "Record views"): the API's text, read one field at a
-- time, and published by copying its members in key order instead of decoding and
-- encoding them.
M.views = true

function M.map(customer, ctx)
  return {
    key = tostring(customer.id),
    value = customer,
    headers = { source = ctx.source },
  }
end

return M
