/* First-seen sets: has this identity ever used this destination, secret,
 * scope or tool bigram? One set per identity holds all kinds (each kind
 * hashes with its own seed), with memory bounded by form:
 *
 *   inline  up to BG_NOVEL_INLINE 32-bit fingerprints inside the struct
 *           (no heap; exact up to fingerprint collisions, p ~ n / 2^32)
 *   table   open-addressing table of 32-bit fingerprints on the heap,
 *           16 .. BG_NOVEL_TABLE_MAX slots, load <= 3/4 (exact as above)
 *   bloom   a Bloom filter of BG_NOVEL_BLOOM_BITS bits, k = BG_NOVEL_BLOOM_K,
 *           once the table would outgrow BG_NOVEL_TABLE_MAX slots (192
 *           items). False positive rate (an unseen item reported as seen),
 *           theory (1 - e^(-kn/m))^k: 0.6% at 768 items, 4% at 1200 (tested).
 *           A false positive hides novelty; it never raises an alarm.
 *
 * Layout (40 bytes on LP64):
 *   +--------+-------+-------+----------------------------------------+
 *   | n (4)  | form  | slots | fp[8] inline, or pointer to table/bloom |
 *   |        | (2)   | (2)   | (32)                                    |
 *   +--------+-------+-------+----------------------------------------+
 * Ownership: the set owns its heap part; bg_novel_free() releases it. */
#ifndef BG_NOVELTY_H
#define BG_NOVELTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define BG_NOVEL_INLINE 8u
#define BG_NOVEL_TABLE_MAX 256u    /* slots (1 KiB); the bloom takes over at 192 items */
#define BG_NOVEL_BLOOM_BITS 8192u  /* 1 KiB */
#define BG_NOVEL_BLOOM_K 6u

typedef enum bg_novel_kind {
    BG_NOVEL_DESTINATION = 1,
    BG_NOVEL_SECRET = 2,
    BG_NOVEL_SCOPE = 3,
    BG_NOVEL_TOOL_BIGRAM = 4,
} bg_novel_kind;

typedef enum bg_novel_form { BG_NOVEL_FORM_INLINE, BG_NOVEL_FORM_TABLE, BG_NOVEL_FORM_BLOOM } bg_novel_form;

typedef struct bg_novel {
    uint32_t n;     /* distinct items inserted (as far as the form can tell), saturating */
    uint16_t form;  /* bg_novel_form */
    uint16_t slots; /* table slots (power of two) in table form; 0 otherwise */
    union {
        uint32_t fp[BG_NOVEL_INLINE]; /* inline fingerprints, 0 = empty */
        uint32_t *table;              /* table form */
        uint64_t *bloom;              /* bloom form, BG_NOVEL_BLOOM_BITS / 64 words */
    } u;
} bg_novel;

/* The hash of (kind, bytes); use it for insert/contains. */
uint64_t bg_novel_hash(bg_novel_kind kind, const void *p, size_t n);

/* A zeroed bg_novel is an empty set. */
void bg_novel_init(bg_novel *s);
void bg_novel_free(bg_novel *s);

/* Insert h. *is_new is true when h was not (as far as the set can tell) in
 * the set. BG_ERR_NOMEM when growing failed: the set is unchanged and h
 * counts as seen (no alarm from an allocation failure). */
bg_err bg_novel_insert(bg_novel *s, uint64_t h, bool *is_new);
bool bg_novel_contains(const bg_novel *s, uint64_t h);
/* Heap bytes held (0 in inline form). */
size_t bg_novel_heap_bytes(const bg_novel *s);

#endif
