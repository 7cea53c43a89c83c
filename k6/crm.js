// k6 load test of the CRM API (`junction api`, default 127.0.0.1:8081).
// Run: tools/k6 run k6/crm.js        (K6_PROFILE=short for the ~20 s variant,
//      CRM_URL=http://127.0.0.1:PORT to aim it at another server)
import { buildOptions, buildIteration } from './lib.js';

export const options = buildOptions();

// The CRM serves 1000 customers with ids 1..1000; a 404 is still accepted.
export default buildIteration(__ENV.CRM_URL || 'http://127.0.0.1:8081', 'customers', 1000);
