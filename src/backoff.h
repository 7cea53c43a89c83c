/* Retry delays: exponential backoff with full jitter (a uniformly random delay between
 * 0 and base * multiplier^(attempt-1), capped), which spreads retries of many clients
 * instead of having them hit a recovering server in lockstep. A server's Retry-After
 * wins when it asks for longer. */
#ifndef JN_BACKOFF_H
#define JN_BACKOFF_H

#include <stdint.h>

typedef struct {
    int attempts;      /* total tries, the first included (4 = 1 try + 3 retries) */
    int base_ms;       /* ceiling of the first retry's delay */
    double multiplier; /* growth of the ceiling per retry */
    int max_ms;        /* cap of the ceiling */
} jn_backoff;

/* Ceiling of the delay before try number `attempt` (2 = first retry). */
int64_t jn_backoff_ceiling_ms(const jn_backoff *b, int attempt);
/* Delay before try `attempt`: uniform in [0, ceiling] using `unit` in [0,1) (from
 * jn_random_unit, random.h), raised to retry_after_s*1000 when the server sent
 * Retry-After (pass -1 when it did not). */
int64_t jn_backoff_delay_ms(const jn_backoff *b, int attempt, double unit, long retry_after_s);
/* Whether try `attempt` is allowed at all. */
int jn_backoff_allows(const jn_backoff *b, int attempt);

#endif
