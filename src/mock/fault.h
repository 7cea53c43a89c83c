/* Injected faults of the mocks (the mock APIs and the analytics receiver), so that a
 * client's retries, timeouts and dead-lettering can be exercised: latency on every
 * answer, errors (at a rate, or the next N requests), connections closed without an
 * answer, and bodies cut short. One list of settings with one range each, however they
 * are set (the config, a script's M.faults, PUT /api/faults/<name>, PUT
 * /analytics/faults), and one place that decides the fate of a request. */
#ifndef JN_MOCK_FAULT_H
#define JN_MOCK_FAULT_H

#include <lua.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "http_server.h"

/* The settings, by the name they have in JSON and Lua; a mock offers some of them. */
enum {
    JN_FAULT_LATENCY_MS = 1u << 0,
    JN_FAULT_ERROR_RATE = 1u << 1,
    JN_FAULT_ERROR_STATUS = 1u << 2,
    JN_FAULT_MALFORMED_RATE = 1u << 3,
    JN_FAULT_DROP_RATE = 1u << 4,
    JN_FAULT_FAIL_NEXT = 1u << 5,
};

/* Requests that may be failed on purpose in a row: far more than a retry test needs,
 * short of a number that reads as "forever" (error_rate 1 says that). */
#define JN_FAULT_FAIL_NEXT_MAX 1000000

typedef struct {
    int latency_ms;        /* held back before every answer */
    double error_rate;     /* share of requests answered with error_status */
    int error_status;      /* 400 to 599 */
    double malformed_rate; /* share of 200 answers whose body is cut in half */
    double drop_rate;      /* share of requests whose connection closes without an answer */
    long fail_next;        /* the next requests answered with error_status, whatever the rate */
} jn_fault_settings;

/* The settings a mock runs with, and its random state. */
typedef struct {
    jn_fault_settings set;
    uint64_t rng;
} jn_fault;

/* No fault: every rate 0, error_status 503 (what an error is when only a rate is set). */
jn_fault_settings jn_fault_none(void);
/* The settings of a mock API's config (apis.<name>.faults). */
jn_fault_settings jn_fault_from_config(const jn_faults *cfg);
/* Starts f with set and a fresh random state. */
void jn_fault_init(jn_fault *f, const jn_fault_settings *set);

/* Sets the settings of kinds found in the table at idx of L over *set. strict (a PUT
 * body): every key must name one of them, else the error lists them; otherwise other
 * keys are left alone (a script's M.faults, which may hold more). where starts each
 * message ("faults: ", "M.faults."). A value out of its range (or not a whole number
 * where one is counted) is refused with the key, the range and the value. Returns 0, or
 * -1 with *err (malloc'd); *set is then partly written. Leaves the stack as it was. */
int jn_fault_read(lua_State *L, int idx, unsigned kinds, int strict, const char *where,
                  jn_fault_settings *set, char **err);

/* What jn_fault_inject decided. */
typedef enum { JN_FAULT_PASS, JN_FAULT_FAIL, JN_FAULT_DROP } jn_fault_fate;

/* Decides the fate of one request: every answer is held back latency_ms; then the
 * request fails (fail_next counts down first, then error_rate: res holds the error,
 * with Retry-After: 1 on a 429 or 503), its connection is dropped (drop_rate: res->drop)
 * or it passes, and the caller answers it. */
jn_fault_fate jn_fault_inject(jn_fault *f, jn_http_response *res);
/* Cuts the body of a 200 answer in half at malformed_rate: valid HTTP, broken JSON. */
void jn_fault_malform(jn_fault *f, jn_http_response *res);

/* Appends {"latency_ms":..,...}: the settings of kinds. */
void jn_fault_json(const jn_fault_settings *set, unsigned kinds, jn_sb *out);
/* Logs "faults set: latency_ms=.. ..." (the settings of kinds) as who. */
void jn_fault_log(const char *who, const jn_fault_settings *set, unsigned kinds);

#endif
