/* The script watchdog (see script_watchdog.h). Calls run on the loop thread one at a
 * time, so one slot describes the call in progress: its number (seq), whether it is
 * running (active), its thread and what to call. The loop thread writes the slot; the
 * watchdog thread only reads seq and active and sends a signal; the handler, on the loop
 * thread, reads the slot. No lock: the data path never waits for the watchdog. */
#include "script_watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ready; /* set once, by setup */
static int signo;

static atomic_ulong seq;
static atomic_int active;
static pthread_t target;
static jn_watchdog_fire_cb volatile fire_cb;
static void *volatile fire_ud;

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    if (atomic_load(&active)) {
        jn_watchdog_fire_cb cb = fire_cb;
        if (cb) cb(fire_ud);
    }
    errno = saved;
}

static void *watch(void *arg) {
    (void)arg;
    unsigned long last = 0, fired = 0;
    struct timespec tick = {0, WATCHDOG_TICK_MS * 1000000L};
    for (;;) {
        nanosleep(&tick, NULL);
        unsigned long s = atomic_load(&seq);
        /* The same call on two looks: it has run for at least one tick. */
        if (atomic_load(&active) && s == last && s != fired) {
            fired = s;
            pthread_kill(target, signo);
        }
        last = s;
    }
    return NULL;
}

static void setup(void) {
    /* A real-time signal nothing else in the process uses; SA_RESTART so that a read the
     * script was making when it came is resumed, not failed. */
    signo = SIGRTMIN + 5;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (signo > SIGRTMAX || sigaction(signo, &sa, NULL) != 0) return;
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0) return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* The watchdog thread must never take the signal meant for the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&t, &attr, watch, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0) ready = 1;
}

int jn_watchdog_enter(jn_watchdog_fire_cb fire, void *ud) {
    pthread_once(&once, setup);
    if (!ready) return -1;
    target = pthread_self();
    fire_cb = fire;
    fire_ud = ud;
    atomic_fetch_add(&seq, 1);
    atomic_store(&active, 1);
    return 0;
}

void jn_watchdog_leave(void) {
    atomic_store(&active, 0);
}
