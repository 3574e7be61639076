/* Start-up helpers (see setup.h). */
#include "setup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_load.h"

bg_err bg_setup_policy(const bg_config *cfg, bg_policy *policy, char *errstr, size_t errstr_size) {
    if (!cfg->policy_path) {
        bg_warn("no policy configured: using the built-in default policy (no limits, no envelopes)");
        return bg_policy_init_default(policy);
    }
    return bg_policy_load(cfg->policy_path, policy, errstr, errstr_size);
}

static bg_err read_file(const char *path, char **out, size_t *len, char *errstr, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, n, "cannot read schema '%s': %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + used, 1, cap - used, f);
        used += r;
        if (used < cap)
            break;
        if (cap >= (1u << 20)) {
            free(buf);
            fclose(f);
            snprintf(errstr, n, "schema '%s' is larger than 1 MiB", path);
            return BG_ERR_OVERSIZED;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (!buf)
        return BG_ERR_NOMEM;
    *out = buf;
    *len = used;
    return BG_OK;
}

bg_err bg_setup_codec(const bg_config *cfg, bg_codec **out, char *errstr, size_t errstr_size) {
    bg_codec *c;
    bg_err err = bg_codec_new(&c, errstr, errstr_size);
    if (err)
        return err;
    for (size_t i = 0; i < cfg->n_local && !err; i++) {
        char *text;
        size_t len;
        err = read_file(cfg->local[i].path, &text, &len, errstr, errstr_size);
        if (err)
            break;
        char e[400];
        err = bg_codec_add_schema(c, cfg->local[i].id, text, len, e, sizeof e);
        if (err)
            snprintf(errstr, errstr_size, "schema_registry.local.%d (%s): %s", (int)cfg->local[i].id,
                     cfg->local[i].path, e);
        free(text);
    }
    /* embedded schemas under their default ids, unless the map uses that id */
    for (int r = 0; r < BG_REC_COUNT && !err; r++) {
        int32_t id = bg_codec_default_id((bg_record)r);
        bool taken = false;
        for (size_t i = 0; i < cfg->n_local; i++)
            if (cfg->local[i].id == id)
                taken = true;
        if (taken)
            continue;
        const char *text = bg_codec_reader_schema((bg_record)r);
        err = bg_codec_add_schema(c, id, text, strlen(text), errstr, errstr_size);
    }
    if (err) {
        bg_codec_free(c);
        return err == BG_ERR_IO ? BG_ERR_IO : BG_ERR_CONFIG;
    }
    *out = c;
    return BG_OK;
}
