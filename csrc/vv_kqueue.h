/*
 * struct kevent without its per-system differences, for _ext/_kqueue.pyx.
 *
 * The systems agree on the names of struct kevent's fields but not on all their types
 * or on the struct's size: FreeBSD 12+ adds `uint64_t ext[4]`, NetBSD makes `filter`
 * and `flags` 32-bit and (before 10) `udata` an intptr_t, OpenBSD's `data` is int64_t.
 * The module goes through these helpers for the fields whose type differs, and builds
 * every change zeroed, so it compiles and behaves the same on each of them.
 */
#ifndef VV_KQUEUE_H
#define VV_KQUEUE_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/event.h>

/* A change: (fd, filter, flags) and every other field 0, ext[] included. */
static inline void vv_kev_change(struct kevent *kev, int fd, int filter, int flags) {
    memset(kev, 0, sizeof(*kev));
    kev->ident = (uintptr_t)fd;
    kev->filter = filter;
    kev->flags = flags;
}

/* `data`: intptr_t, int64_t or __int64_t depending on the system. */
static inline long long vv_kev_data(const struct kevent *kev) {
    return (long long)kev->data;
}

/* `udata`: void * (or intptr_t on NetBSD before 10), as the integer select.kevent has. */
static inline unsigned long long vv_kev_udata(const struct kevent *kev) {
    return (unsigned long long)(uintptr_t)kev->udata;
}

#endif /* VV_KQUEUE_H */
