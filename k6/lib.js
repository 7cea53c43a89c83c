// Shared load profile and iteration for k6/crm.js and k6/inventory.js.
//
// Both APIs are exercised the same way as the original system's load test:
// fetch the whole list, pause, fetch one random record by id, pause. Only the
// base URL, the collection name and the id range differ, so they live here once.
import http from 'k6/http';
import { check, sleep } from 'k6';

// The original test's ramp: 5 minutes, peaking at 100 virtual users.
const FULL_STAGES = [
  { duration: '30s', target: 20 },
  { duration: '1m', target: 50 },
  { duration: '2m', target: 100 },
  { duration: '1m', target: 100 },
  { duration: '30s', target: 0 },
];

// K6_PROFILE=short: the same peak load in about 20 s, for CI and quick checks.
const SHORT_STAGES = [
  { duration: '5s', target: 100 },
  { duration: '12s', target: 100 },
  { duration: '3s', target: 0 },
];

export function buildOptions() {
  const profile = __ENV.K6_PROFILE || 'full';
  if (profile !== 'full' && profile !== 'short') {
    // Fail loudly rather than silently running the 5-minute profile.
    throw new Error(`K6_PROFILE must be "full" or "short", got "${profile}"`);
  }
  return {
    stages: profile === 'short' ? SHORT_STAGES : FULL_STAGES,
    thresholds: {
      http_req_duration: ['p(95)<500'],
      http_req_failed: ['rate<0.01'],
      // A 200 with a broken body passes the two thresholds above; this catches it.
      checks: ['rate>0.99'],
    },
  };
}

// Created once in the init context, as k6 recommends, and used only on the by-id
// request: a random id may legitimately be missing, and that 404 must not count
// towards http_req_failed. The list request keeps k6's default (2xx/3xx expected).
const byIdExpected = http.expectedStatuses(200, 404);

function isNonEmptyJsonArray(res) {
  try {
    const body = res.json();
    return Array.isArray(body) && body.length > 0;
  } catch (e) {
    // A body that is not JSON is a failed check, not an aborted iteration.
    return false;
  }
}

// Returns the default function for one API: baseUrl like http://127.0.0.1:8081,
// collection like "customers", ids drawn uniformly from 1..maxId.
export function buildIteration(baseUrl, collection, maxId) {
  const base = baseUrl.replace(/\/+$/, '');
  const listUrl = `${base}/${collection}`;
  // One name for every by-id URL, so metrics are not split into maxId series.
  const byIdName = `${listUrl}/:id`;

  return function () {
    const list = http.get(listUrl);
    check(list, {
      [`GET /${collection} status 200`]: (r) => r.status === 200,
      [`GET /${collection} is a non-empty JSON array`]: isNonEmptyJsonArray,
    });
    sleep(0.5);

    const id = Math.floor(Math.random() * maxId) + 1;
    const one = http.get(`${listUrl}/${id}`, {
      responseCallback: byIdExpected,
      tags: { name: byIdName },
    });
    check(one, {
      [`GET /${collection}/:id status 200 or 404`]: (r) => r.status === 200 || r.status === 404,
    });
    sleep(1);
  };
}
