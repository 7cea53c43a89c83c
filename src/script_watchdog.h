/* The script watchdog: tells a script call that has run for a while, from outside it.
 *
 * Lua 5.4 runs every instruction through its debug machinery while a count hook is set,
 * whatever the count: bounding each call with one cost the consumer's merge about an
 * eighth of its CPU. With the watchdog, a call starts without a hook; a thread of its
 * own looks every WATCHDOG_TICK_MS, and when the same call is still running on two looks
 * in a row it interrupts the calling thread with a signal, whose handler (fire, called
 * in signal context) sets the hook: lua_sethook is the one Lua function documented as
 * safe to call from a signal handler. From then on the call is bounded as before. */
#ifndef JN_SCRIPT_WATCHDOG_H
#define JN_SCRIPT_WATCHDOG_H

#define WATCHDOG_TICK_MS 2

typedef void (*jn_watchdog_fire_cb)(void *ud);

/* A call starts on this thread: fire(ud) runs on it if the call outlives two looks. The
 * first enter starts the watchdog thread. Returns 0, or -1 when the thread or the signal
 * handler cannot be set up (the caller then bounds its calls with the hook alone). */
int jn_watchdog_enter(jn_watchdog_fire_cb fire, void *ud);

/* The call ended: fire will not run for it (a signal already on its way finds nothing
 * to do). */
void jn_watchdog_leave(void);

#endif
