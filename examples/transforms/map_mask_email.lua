-- Producer map script for the CRM source that masks every customer's e-mail address
-- before it reaches Kafka: "customer7@example.com" becomes "c***@example.com" (the first
-- character of the local part, three stars whatever its length, and the domain).
--
-- Same contract as scripts/map_customers.lua: map(record, ctx) returns
-- {key = ..., value = ..., headers = {...}} or nil to skip the record. To use it, point
-- the CRM source at this file (in your config or a copy of examples/local.lua):
--   sources = { crm = { url = ..., topic = ..., script = "examples/transforms/map_mask_email.lua" } }
--
-- The record the API served is left as it is; the value is a copy. A customer without
-- an e-mail (or with one that is not a string) is published without that field changed;
-- a string without "@" is masked whole ("***"), since it cannot be told apart from a
-- name. Masking happens before change detection hashes the value, so a customer whose
-- only change is another address with the same first letter and domain is not
-- published again.
local M = {}

-- Masks one address: the first character (a whole UTF-8 character, not a byte) of the
-- part before the last "@", then "***", then "@" and the domain.
function M.mask(email)
  local user, domain = email:match("^(.*)@([^@]*)$")
  if not user then return "***" end
  local first = user:match("^" .. utf8.charpattern) or ""
  return first .. "***@" .. domain
end

function M.map(customer, ctx)
  local value = {}
  for k, v in pairs(customer) do value[k] = v end
  if type(value.email) == "string" then
    value.email = M.mask(value.email)
  end
  return {
    key = tostring(customer.id),
    value = value,
    headers = { source = ctx.source, email = "masked" },
  }
end

return M
