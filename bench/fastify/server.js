'use strict'
// Fastify 5 baseline for bench/http.sh: serves the same CRM and Inventory data as
// `junction api`, so both servers can be load-tested side by side on equal data.
//
// Usage:
//   node server.js CUSTOMERS.json PRODUCTS.json
//   CUSTOMERS_JSON=... PRODUCTS_JSON=... node server.js
// Ports: CRM_PORT (default 9081) and INVENTORY_PORT (default 9082), both on
// 127.0.0.1 only (override the address with HOST).
//
// The routes below are deliberately plain: return the parsed objects from the
// handler and let Fastify serialize them, with no response schemas, caching of
// pre-serialized bodies or other tuning. This is what a user of Fastify would
// write for this API, which is the baseline junction is compared against.

const fs = require('node:fs')
const Fastify = require('fastify')

const customersPath = process.argv[2] || process.env.CUSTOMERS_JSON
const productsPath = process.argv[3] || process.env.PRODUCTS_JSON
if (!customersPath || !productsPath) {
  console.error('usage: node server.js CUSTOMERS.json PRODUCTS.json (or set CUSTOMERS_JSON and PRODUCTS_JSON)')
  process.exit(2)
}

const host = process.env.HOST || '127.0.0.1'
const crmPort = Number(process.env.CRM_PORT || 9081)
const inventoryPort = Number(process.env.INVENTORY_PORT || 9082)

function loadArray (path) {
  const data = JSON.parse(fs.readFileSync(path, 'utf8'))
  if (!Array.isArray(data)) throw new Error(`${path}: expected a JSON array`)
  return data
}

// Builds one API: a list route and a by-id route over an array of records.
// The lookup table is keyed by the id as a string because route params are
// strings, while customer ids are numbers and product ids are strings.
function buildApi (collection, records, notFound) {
  // logger off: request logging would dominate a throughput benchmark.
  const app = Fastify({ logger: false })
  const byId = new Map(records.map((r) => [String(r.id), r]))

  app.get(`/${collection}`, async () => records)

  app.get(`/${collection}/:id`, async (request, reply) => {
    const record = byId.get(request.params.id)
    if (record === undefined) {
      reply.code(404)
      return { error: notFound }
    }
    return record
  })

  return app
}

async function main () {
  const crm = buildApi('customers', loadArray(customersPath), 'Customer not found')
  const inventory = buildApi('products', loadArray(productsPath), 'Product not found')

  await crm.listen({ host, port: crmPort })
  await inventory.listen({ host, port: inventoryPort })
  console.log(`fastify: CRM on http://${host}:${crmPort}, Inventory on http://${host}:${inventoryPort}`)

  // Close both listeners on a stop signal so the benchmark's cleanup ends the
  // process promptly instead of leaving sockets half-open.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      Promise.allSettled([crm.close(), inventory.close()]).then(() => process.exit(0))
    })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
