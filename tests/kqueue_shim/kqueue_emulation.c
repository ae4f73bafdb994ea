/*
 * Test-only kqueue(2)/kevent(2) over Linux's epoll, linked into the test build of
 * src/vivace/_core/_ext/_kqueue.pyx (tests/test_kqueue_compiled.py) so that the
 * compiled kqueue poller can be imported and run on Linux.
 *
 * It emulates what the poller uses, with the semantics of the kevent(2) manual:
 * - EVFILT_READ and EVFILT_WRITE on fds, registered per (fd, filter): EV_ADD adds or
 *   updates, EV_DELETE removes (ENOENT if not registered), EBADF if the fd is not open.
 *   Other filters are EINVAL; other flags (EV_ONESHOT, EV_CLEAR...) are ignored.
 * - Level-triggered: a filter reports while its condition holds; EV_EOF when the peer
 *   hung up or the socket has an error. A regular file is always ready (epoll refuses
 *   it; kqueue reports it).
 * - Errors of a change: an EV_ERROR event with the errno in `data` if the event list
 *   has room, else -1 and errno (the remaining changes are then not applied). EV_RECEIPT
 *   asks for an EV_ERROR event (data 0) for each change; any such event makes kevent
 *   return without collecting events, as FreeBSD and macOS do.
 * - Closing an fd drops its registrations (noticed at the next call: the fd no longer
 *   open, or its number now naming another file). Unlike kqueue, a registration of a
 *   file still open through a dup(2) of a closed fd would live on in epoll: the tests
 *   make no such dups.
 * - timeout NULL: no limit; otherwise rounded up to whole milliseconds. A signal is
 *   -1 and EINTR.
 *
 * kqueue() and kevent() are hidden, so that nothing outside the test module binds to
 * them. The vv_emu_* functions are for the tests (through ctypes): make the next EV_ADD
 * of one (fd, filter) fail, look at what the emulated kernel holds and was asked, and
 * call kevent() from Python (what select.kqueue.control would do on a real system).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sys/event.h"

#define VV_EMU_READ 1u
#define VV_EMU_WRITE 2u
#define VV_EMU_MAX_BATCH 256

typedef struct {
    uint8_t filters; /* VV_EMU_READ | VV_EMU_WRITE registered */
    uint8_t regular; /* a regular file: not in epoll, always ready */
    dev_t dev;       /* the file the registration was made for */
    ino_t ino;
} vv_emu_reg;

typedef struct {
    int epfd;
    vv_emu_reg *regs; /* indexed by fd */
    int cap;
} vv_emu_queue;

/* The tests' knobs and counters (vv_emu_* below). */
static int vv_emu_refuse_fd = -1;
static int vv_emu_refuse_filter = 0;
static int vv_emu_refuse_errno = 0;
static long vv_emu_change_calls = 0; /* kevent() calls given changes */
static long vv_emu_reads = 0;        /* kevent() calls that collected events */

/* kqueue fd -> its state; the kqueue fd is the epoll fd. */
static vv_emu_queue **vv_emu_queues = NULL;
static int vv_emu_nqueues = 0;

static vv_emu_queue *vv_emu_lookup(int kq) {
    if (kq < 0 || kq >= vv_emu_nqueues || vv_emu_queues[kq] == NULL)
        return NULL;
    /* The number may have been closed (and reused) since: it must still be ours. */
    if (fcntl(kq, F_GETFD) < 0)
        return NULL;
    return vv_emu_queues[kq];
}

__attribute__((visibility("hidden"))) int kqueue(void) {
    int epfd = epoll_create1(0);
    if (epfd < 0)
        return -1;
    if (epfd >= vv_emu_nqueues) {
        int cap = epfd + 16;
        vv_emu_queue **grown = realloc(vv_emu_queues, (size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            close(epfd);
            errno = ENOMEM;
            return -1;
        }
        memset(grown + vv_emu_nqueues, 0, (size_t)(cap - vv_emu_nqueues) * sizeof(*grown));
        vv_emu_queues = grown;
        vv_emu_nqueues = cap;
    }
    vv_emu_queue *q = vv_emu_queues[epfd];
    if (q == NULL) {
        q = calloc(1, sizeof(*q));
        if (q == NULL) {
            close(epfd);
            errno = ENOMEM;
            return -1;
        }
        vv_emu_queues[epfd] = q;
    }
    /* A number reused after an earlier queue was closed: start afresh. */
    free(q->regs);
    q->regs = NULL;
    q->cap = 0;
    q->epfd = epfd;
    return epfd;
}

static uint32_t vv_emu_mask(uint8_t filters) {
    return ((filters & VV_EMU_READ) ? (EPOLLIN | EPOLLRDHUP) : 0) |
           ((filters & VV_EMU_WRITE) ? EPOLLOUT : 0);
}

/* Drop the registrations of fds closed (or renumbered) since they were made. */
static void vv_emu_sweep(vv_emu_queue *q) {
    struct stat st;
    for (int fd = 0; fd < q->cap; fd++) {
        vv_emu_reg *r = &q->regs[fd];
        if (!r->filters)
            continue;
        if (fstat(fd, &st) < 0 || st.st_dev != r->dev || st.st_ino != r->ino) {
            /* epoll dropped it with the file; the number now names another one. */
            memset(r, 0, sizeof(*r));
        }
    }
}

static int vv_emu_change(vv_emu_queue *q, const struct kevent *kev) {
    uint8_t bit;
    if (kev->filter == EVFILT_READ)
        bit = VV_EMU_READ;
    else if (kev->filter == EVFILT_WRITE)
        bit = VV_EMU_WRITE;
    else
        return EINVAL;
    int fd = (int)kev->ident;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return EBADF;
    if (fd >= q->cap) {
        int cap = fd + 64;
        vv_emu_reg *grown = realloc(q->regs, (size_t)cap * sizeof(*grown));
        if (grown == NULL)
            return ENOMEM;
        memset(grown + q->cap, 0, (size_t)(cap - q->cap) * sizeof(*grown));
        q->regs = grown;
        q->cap = cap;
    }
    vv_emu_reg *r = &q->regs[fd];
    uint8_t before = r->filters;
    uint8_t after;
    if ((kev->flags & EV_ADD) && fd == vv_emu_refuse_fd && kev->filter == vv_emu_refuse_filter) {
        vv_emu_refuse_fd = -1;
        return vv_emu_refuse_errno;
    }
    if (kev->flags & EV_ADD)
        after = before | bit;
    else if (kev->flags & EV_DELETE) {
        if (!(before & bit))
            return ENOENT;
        after = before & (uint8_t)~bit;
    } else
        return EINVAL;
    if (after == before)
        return 0;
    if (before == 0) {
        r->regular = S_ISREG(st.st_mode) ? 1 : 0;
        r->dev = st.st_dev;
        r->ino = st.st_ino;
    }
    if (!r->regular) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.events = vv_emu_mask(after);
        ev.data.fd = fd;
        int op = before == 0 ? EPOLL_CTL_ADD : after == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (epoll_ctl(q->epfd, op, fd, &ev) < 0)
            return errno;
    }
    r->filters = after;
    return 0;
}

static void vv_emu_event(struct kevent *out, int fd, short filter, unsigned short flags) {
    memset(out, 0, sizeof(*out));
    out->ident = (uintptr_t)fd;
    out->filter = filter;
    out->flags = flags;
}

__attribute__((visibility("hidden"))) int kevent(int kq, const struct kevent *changelist,
                                                 int nchanges, struct kevent *eventlist,
                                                 int nevents, const struct timespec *timeout) {
    vv_emu_queue *q = vv_emu_lookup(kq);
    if (q == NULL) {
        errno = EBADF;
        return -1;
    }
    if (nchanges < 0 || nevents < 0) {
        errno = EINVAL;
        return -1;
    }
    vv_emu_sweep(q);
    if (nchanges > 0)
        vv_emu_change_calls++;
    int n = 0;
    for (int i = 0; i < nchanges; i++) {
        const struct kevent *kev = &changelist[i];
        int err = vv_emu_change(q, kev);
        if (err || (kev->flags & EV_RECEIPT)) {
            if (n < nevents) {
                struct kevent *out = &eventlist[n++];
                *out = *kev;
                out->flags = EV_ERROR;
                out->data = err;
            } else if (err) {
                errno = err;
                return -1;
            }
        }
    }
    if (n > 0 || nevents == 0)
        return n;

    int ms = -1;
    if (timeout != NULL) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L) {
            errno = EINVAL;
            return -1;
        }
        long long total = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
        ms = total > 0x7FFFFFFF ? 0x7FFFFFFF : (int)total;
    }
    /* Regular files are always ready: report them without waiting. */
    for (int fd = 0; fd < q->cap && n < nevents; fd++) {
        vv_emu_reg *r = &q->regs[fd];
        if (!r->regular)
            continue;
        if ((r->filters & VV_EMU_READ) && n < nevents)
            vv_emu_event(&eventlist[n++], fd, EVFILT_READ, 0);
        if ((r->filters & VV_EMU_WRITE) && n < nevents)
            vv_emu_event(&eventlist[n++], fd, EVFILT_WRITE, 0);
    }
    if (n > 0)
        ms = 0;
    vv_emu_reads++;
    struct epoll_event ready[VV_EMU_MAX_BATCH];
    int room = nevents - n;
    if (room > VV_EMU_MAX_BATCH)
        room = VV_EMU_MAX_BATCH;
    if (room <= 0)
        return n;
    int got = epoll_wait(q->epfd, ready, room, ms);
    if (got < 0)
        return n > 0 ? n : -1; /* errno is epoll_wait's: EINTR on a signal */
    for (int i = 0; i < got && n < nevents; i++) {
        int fd = ready[i].data.fd;
        uint32_t ev = ready[i].events;
        uint8_t filters = fd < q->cap ? q->regs[fd].filters : 0;
        unsigned short eof = (ev & (EPOLLHUP | EPOLLERR)) ? EV_EOF : 0;
        if ((filters & VV_EMU_READ) && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            vv_emu_event(&eventlist[n++], fd, EVFILT_READ,
                         (unsigned short)(eof | ((ev & EPOLLRDHUP) ? EV_EOF : 0)));
        if ((filters & VV_EMU_WRITE) && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && n < nevents)
            vv_emu_event(&eventlist[n++], fd, EVFILT_WRITE, eof);
    }
    return n;
}

/* -- for the tests ------------------------------------------------------------------- */

/* The next EV_ADD of (fd, filter) fails with err. */
__attribute__((visibility("default"))) void vv_emu_refuse(int fd, int filter, int err) {
    vv_emu_refuse_fd = fd;
    vv_emu_refuse_filter = filter;
    vv_emu_refuse_errno = err;
}

/* The filters kq holds for fd: 1 read, 2 write; -1 if kq is not an emulated kqueue. */
__attribute__((visibility("default"))) int vv_emu_filters(int kq, int fd) {
    vv_emu_queue *q = vv_emu_lookup(kq);
    if (q == NULL)
        return -1;
    vv_emu_sweep(q);
    return fd >= 0 && fd < q->cap ? q->regs[fd].filters : 0;
}

/* kevent() calls so far: with changes (which = 0), collecting events (which = 1). */
__attribute__((visibility("default"))) long vv_emu_count(int which) {
    return which ? vv_emu_reads : vv_emu_change_calls;
}

/* kevent() itself, for the tests' stand-in for select.kqueue.fromfd(fd).control. */
__attribute__((visibility("default"))) int vv_emu_kevent(int kq, const struct kevent *changelist,
                                                         int nchanges, struct kevent *eventlist,
                                                         int nevents,
                                                         const struct timespec *timeout) {
    return kevent(kq, changelist, nchanges, eventlist, nevents, timeout);
}
