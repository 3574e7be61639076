/* The live envelopes: those read from nhi.envelopes.v1 (a compacted table
 * keyed by envelope_id, read in full by every worker), beside the static
 * envelopes of the policy. The latest record of an id replaces the earlier
 * one; a tombstone removes it.
 *
 * Ownership: the set owns copies of everything put into it; lookups return
 * pointers valid until the next put/remove of that id or bg_envset_free(). */
#ifndef BG_ENVSET_H
#define BG_ENVSET_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "policy.h"

typedef struct bg_envset bg_envset;

#define BG_ENVSET_MAX 100000u /* live envelopes; more is refused (BG_ERR_FULL) */

bg_err bg_envset_new(bg_envset **out);
void bg_envset_free(bg_envset *s); /* NULL is a no-op */

/* Validate and copy a decoded envelope. BG_ERR_BAD_VALUE with a reason in
 * why: no selector, not_after <= not_before, a negative limit, an empty id
 * or approver. */
bg_err bg_envset_put(bg_envset *s, const bg_envelope_msg *m, char *why, size_t why_size);
/* Remove by id (a tombstone); removing an unknown id is not an error. */
void bg_envset_remove(bg_envset *s, const char *id, size_t id_len);
size_t bg_envset_count(const bg_envset *s);

/* The first live envelope covering (identity, class, owner) at t, or NULL,
 * with the same matching rules as bg_policy_envelope_for(). */
const bg_envelope *bg_envset_find(const bg_envset *s, bg_str identity, const char *class_name,
                                  bg_str owner, int64_t t);

#endif
