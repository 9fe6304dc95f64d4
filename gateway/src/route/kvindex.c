/* SPDX-License-Identifier: Apache-2.0 */
/* kvindex — the precise index of prefix-cache routing; see kvindex.h. */
#include "route/kvindex.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/prefixidx.h"

/* ---- parsing ------------------------------------------------------------ */

static const char *const op_names[] = {"stored", "evicted", "cleared", "snapshot"};

const char *gw_kv_op_name(enum gw_kv_op op)
{
    return (unsigned)op < 4 ? op_names[op] : "unknown";
}

/* A plain decimal u64: 1..20 digits, no overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* h: "" or comma-separated 16-lowercase-hex hashes, at most the maximum. */
static int parse_hashes(const char *s, size_t n, struct gw_kv_event *ev, char *err, size_t errlen)
{
    size_t i = 0;

    ev->nhashes = 0;
    if (n == 0)
        return 0;
    for (;;) {
        uint64_t v = 0;
        if (ev->nhashes == GW_KV_HASHES_MAX)
            return gw_errf(err, errlen, "field h: more than %d hashes", GW_KV_HASHES_MAX);
        if (n - i < 16)
            return gw_errf(err, errlen, "field h: hash %zu is not 16 hex digits", ev->nhashes + 1);
        for (size_t k = 0; k < 16; k++) {
            int d = hexval(s[i + k]);
            if (d < 0)
                return gw_errf(err, errlen, "field h: hash %zu is not 16 lowercase hex digits",
                               ev->nhashes + 1);
            v = v << 4 | (uint64_t)d;
        }
        ev->hashes[ev->nhashes++] = v;
        i += 16;
        if (i == n)
            return 0;
        if (s[i] != ',' || i + 1 == n)
            return gw_errf(err, errlen, "field h: expected a comma after hash %zu and another hash",
                           ev->nhashes);
        i++;
    }
}

static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > GW_KV_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ',')
            return 0;
    return 1;
}

enum { F_R, F_E, F_S, F_OP, F_H, F_PART, F_PARTS, F_COUNT };
static const char *const field_names[F_COUNT] = {"r", "e", "s", "op", "h", "part", "parts"};

static int field_of(const struct gw_kv_field *f)
{
    for (int i = 0; i < F_COUNT; i++)
        if (strlen(field_names[i]) == f->name_len && !memcmp(field_names[i], f->name, f->name_len))
            return i;
    return -1;
}

/* Shows a value in a message: up to 40 bytes, non-printable bytes as '?'. */
static const char *shown(const char *s, size_t n, char *buf, size_t cap)
{
    size_t k = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < k; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    buf[k] = '\0';
    return buf;
}

static int parse_op(const char *s, size_t n, enum gw_kv_op *op)
{
    for (int i = 0; i < 4; i++)
        if (strlen(op_names[i]) == n && !memcmp(op_names[i], s, n)) {
            *op = (enum gw_kv_op)i;
            return 0;
        }
    return -1;
}

static int parse_part(const struct gw_kv_field *f, const char *name, uint32_t *out, char *err,
                      size_t errlen)
{
    uint64_t v;
    char b[41];

    if (parse_u64(f->value, f->value_len, &v) < 0 || v == 0 || v > UINT32_MAX)
        return gw_errf(err, errlen, "field %s '%s': expected 1..4294967295", name,
                       shown(f->value, f->value_len, b, sizeof(b)));
    *out = (uint32_t)v;
    return 0;
}

/* The value checks that need only the field itself. */
static int parse_field(int id, const struct gw_kv_field *f, struct gw_kv_event *ev, char *err,
                       size_t errlen)
{
    char b[41];

    switch (id) {
    case F_R:
        if (!valid_id(f->value, f->value_len))
            return gw_errf(err, errlen,
                           "field r '%s': expected 1..%d bytes of printable ASCII without spaces "
                           "or commas",
                           shown(f->value, f->value_len, b, sizeof(b)), GW_KV_ID_MAX);
        memcpy(ev->replica, f->value, f->value_len);
        ev->replica[f->value_len] = '\0';
        ev->rkey = gw_pidx_replica_key(f->value, f->value_len);
        return 0;
    case F_E:
        if (parse_u64(f->value, f->value_len, &ev->epoch) < 0)
            return gw_errf(err, errlen, "field e '%s': expected a decimal 0..18446744073709551615",
                           shown(f->value, f->value_len, b, sizeof(b)));
        return 0;
    case F_S:
        if (parse_u64(f->value, f->value_len, &ev->seq) < 0 || ev->seq == 0)
            return gw_errf(err, errlen, "field s '%s': expected a decimal 1..18446744073709551615",
                           shown(f->value, f->value_len, b, sizeof(b)));
        return 0;
    case F_OP:
        if (parse_op(f->value, f->value_len, &ev->op) < 0)
            return gw_errf(err, errlen,
                           "field op '%s': expected stored, evicted, cleared or snapshot",
                           shown(f->value, f->value_len, b, sizeof(b)));
        return 0;
    case F_H:
        return parse_hashes(f->value, f->value_len, ev, err, errlen);
    case F_PART:
        return parse_part(f, "part", &ev->part, err, errlen);
    default:
        return parse_part(f, "parts", &ev->parts, err, errlen);
    }
}

/* The checks across fields. */
static int check_event(const int *seen, struct gw_kv_event *ev, char *err, size_t errlen)
{
    for (int i = F_R; i <= F_H; i++)
        if (!seen[i])
            return gw_errf(err, errlen, "field %s missing", field_names[i]);
    if (ev->op == GW_KV_SNAPSHOT) {
        if (!seen[F_PART] || !seen[F_PARTS])
            return gw_errf(err, errlen, "op snapshot without part and parts");
        if (ev->part > ev->parts)
            return gw_errf(err, errlen, "snapshot part %u of %u", ev->part, ev->parts);
        return 0;
    }
    if (seen[F_PART] || seen[F_PARTS])
        return gw_errf(err, errlen, "part/parts given with op %s", op_names[ev->op]);
    if (ev->op == GW_KV_CLEARED && ev->nhashes)
        return gw_errf(err, errlen, "op cleared with hashes (h must be empty)");
    if (ev->op != GW_KV_CLEARED && !ev->nhashes)
        return gw_errf(err, errlen, "op %s without hashes", op_names[ev->op]);
    return 0;
}

int gw_kv_event_parse(const struct gw_kv_field *fields, size_t nfields, struct gw_kv_event *ev,
                      char *err, size_t errlen)
{
    int seen[F_COUNT] = {0};

    memset(ev, 0, sizeof(*ev));
    for (size_t i = 0; i < nfields; i++) {
        int id = field_of(&fields[i]);
        if (id < 0)
            continue;
        if (seen[id])
            return gw_errf(err, errlen, "field %s given twice", field_names[id]);
        seen[id] = 1;
        if (parse_field(id, &fields[i], ev, err, errlen) < 0)
            return -1;
    }
    return check_event(seen, ev, err, errlen) < 0 ? -1 : 0;
}

/* ---- hash sets ----------------------------------------------------------- */

/* Open addressing, linear probing, backward-shift deletion; 0 marks an empty
 * slot, so the hash 0 is kept aside in has_zero. */
struct kvset {
    uint64_t *slot;
    size_t cap; /* 0 or a power of two >= 16 */
    size_t n;   /* slots used */
    int has_zero;
};

struct replica {
    uint64_t key;
    int stale, known;
    struct kvset live; /* with key and stale: the first cache line, all a lookup reads */
    struct kvset stage;
    uint64_t epoch, seq;
    int staging;
    uint32_t next_part, parts;
    char id[GW_KV_ID_MAX + 1];
    char why[128];
};

/* A replica's record, its pointer and its key. */
#define REPLICA_BYTES (sizeof(struct replica) + sizeof(struct replica *) + sizeof(uint64_t))

struct gw_kvidx {
    pthread_rwlock_t lock;
    struct replica **r; /* sorted by key */
    uint64_t *keys;     /* keys[i] = r[i]->key: the search reads one array */
    size_t nr, max_replicas;
    size_t bytes;                /* this index's own */
    struct gw_kv_budget *budget; /* &own, or one shared by several indexes */
    struct gw_kv_budget own;
    uint64_t applied, old, lost, full, snapshots, abandoned;
};

/* Whether <more> bytes fit in the budget. */
static int fits(const struct gw_kvidx *x, size_t more)
{
    return x->budget->used + more <= x->budget->max;
}

/* Counts <delta> bytes (negative: freed) in the index and its budget. */
static void charge(struct gw_kvidx *x, long long delta)
{
    x->bytes += (size_t)delta;
    x->budget->used += (size_t)delta;
}

static size_t slot_of(uint64_t h, size_t cap)
{
    return (size_t)((h * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static int kvset_has(const struct kvset *s, uint64_t h)
{
    if (!h)
        return s->has_zero;
    if (!s->cap)
        return 0;
    for (size_t i = slot_of(h, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == h)
            return 1;
        if (!s->slot[i])
            return 0;
    }
}

static void kvset_put_raw(struct kvset *s, uint64_t h)
{
    size_t i = slot_of(h, s->cap);
    while (s->slot[i] && s->slot[i] != h)
        i = (i + 1) & (s->cap - 1);
    if (!s->slot[i]) {
        s->slot[i] = h;
        s->n++;
    }
}

/* Grows <s> to hold one more within load 1/2, inside the index's budget. */
static int kvset_reserve(struct gw_kvidx *x, struct kvset *s)
{
    size_t cap = s->cap ? s->cap : 8;
    if (2 * (s->n + 1) <= s->cap)
        return 0;
    cap *= 2;
    if (!fits(x, (cap - s->cap) * 8))
        return -1;
    uint64_t *ns = gw_calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    struct kvset old = *s;
    s->slot = ns;
    s->cap = cap;
    s->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i])
            kvset_put_raw(s, old.slot[i]);
    gw_free(old.slot);
    charge(x, (long long)(cap - old.cap) * 8);
    return 0;
}

static int kvset_add(struct gw_kvidx *x, struct kvset *s, uint64_t h)
{
    if (!h) {
        s->has_zero = 1;
        return 0;
    }
    if (kvset_has(s, h))
        return 0;
    if (kvset_reserve(x, s) < 0)
        return -1;
    kvset_put_raw(s, h);
    return 0;
}

static void kvset_del(struct kvset *s, uint64_t h)
{
    size_t i, j, mask = s->cap - 1;

    if (!h) {
        s->has_zero = 0;
        return;
    }
    if (!s->cap)
        return;
    for (i = slot_of(h, s->cap); s->slot[i] != h; i = (i + 1) & mask)
        if (!s->slot[i])
            return;
    /* Backward shift: move up every later entry of the run that may sit at i. */
    for (j = (i + 1) & mask; s->slot[j]; j = (j + 1) & mask) {
        size_t home = slot_of(s->slot[j], s->cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            s->slot[i] = s->slot[j];
            i = j;
        }
    }
    s->slot[i] = 0;
    s->n--;
}

static void kvset_clear(struct gw_kvidx *x, struct kvset *s)
{
    gw_free(s->slot);
    charge(x, -(long long)s->cap * 8);
    memset(s, 0, sizeof(*s));
}

static size_t kvset_count(const struct kvset *s)
{
    return s->n + (s->has_zero ? 1 : 0);
}

/* ---- replicas ------------------------------------------------------------ */

struct gw_kvidx *gw_kvidx_create_in(struct gw_kv_budget *budget, size_t max_replicas)
{
    struct gw_kvidx *x;

    if (!max_replicas || !budget)
        return NULL;
    x = gw_calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    if (pthread_rwlock_init(&x->lock, NULL) != 0) {
        gw_free(x);
        return NULL;
    }
    x->max_replicas = max_replicas;
    x->budget = budget;
    charge(x, (long long)sizeof(*x));
    return x;
}

struct gw_kvidx *gw_kvidx_create(size_t max_bytes, size_t max_replicas)
{
    struct gw_kvidx *x;
    struct gw_kv_budget tmp = {.max = max_bytes};

    x = gw_kvidx_create_in(&tmp, max_replicas);
    if (!x)
        return NULL;
    x->own = tmp;
    x->budget = &x->own;
    return x;
}

static void replica_free(struct gw_kvidx *x, struct replica *r)
{
    kvset_clear(x, &r->live);
    kvset_clear(x, &r->stage);
    charge(x, -(long long)REPLICA_BYTES);
    gw_free(r);
}

void gw_kvidx_free(struct gw_kvidx *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nr; i++)
        replica_free(x, x->r[i]);
    gw_free(x->r);
    gw_free(x->keys);
    charge(x, -(long long)sizeof(*x));
    pthread_rwlock_destroy(&x->lock);
    gw_free(x);
}

/* The position of <key> in the sorted array, or where it would go. */
static size_t lower_bound(const struct gw_kvidx *x, uint64_t key)
{
    size_t lo = 0, hi = x->nr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct replica *find(const struct gw_kvidx *x, uint64_t key)
{
    size_t i = lower_bound(x, key);
    return i < x->nr && x->keys[i] == key ? x->r[i] : NULL;
}

static struct replica *add(struct gw_kvidx *x, const struct gw_kv_event *ev)
{
    size_t i = lower_bound(x, ev->rkey);
    struct replica *r, **nr;
    uint64_t *nk;

    if (x->nr == x->max_replicas || !fits(x, REPLICA_BYTES))
        return NULL;
    r = gw_calloc(1, sizeof(*r));
    nr = r ? gw_realloc(x->r, (x->nr + 1) * sizeof(*nr)) : NULL;
    if (nr)
        x->r = nr;
    nk = nr ? gw_realloc(x->keys, (x->nr + 1) * sizeof(*nk)) : NULL;
    if (!nk) {
        gw_free(r);
        return NULL;
    }
    x->keys = nk;
    memmove(&x->r[i + 1], &x->r[i], (x->nr - i) * sizeof(*nr));
    memmove(&x->keys[i + 1], &x->keys[i], (x->nr - i) * sizeof(*nk));
    x->r[i] = r;
    x->keys[i] = ev->rkey;
    x->nr++;
    charge(x, (long long)REPLICA_BYTES);
    r->key = ev->rkey;
    snprintf(r->id, sizeof(r->id), "%s", ev->replica);
    r->stale = 1;
    snprintf(r->why, sizeof(r->why), "no events yet");
    return r;
}

/* ---- applying events ----------------------------------------------------- */

static void set_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!why || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static void go_stale(struct replica *r, const char *why)
{
    r->stale = 1;
    snprintf(r->why, sizeof(r->why), "%s", why);
}

static void abandon(struct gw_kvidx *x, struct replica *r)
{
    if (r->staging)
        x->abandoned++;
    r->staging = 0;
    kvset_clear(x, &r->stage);
}

/* stored / evicted into the live set. */
static enum gw_kv_outcome apply_change(struct gw_kvidx *x, struct replica *r,
                                       const struct gw_kv_event *ev, char *why, size_t wl)
{
    for (size_t i = 0; i < ev->nhashes; i++) {
        if (ev->op == GW_KV_EVICTED) {
            kvset_del(&r->live, ev->hashes[i]);
        } else if (kvset_add(x, &r->live, ev->hashes[i]) < 0) {
            kvset_clear(x, &r->live);
            go_stale(r, "memory cap: set dropped");
            x->full++;
            set_why(why, wl, "%s: memory cap (%zu bytes) reached, stale", r->id, x->budget->max);
            return GW_KV_FULL;
        }
    }
    return GW_KV_OK;
}

static enum gw_kv_outcome apply_snapshot(struct gw_kvidx *x, struct replica *r,
                                         const struct gw_kv_event *ev, char *why, size_t wl)
{
    if (ev->part == 1) {
        abandon(x, r);
        r->staging = 1;
        r->parts = ev->parts;
        r->next_part = 1;
    }
    if (!r->staging || ev->part != r->next_part || ev->parts != r->parts) {
        abandon(x, r); /* a part out of order, or a run begun before we listened */
        return GW_KV_OK;
    }
    for (size_t i = 0; i < ev->nhashes; i++)
        if (kvset_add(x, &r->stage, ev->hashes[i]) < 0) {
            abandon(x, r);
            x->full++;
            set_why(why, wl, "%s: memory cap (%zu bytes) reached, snapshot abandoned", r->id,
                    x->budget->max);
            return GW_KV_FULL;
        }
    if (ev->part < ev->parts) {
        r->next_part++;
        return GW_KV_OK;
    }
    kvset_clear(x, &r->live);
    r->live = r->stage;
    memset(&r->stage, 0, sizeof(r->stage));
    r->staging = 0;
    x->snapshots++;
    if (!r->stale)
        return GW_KV_OK;
    r->stale = 0;
    r->why[0] = '\0';
    set_why(why, wl, "%s: snapshot of %u parts complete, fresh", r->id, ev->parts);
    return GW_KV_REFRESHED;
}

static enum gw_kv_outcome apply_op(struct gw_kvidx *x, struct replica *r,
                                   const struct gw_kv_event *ev, char *why, size_t wl)
{
    if (ev->op != GW_KV_SNAPSHOT && r->staging)
        abandon(x, r); /* parts come on consecutive seqs: this run is broken */
    switch (ev->op) {
    case GW_KV_STORED:
    case GW_KV_EVICTED:
        return apply_change(x, r, ev, why, wl);
    case GW_KV_CLEARED:
        kvset_clear(x, &r->live);
        if (!r->stale)
            return GW_KV_OK;
        r->stale = 0;
        r->why[0] = '\0';
        set_why(why, wl, "%s: cleared, fresh", r->id);
        return GW_KV_REFRESHED;
    case GW_KV_SNAPSHOT:
        return apply_snapshot(x, r, ev, why, wl);
    }
    return GW_KV_OK;
}

/* A sequence check: returns 1 when the event is a replay to ignore; marks
 * a gap or a new epoch without cleared as stale (*lost = 1). */
static int sequence(struct gw_kvidx *x, struct replica *r, const struct gw_kv_event *ev, int *lost,
                    char *why, size_t wl)
{
    char msg[128];

    if (r->known && ev->epoch == r->epoch) {
        if (ev->seq <= r->seq)
            return 1;
        if (ev->seq != r->seq + 1) {
            snprintf(msg, sizeof(msg), "gap: seq %llu after %llu", (unsigned long long)ev->seq,
                     (unsigned long long)r->seq);
            *lost = 1;
        }
    } else if (ev->op != GW_KV_CLEARED) {
        if (r->known)
            snprintf(msg, sizeof(msg), "epoch %llu began without cleared (seq %llu)",
                     (unsigned long long)ev->epoch, (unsigned long long)ev->seq);
        else
            snprintf(msg, sizeof(msg), "first event seen is seq %llu %s, not cleared",
                     (unsigned long long)ev->seq, gw_kv_op_name(ev->op));
        *lost = 1;
    }
    if (*lost) {
        abandon(x, r);
        go_stale(r, msg);
        x->lost++;
        set_why(why, wl, "%s: %s, stale", r->id, msg);
    }
    r->known = 1;
    r->epoch = ev->epoch;
    r->seq = ev->seq;
    return 0;
}

enum gw_kv_outcome gw_kvidx_apply(struct gw_kvidx *x, const struct gw_kv_event *ev, char *why,
                                  size_t whylen)
{
    enum gw_kv_outcome out;
    struct replica *r;
    int lost = 0;

    set_why(why, whylen, "%s", "");
    pthread_rwlock_wrlock(&x->lock);
    r = find(x, ev->rkey);
    if (!r && !(r = add(x, ev))) {
        x->full++;
        set_why(why, whylen, "%s: replica limit (%zu) or memory cap reached, event refused",
                ev->replica, x->max_replicas);
        pthread_rwlock_unlock(&x->lock);
        return GW_KV_FULL;
    }
    if (sequence(x, r, ev, &lost, why, whylen)) {
        x->old++;
        pthread_rwlock_unlock(&x->lock);
        return GW_KV_OLD;
    }
    x->applied++;
    out = apply_op(x, r, ev, lost ? NULL : why, whylen);
    pthread_rwlock_unlock(&x->lock);
    /* A lost event that the same entry repairs (cleared, a 1-part snapshot)
     * reports the repair. */
    if (lost && out == GW_KV_REFRESHED)
        set_why(why, whylen, "%s: sequence broken and repaired by %s, fresh", ev->replica,
                gw_kv_op_name(ev->op));
    return lost && out != GW_KV_REFRESHED ? GW_KV_LOST : out;
}

void gw_kvidx_mark_stale(struct gw_kvidx *x, const char *why)
{
    pthread_rwlock_wrlock(&x->lock);
    for (size_t i = 0; i < x->nr; i++) {
        abandon(x, x->r[i]);
        go_stale(x->r[i], why);
    }
    pthread_rwlock_unlock(&x->lock);
}

void gw_kvidx_forget(struct gw_kvidx *x, uint64_t rkey)
{
    pthread_rwlock_wrlock(&x->lock);
    size_t i = lower_bound(x, rkey);
    if (i < x->nr && x->r[i]->key == rkey) {
        replica_free(x, x->r[i]);
        memmove(&x->r[i], &x->r[i + 1], (x->nr - i - 1) * sizeof(*x->r));
        memmove(&x->keys[i], &x->keys[i + 1], (x->nr - i - 1) * sizeof(*x->keys));
        x->nr--;
    }
    pthread_rwlock_unlock(&x->lock);
}

/* ---- queries ------------------------------------------------------------- */

int gw_kvidx_usable(struct gw_kvidx *x, const uint64_t *cands, size_t ncand)
{
    int ok = 1;

    pthread_rwlock_rdlock(&x->lock);
    for (size_t j = 0; j < ncand && ok; j++) {
        const struct replica *r = find(x, cands[j]);
        ok = r && !r->stale;
    }
    pthread_rwlock_unlock(&x->lock);
    return ok;
}

uint32_t gw_kvidx_longest_match(struct gw_kvidx *x, const uint64_t *hashes, size_t n,
                                const uint64_t *cands, size_t ncand, uint32_t *depth)
{
    uint32_t best = 0;

    pthread_rwlock_rdlock(&x->lock);
    /* Every candidate's first probe is a cache miss of its own table: issue
     * them all before walking, so that they overlap. */
    for (size_t j = 0; j < ncand; j++) {
        const struct replica *r = find(x, cands[j]);
        if (r)
            __builtin_prefetch(&r->live);
    }
    for (size_t j = 0; j < ncand && n; j++) {
        const struct replica *r = find(x, cands[j]);
        if (r && r->live.cap)
            __builtin_prefetch(&r->live.slot[slot_of(hashes[0], r->live.cap)]);
    }
    for (size_t j = 0; j < ncand; j++) {
        const struct replica *r = find(x, cands[j]);
        uint32_t d = 0;
        if (r && !r->stale)
            while (d < n && kvset_has(&r->live, hashes[d]))
                d++;
        depth[j] = d;
        if (d > best)
            best = d;
    }
    pthread_rwlock_unlock(&x->lock);
    return best;
}

void gw_kvidx_replica(struct gw_kvidx *x, uint64_t rkey, struct gw_kv_replica_info *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&x->lock);
    const struct replica *r = find(x, rkey);
    if (r) {
        out->known = r->known;
        out->stale = r->stale;
        snprintf(out->why, sizeof(out->why), "%s", r->stale ? r->why : "");
        out->epoch = r->epoch;
        out->seq = r->seq;
        out->held = kvset_count(&r->live);
    }
    pthread_rwlock_unlock(&x->lock);
}

void gw_kvidx_stats(struct gw_kvidx *x, struct gw_kv_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&x->lock);
    out->bytes = x->bytes;
    out->budget_used = x->budget->used;
    out->max_bytes = x->budget->max;
    out->replicas = x->nr;
    for (size_t i = 0; i < x->nr; i++) {
        out->stale_replicas += x->r[i]->stale ? 1 : 0;
        out->held += kvset_count(&x->r[i]->live);
    }
    out->applied = x->applied;
    out->old = x->old;
    out->lost = x->lost;
    out->full = x->full;
    out->snapshots = x->snapshots;
    out->snapshots_abandoned = x->abandoned;
    pthread_rwlock_unlock(&x->lock);
}
