/* Pseudo-random numbers (random.h). */
#include "random.h"

#include <uv.h>

/* 2^64 / golden ratio: a state with bits spread over the whole word. */
#define MIX 0x9E3779B97F4A7C15ull

uint64_t jn_random_seed(void) {
    uint64_t s = MIX ^ (uint64_t)uv_hrtime();
    return s ? s : MIX;
}

double jn_random_unit(uint64_t *s) {
    uint64_t x = *s ? *s : MIX;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    /* The top 53 bits of the product, over 2^53: every double of that grid in [0, 1). */
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
