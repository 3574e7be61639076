/* Output containers for the engine: growable arrays plus a string arena. */
#include "verdict.h"

#include <stdlib.h>
#include <string.h>

const char *bg_class_name(bg_class c) {
    static const char *n[] = {"PLANNED", "UNEXPECTED", "ANOMALOUS"};
    return (unsigned)c < 3 ? n[c] : "?";
}
const char *bg_phase_name(bg_phase p) {
    static const char *n[] = {"ONSET", "ESCALATED", "ENDED"};
    return (unsigned)p < 3 ? n[p] : "?";
}
const char *bg_action_name(bg_action a) {
    static const char *n[] = {"ALLOW", "THROTTLE", "REVIEW", "REVOKE"};
    return (unsigned)a < 4 ? n[a] : "?";
}
const char *bg_target_name(bg_target t) {
    static const char *n[] = {"SECRET", "IDENTITY"};
    return (unsigned)t < 2 ? n[t] : "?";
}

#define ARENA_BLOCK 16384u

struct bg_arena_block {
    struct bg_arena_block *next;
    size_t used, size;
    char data[];
};

void bg_outputs_init(bg_outputs *o) { memset(o, 0, sizeof *o); }

void bg_outputs_reset(bg_outputs *o) {
    o->n_verdicts = 0;
    o->n_revocations = 0;
    /* keep the first block for reuse, free the rest */
    struct bg_arena_block *b = o->arena;
    if (b) {
        struct bg_arena_block *n = b->next;
        while (n) {
            struct bg_arena_block *next = n->next;
            free(n);
            n = next;
        }
        b->next = NULL;
        b->used = 0;
    }
}

void bg_outputs_free(bg_outputs *o) {
    bg_outputs_reset(o);
    free(o->arena);
    free(o->verdicts);
    free(o->revocations);
    memset(o, 0, sizeof *o);
}

static void *grow(void *arr, size_t *cap, size_t elem) {
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(arr, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

bg_verdict *bg_outputs_add_verdict(bg_outputs *o) {
    if (o->n_verdicts == o->cap_verdicts) {
        void *p = grow(o->verdicts, &o->cap_verdicts, sizeof *o->verdicts);
        if (!p)
            return NULL;
        o->verdicts = p;
    }
    bg_verdict *v = &o->verdicts[o->n_verdicts++];
    memset(v, 0, sizeof *v);
    return v;
}

bg_revocation *bg_outputs_add_revocation(bg_outputs *o) {
    if (o->n_revocations == o->cap_revocations) {
        void *p = grow(o->revocations, &o->cap_revocations, sizeof *o->revocations);
        if (!p)
            return NULL;
        o->revocations = p;
    }
    bg_revocation *r = &o->revocations[o->n_revocations++];
    memset(r, 0, sizeof *r);
    return r;
}

const char *bg_outputs_strdup(bg_outputs *o, const char *s, size_t len) {
    struct bg_arena_block *b = o->arena;
    /* the head block is the current one; older full blocks follow it */
    if (!b || b->size - b->used < len + 1) {
        size_t size = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
        struct bg_arena_block *nb = malloc(sizeof *nb + size);
        if (!nb)
            return NULL;
        nb->size = size;
        nb->used = 0;
        nb->next = b;
        o->arena = nb;
        b = nb;
    }
    char *d = b->data + b->used;
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    b->used += len + 1;
    return d;
}
