/* vv_debug.h -- live-object counters of the debug build.
 *
 * VIVACE_DEBUG=1 at build time defines VV_DEBUG; then each engine module counts
 * the objects it owns (tasks, deadline heaps, ...) and the test suite checks after
 * every test that the counts came back to where they were. In a release build
 * VV_DEBUG_BUILD is 0, every counting branch is dead code, and the modules'
 * debug_counters() return None.
 */
#ifndef VV_DEBUG_H
#define VV_DEBUG_H

#ifdef VV_DEBUG
#define VV_DEBUG_BUILD 1
#else
#define VV_DEBUG_BUILD 0
#endif

#endif /* VV_DEBUG_H */
