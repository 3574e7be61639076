/* The one hash of burstguard: XXH3-64 with a seed, for identities,
 * destinations, secrets, tools and everything the sketches count.
 * Seeds are fixed per use (see BG_SEED_*) so results are reproducible across
 * runs and machines; 0 is never returned, so 0 can mark an empty slot. */
#ifndef BG_HASH_H
#define BG_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

#define BG_SEED_IDENTITY 0x6275727374677561ull /* "burstgua" */
#define BG_SEED_SKETCH 0x736b657463680001ull
#define BG_SEED_NOVELTY 0x6e6f76656c747901ull

static inline uint64_t bg_hash64(const void *p, size_t n, uint64_t seed) {
    uint64_t h = XXH3_64bits_withSeed(p, n, seed);
    return h ? h : 1;
}

#endif
