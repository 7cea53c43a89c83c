/* Cheap pseudo-random numbers for what needs spread, not secrecy: the jitter of retry
 * delays (backoff.h) and the mocks' injected faults (mock/fault.h). One generator,
 * xorshift64*, whose whole state is a uint64_t its user keeps: no global state, nothing
 * shared between roles. Never for anything secret (tokens, keys). */
#ifndef JN_RANDOM_H
#define JN_RANDOM_H

#include <stdint.h>

/* A state to start from that differs between processes and between calls (it mixes in
 * the monotonic clock); never zero. */
uint64_t jn_random_seed(void);
/* A number uniform in [0, 1), advancing *state. A zero state is taken as a fixed
 * non-zero one (zero is xorshift's one fixed point). */
double jn_random_unit(uint64_t *state);

#endif
