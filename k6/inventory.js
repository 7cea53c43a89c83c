// k6 load test of the Inventory API (`junction api`, default 127.0.0.1:8082).
// Run: tools/k6 run k6/inventory.js  (K6_PROFILE=short for the ~20 s variant,
//      INVENTORY_URL=http://127.0.0.1:PORT to aim it at another server)
import { buildOptions, buildIteration } from './lib.js';

export const options = buildOptions();

// The Inventory serves 10 products with ids "1".."10"; a 404 is still accepted.
export default buildIteration(__ENV.INVENTORY_URL || 'http://127.0.0.1:8082', 'products', 10);
