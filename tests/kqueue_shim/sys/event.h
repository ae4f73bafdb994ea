/*
 * Test-only stand-in for <sys/event.h> on systems that have no kqueue (Linux), so that
 * src/vivace/_core/_ext/_kqueue.pyx can be compiled here (tests/test_kqueue_compiled.py).
 *
 * Declarations only, written from the kevent(2) manual pages of macOS and FreeBSD: the
 * struct, the two system calls and the constants. The values are the ones both systems
 * share; where they differ (EVFILT_USER and beyond) macOS's are used. The default
 * layout of struct kevent is macOS's (and OpenBSD's, modulo the type of `data`);
 * -DVV_SHIM_FREEBSD gives FreeBSD 12's (a 64-bit `data` and four `ext` words), so the
 * compile test can check that the module relies on no layout detail.
 *
 * tests/kqueue_shim/kqueue_emulation.c implements kqueue() and kevent() over epoll for
 * the flags and filters the module uses.
 */
#ifndef VV_KQUEUE_SHIM_SYS_EVENT_H
#define VV_KQUEUE_SHIM_SYS_EVENT_H

#include <stdint.h>
#include <time.h> /* struct timespec */

#ifdef VV_SHIM_FREEBSD
struct kevent {
    uintptr_t ident;      /* identifier: an fd for the read/write filters */
    short filter;         /* EVFILT_* */
    unsigned short flags; /* EV_* */
    unsigned int fflags;  /* filter-specific flags (NOTE_*) */
    int64_t data;         /* filter-specific data; the errno of an EV_ERROR event */
    void *udata;          /* opaque user data, returned unchanged */
    uint64_t ext[4];      /* extensions */
};
#else
struct kevent {
    uintptr_t ident;
    int16_t filter;
    uint16_t flags;
    uint32_t fflags;
    intptr_t data;
    void *udata;
};
#endif

#define EV_SET(kevp, a, b, c, d, e, f) \
    do {                               \
        struct kevent *vv__kevp = (kevp); \
        vv__kevp->ident = (a);         \
        vv__kevp->filter = (b);        \
        vv__kevp->flags = (c);         \
        vv__kevp->fflags = (d);        \
        vv__kevp->data = (e);          \
        vv__kevp->udata = (f);         \
    } while (0)

/* Filters. */
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_AIO (-3)
#define EVFILT_VNODE (-4)
#define EVFILT_PROC (-5)
#define EVFILT_SIGNAL (-6)
#define EVFILT_TIMER (-7)
#define EVFILT_FS (-9)
#define EVFILT_USER (-10)

/* Actions and flags (input). */
#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004
#define EV_DISABLE 0x0008
#define EV_ONESHOT 0x0010
#define EV_CLEAR 0x0020
#define EV_RECEIPT 0x0040
#define EV_DISPATCH 0x0080
#define EV_SYSFLAGS 0xF000
#define EV_FLAG1 0x2000

/* Returned values. */
#define EV_EOF 0x8000
#define EV_ERROR 0x4000

/* EVFILT_READ/EVFILT_WRITE */
#define NOTE_LOWAT 0x00000001
/* EVFILT_USER */
#define NOTE_FFNOP 0x00000000
#define NOTE_FFAND 0x40000000
#define NOTE_FFOR 0x80000000
#define NOTE_FFCOPY 0xc0000000
#define NOTE_FFCTRLMASK 0xc0000000
#define NOTE_FFLAGSMASK 0x00ffffff
#define NOTE_TRIGGER 0x01000000
/* EVFILT_VNODE */
#define NOTE_DELETE 0x00000001
#define NOTE_WRITE 0x00000002
#define NOTE_EXTEND 0x00000004
#define NOTE_ATTRIB 0x00000008
#define NOTE_LINK 0x00000010
#define NOTE_RENAME 0x00000020
#define NOTE_REVOKE 0x00000040
/* EVFILT_PROC */
#define NOTE_EXIT 0x80000000U
#define NOTE_FORK 0x40000000
#define NOTE_EXEC 0x20000000

#ifdef __cplusplus
extern "C" {
#endif
int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout);
#ifdef __cplusplus
}
#endif

#endif /* VV_KQUEUE_SHIM_SYS_EVENT_H */
