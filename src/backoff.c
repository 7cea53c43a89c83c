/* Retry delays. */
#include "backoff.h"

int64_t jn_backoff_ceiling_ms(const jn_backoff *b, int attempt) {
    if (attempt < 2) return 0;
    double c = b->base_ms;
    for (int i = 2; i < attempt && c < b->max_ms; i++)
        c *= b->multiplier;
    if (c > b->max_ms) c = b->max_ms;
    return (int64_t)c;
}

int64_t jn_backoff_delay_ms(const jn_backoff *b, int attempt, double unit, long retry_after_s) {
    int64_t ceiling = jn_backoff_ceiling_ms(b, attempt);
    int64_t d = (int64_t)(unit * (double)(ceiling + 1));
    if (d > ceiling) d = ceiling;
    if (retry_after_s >= 0) {
        /* A server asking for hours would stall the source; respect it up to the cap.
         * Compared in seconds first: a huge header value would overflow the product. */
        int64_t ra = retry_after_s > b->max_ms / 1000 ? b->max_ms : (int64_t)retry_after_s * 1000;
        if (ra > d) d = ra;
    }
    return d;
}

int jn_backoff_allows(const jn_backoff *b, int attempt) {
    return attempt <= b->attempts;
}
