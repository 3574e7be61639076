/* Start-up shared by run, demo and replay: configuration, policy and codec,
 * each failing with one line that names what is wrong. */
#ifndef BG_SETUP_H
#define BG_SETUP_H

#include <stddef.h>

#include "../detectors/policy.h"
#include "codec.h"
#include "config.h"

/* Load the policy named by the config (or the built-in default, with a
 * warning). BG_ERR_CONFIG / BG_ERR_IO on failure. */
bg_err bg_setup_policy(const bg_config *cfg, bg_policy *policy, char *errstr, size_t errstr_size);
/* A codec with the config's local schema map, plus the embedded schemas under
 * their default ids for every record the map does not name. Ids beyond those
 * come from the Schema Registry (registry.h) when schema_registry.url is set;
 * outputs always use the first local or default id of their record. */
bg_err bg_setup_codec(const bg_config *cfg, bg_codec **out, char *errstr, size_t errstr_size);

#endif
