/*
 * vv_heap.h -- indexed binary min-heap of deadlines (header-only, plain C99).
 *
 * Design notes
 * ------------
 * The run loop needs "what is the next deadline?" in O(1), and cancel scopes
 * need to drop or move their deadline in O(log n) -- a scope that exits early
 * or whose deadline is re-assigned must not leave garbage behind.
 *
 * Why an *indexed* heap instead of a plain heap with lazy deletion (mark the
 * entry dead, skip it when it reaches the top): with lazy deletion every
 * cancelled or re-keyed scope leaves a corpse in the heap until its original
 * deadline passes.  A server that opens a `move_on_after(30)` per request and
 * exits it after a millisecond would carry ~30 s worth of dead entries, and a
 * scope re-keyed in a loop grows the heap without bound.  Here removal and
 * re-keying are real O(log n) operations, so the heap size is always exactly
 * the number of live deadlines.
 *
 * Layout:
 *   nodes[0..len)     the binary heap proper.  Each node carries its key
 *                     (deadline, seq) inline so sifting compares adjacent
 *                     memory instead of chasing pointers, plus the index of
 *                     the slot that owns it.
 *   slots[0..nslots)  stable storage, one per entry ever allocated; a slot
 *                     holds the payload, the node's current position in
 *                     nodes[], and a generation.  Freed slots form an
 *                     intrusive LIFO free list (linked through the payload
 *                     word), so a freed slot is the first one reused.
 *
 * Invariants (vv_heap_check verifies all of them):
 *   1. heap order: for every i > 0, key(nodes[(i-1)/2]) <= key(nodes[i]),
 *      keys compared as (deadline, seq) lexicographically; seq is unique, so
 *      the order is total and equal deadlines leave in push/update order.
 *   2. slots[nodes[i].slot].pos == i for every i < len (the back index), and
 *      a slot is live iff its pos != VV_HEAP_NPOS.
 *   3. exactly len slots are live; the other nslots - len are on the free list.
 *   4. every generation is non-zero.  A handle is (gen << 32) | slot; freeing
 *      a slot bumps its generation (skipping 0 on wrap-around), so a handle
 *      kept after its entry left the heap is detected as stale even when the
 *      slot has been reused.  Handle 0 is therefore never valid and callers
 *      may use it as "no entry" (VV_HEAP_NO_HANDLE).  A generation repeats
 *      only after 2**32 - 1 reuses of one slot.
 *   5. no NaN deadline is ever stored (NaN would break invariant 1), so push
 *      and update reject it.
 *
 * Ownership: the heap stores `void *payload` and never interprets it.  The
 * Cython wrapper stores an owned PyObject* there; reference counting is
 * entirely its business.  Functions that take an entry out hand the payload
 * back through an out-parameter *after* the heap is consistent again, so the
 * caller may run arbitrary code (e.g. a Py_DECREF) that re-enters the heap.
 *
 * Errors are returned, never aborted on: VV_HEAP_OK (0) or a negative
 * VV_HEAP_E* code.  A failed call leaves the heap unchanged.
 *
 * Not thread-safe: one heap belongs to one run loop thread.
 */
#ifndef VV_HEAP_H
#define VV_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define VV_HEAP_OK       0
#define VV_HEAP_ENOMEM  (-1)  /* growing the arrays failed */
#define VV_HEAP_ESTALE  (-2)  /* handle is not (or no longer) in the heap */
#define VV_HEAP_EEMPTY  (-3)  /* peek/pop on an empty heap */
#define VV_HEAP_ENAN    (-4)  /* NaN deadline */
#define VV_HEAP_EFULL   (-5)  /* 2**32 - 2 simultaneous entries */
#define VV_HEAP_ECORRUPT (-6) /* vv_heap_check found a broken invariant */

#define VV_HEAP_NO_HANDLE ((uint64_t)0)
#define VV_HEAP_NPOS      ((uint32_t)0xFFFFFFFFu)
/* NPOS marks free slots and ends the free list, so it is never a slot index. */
#define VV_HEAP_MAX_SLOTS ((uint32_t)0xFFFFFFFEu)
#define VV_HEAP_MIN_CAP   ((uint32_t)16u)

typedef struct {
    double deadline;
    uint64_t seq;
    uint32_t slot;
} vv_heap_node;

typedef struct {
    union {
        void *payload;      /* live slot */
        uint32_t next_free; /* free slot: next index on the free list */
    } u;
    uint32_t pos;           /* index into nodes[], or VV_HEAP_NPOS if free */
    uint32_t gen;           /* generation of the current (or next) tenant */
} vv_heap_slot;

typedef struct {
    vv_heap_node *nodes;
    vv_heap_slot *slots;
    uint32_t len;        /* live entries == used prefix of nodes[] */
    uint32_t nslots;     /* slots ever handed out (live + free) */
    uint32_t nodes_cap;
    uint32_t slots_cap;
    uint32_t free_head;  /* first free slot or VV_HEAP_NPOS */
    uint64_t next_seq;
} vv_heap;

/* ---- internals -------------------------------------------------------- */

static inline int
vv_heap__less(const vv_heap_node *a, const vv_heap_node *b)
{
    /* seq is unique, so this is a strict total order on live nodes. */
    return a->deadline < b->deadline
        || (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void
vv_heap__place(vv_heap *h, uint32_t pos, const vv_heap_node *node)
{
    h->nodes[pos] = *node;
    h->slots[node->slot].pos = pos;
}

/* Hole-based sifting: carry `node` and shift the others into the hole, so
 * each level costs one node copy instead of a swap. */
static inline void
vv_heap__sift_up(vv_heap *h, uint32_t pos, vv_heap_node node)
{
    while (pos > 0) {
        uint32_t parent = (pos - 1u) >> 1;
        if (!vv_heap__less(&node, &h->nodes[parent]))
            break;
        vv_heap__place(h, pos, &h->nodes[parent]);
        pos = parent;
    }
    vv_heap__place(h, pos, &node);
}

static inline void
vv_heap__sift_down(vv_heap *h, uint32_t pos, vv_heap_node node)
{
    /* 64-bit child index: 2*pos+1 overflows uint32 for pos >= 2**31. */
    uint64_t n = h->len;
    for (;;) {
        uint64_t child = 2u * (uint64_t)pos + 1u;
        if (child >= n)
            break;
        if (child + 1u < n
                && vv_heap__less(&h->nodes[child + 1u], &h->nodes[child]))
            child++;
        if (!vv_heap__less(&h->nodes[child], &node))
            break;
        vv_heap__place(h, pos, &h->nodes[child]);
        pos = (uint32_t)child;
    }
    vv_heap__place(h, pos, &node);
}

/* Put `node` (already stored at `pos` or about to be) where it belongs. */
static inline void
vv_heap__resift(vv_heap *h, uint32_t pos, vv_heap_node node)
{
    if (pos > 0 && vv_heap__less(&node, &h->nodes[(pos - 1u) >> 1]))
        vv_heap__sift_up(h, pos, node);
    else
        vv_heap__sift_down(h, pos, node);
}

static inline uint32_t
vv_heap__grow_cap(uint32_t cap)
{
    if (cap < VV_HEAP_MIN_CAP)
        return VV_HEAP_MIN_CAP;
    if (cap > VV_HEAP_MAX_SLOTS / 2u)
        return VV_HEAP_MAX_SLOTS;
    return cap * 2u;
}

/* Make room for one more slot and one more node.  Each array is grown
 * independently; if the second realloc fails the first one merely added
 * capacity, so the heap is still consistent. */
static inline int
vv_heap__reserve_one(vv_heap *h)
{
    if (h->nslots == h->slots_cap) {
        uint32_t cap;
        void *p;
        if (h->slots_cap >= VV_HEAP_MAX_SLOTS)
            return VV_HEAP_EFULL;
        cap = vv_heap__grow_cap(h->slots_cap);
#if SIZE_MAX <= 0xFFFFFFFFu  /* only a 32-bit size_t can overflow here */
        if ((size_t)cap > SIZE_MAX / sizeof(vv_heap_slot))
            return VV_HEAP_ENOMEM;
#endif
        p = realloc(h->slots, (size_t)cap * sizeof(vv_heap_slot));
        if (p == NULL)
            return VV_HEAP_ENOMEM;
        h->slots = (vv_heap_slot *)p;
        h->slots_cap = cap;
    }
    if (h->len == h->nodes_cap) {
        uint32_t cap;
        void *p;
        cap = vv_heap__grow_cap(h->nodes_cap);
#if SIZE_MAX <= 0xFFFFFFFFu  /* only a 32-bit size_t can overflow here */
        if ((size_t)cap > SIZE_MAX / sizeof(vv_heap_node))
            return VV_HEAP_ENOMEM;
#endif
        p = realloc(h->nodes, (size_t)cap * sizeof(vv_heap_node));
        if (p == NULL)
            return VV_HEAP_ENOMEM;
        h->nodes = (vv_heap_node *)p;
        h->nodes_cap = cap;
    }
    return VV_HEAP_OK;
}

static inline vv_heap_slot *
vv_heap__live_slot(const vv_heap *h, uint64_t handle)
{
    uint32_t idx = (uint32_t)(handle & 0xFFFFFFFFu);
    uint32_t gen = (uint32_t)(handle >> 32);
    vv_heap_slot *s;
    if (idx >= h->nslots)
        return NULL;
    s = &h->slots[idx];
    /* gen 0 is never issued, so handle 0 (and any gen-0 handle) fails here. */
    if (s->pos == VV_HEAP_NPOS || s->gen != gen)
        return NULL;
    return s;
}

static inline void
vv_heap__free_slot(vv_heap *h, uint32_t idx)
{
    vv_heap_slot *s = &h->slots[idx];
    s->pos = VV_HEAP_NPOS;
    s->gen += 1u;
    if (s->gen == 0u)
        s->gen = 1u;
    s->u.next_free = h->free_head;
    h->free_head = idx;
}

/* Detach the node at `pos`, refill the hole with the last node, free its slot. */
static inline void *
vv_heap__take(vv_heap *h, uint32_t pos)
{
    uint32_t idx = h->nodes[pos].slot;
    void *payload = h->slots[idx].u.payload;
    uint32_t last = --h->len;
    if (pos != last)
        vv_heap__resift(h, pos, h->nodes[last]);
    vv_heap__free_slot(h, idx);
    return payload;
}

/* ---- public API ------------------------------------------------------- */

static inline void
vv_heap_init(vv_heap *h)
{
    h->nodes = NULL;
    h->slots = NULL;
    h->len = 0;
    h->nslots = 0;
    h->nodes_cap = 0;
    h->slots_cap = 0;
    h->free_head = VV_HEAP_NPOS;
    h->next_seq = 0;
}

/* Release the arrays.  Payloads are not touched: take them out first (see
 * vv_heap_clear) if they own anything.  The heap is re-initialised, so it may
 * be reused, but generations restart: do not mix handles across a free. */
static inline void
vv_heap_free(vv_heap *h)
{
    free(h->nodes);
    free(h->slots);
    vv_heap_init(h);
}

static inline size_t
vv_heap_len(const vv_heap *h)
{
    return h->len;
}

static inline int
vv_heap_push(vv_heap *h, double deadline, void *payload, uint64_t *out_handle)
{
    uint32_t idx;
    vv_heap_slot *s;
    vv_heap_node node;
    int rc;

    if (deadline != deadline)
        return VV_HEAP_ENAN;
    rc = vv_heap__reserve_one(h);
    if (rc != VV_HEAP_OK)
        return rc;
    if (h->free_head != VV_HEAP_NPOS) {
        idx = h->free_head;
        s = &h->slots[idx];
        h->free_head = s->u.next_free;
    }
    else {
        idx = h->nslots++;
        s = &h->slots[idx];
        s->gen = 1u;
    }
    s->u.payload = payload;
    node.deadline = deadline;
    node.seq = h->next_seq++;
    node.slot = idx;
    h->len++;
    vv_heap__sift_up(h, h->len - 1u, node);
    if (out_handle != NULL)
        *out_handle = ((uint64_t)s->gen << 32) | (uint64_t)idx;
    return VV_HEAP_OK;
}

/* 1 if `handle` names a live entry, else 0. */
static inline int
vv_heap_contains(const vv_heap *h, uint64_t handle)
{
    return vv_heap__live_slot(h, handle) != NULL;
}

/* Read an entry without changing anything; either out-pointer may be NULL. */
static inline int
vv_heap_lookup(const vv_heap *h, uint64_t handle,
               double *out_deadline, void **out_payload)
{
    const vv_heap_slot *s = vv_heap__live_slot(h, handle);
    if (s == NULL)
        return VV_HEAP_ESTALE;
    if (out_deadline != NULL)
        *out_deadline = h->nodes[s->pos].deadline;
    if (out_payload != NULL)
        *out_payload = s->u.payload;
    return VV_HEAP_OK;
}

static inline int
vv_heap_remove(vv_heap *h, uint64_t handle, void **out_payload)
{
    vv_heap_slot *s = vv_heap__live_slot(h, handle);
    void *payload;
    if (s == NULL)
        return VV_HEAP_ESTALE;
    payload = vv_heap__take(h, s->pos);
    if (out_payload != NULL)
        *out_payload = payload;
    return VV_HEAP_OK;
}

/* Re-key in place.  The handle stays valid; the entry takes a fresh seq, so
 * it now orders after every other entry with an equal deadline. */
static inline int
vv_heap_update(vv_heap *h, uint64_t handle, double deadline)
{
    vv_heap_slot *s = vv_heap__live_slot(h, handle);
    vv_heap_node node;
    if (s == NULL)
        return VV_HEAP_ESTALE;
    if (deadline != deadline)
        return VV_HEAP_ENAN;
    node = h->nodes[s->pos];
    node.deadline = deadline;
    node.seq = h->next_seq++;
    vv_heap__resift(h, s->pos, node);
    return VV_HEAP_OK;
}

/* Smallest entry; either out-pointer may be NULL. */
static inline int
vv_heap_peek(const vv_heap *h, double *out_deadline, void **out_payload)
{
    if (h->len == 0)
        return VV_HEAP_EEMPTY;
    if (out_deadline != NULL)
        *out_deadline = h->nodes[0].deadline;
    if (out_payload != NULL)
        *out_payload = h->slots[h->nodes[0].slot].u.payload;
    return VV_HEAP_OK;
}

static inline int
vv_heap_pop(vv_heap *h, void **out_payload)
{
    void *payload;
    if (h->len == 0)
        return VV_HEAP_EEMPTY;
    payload = vv_heap__take(h, 0);
    if (out_payload != NULL)
        *out_payload = payload;
    return VV_HEAP_OK;
}

/* Pop the smallest entry only if its deadline is <= now.  Returns 1 and sets
 * *out_payload if one was popped, 0 if nothing has expired. */
static inline int
vv_heap_pop_if_expired(vv_heap *h, double now, void **out_payload)
{
    if (h->len == 0 || !(h->nodes[0].deadline <= now))
        return 0;
    *out_payload = vv_heap__take(h, 0);
    return 1;
}

/* Payload of the i-th node in heap-array order (0 <= i < len); for walking
 * every payload, e.g. a GC traversal.  The order is unspecified. */
static inline void *
vv_heap_payload_at(const vv_heap *h, size_t i)
{
    return h->slots[h->nodes[i].slot].u.payload;
}

/* Empty the heap, invalidating every outstanding handle, keeping capacity.
 * If `out_payloads` is not NULL it must have room for vv_heap_len(h) entries
 * and receives every payload (unspecified order) so the caller can release
 * them once the heap is consistent again.  Afterwards every slot is free and
 * the free list yields slots in ascending index order (0 first), which makes
 * handle values after a clear deterministic. */
static inline void
vv_heap_clear(vv_heap *h, void **out_payloads)
{
    uint32_t i;
    if (out_payloads != NULL) {
        for (i = 0; i < h->len; i++)
            out_payloads[i] = vv_heap_payload_at(h, i);
    }
    for (i = 0; i < h->nslots; i++) {
        vv_heap_slot *s = &h->slots[i];
        if (s->pos != VV_HEAP_NPOS) {
            s->pos = VV_HEAP_NPOS;
            s->gen += 1u;
            if (s->gen == 0u)
                s->gen = 1u;
        }
        s->u.next_free = (i + 1u < h->nslots) ? i + 1u : VV_HEAP_NPOS;
    }
    h->free_head = h->nslots ? 0u : VV_HEAP_NPOS;
    h->len = 0;
}

/* Verify invariants 1-4 (O(nslots)); VV_HEAP_OK or VV_HEAP_ECORRUPT. */
static inline int
vv_heap_check(const vv_heap *h)
{
    uint32_t i, live = 0, nfree = 0, idx;
    if (h->len > h->nslots || h->nslots > h->slots_cap || h->len > h->nodes_cap)
        return VV_HEAP_ECORRUPT;
    for (i = 0; i < h->len; i++) {
        const vv_heap_node *n = &h->nodes[i];
        if (n->slot >= h->nslots || h->slots[n->slot].pos != i)
            return VV_HEAP_ECORRUPT;
        if (n->deadline != n->deadline)
            return VV_HEAP_ECORRUPT;
        if (i > 0 && vv_heap__less(n, &h->nodes[(i - 1u) >> 1]))
            return VV_HEAP_ECORRUPT;
    }
    for (i = 0; i < h->nslots; i++) {
        if (h->slots[i].gen == 0u)
            return VV_HEAP_ECORRUPT;
        if (h->slots[i].pos != VV_HEAP_NPOS)
            live++;
    }
    if (live != h->len)
        return VV_HEAP_ECORRUPT;
    for (idx = h->free_head; idx != VV_HEAP_NPOS; idx = h->slots[idx].u.next_free) {
        if (idx >= h->nslots || h->slots[idx].pos != VV_HEAP_NPOS
                || ++nfree > h->nslots)
            return VV_HEAP_ECORRUPT;
    }
    if (nfree + h->len != h->nslots)
        return VV_HEAP_ECORRUPT;
    return VV_HEAP_OK;
}

#endif /* VV_HEAP_H */
