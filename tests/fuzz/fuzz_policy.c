/* libFuzzer target: arbitrary bytes as a policy file.
 *
 * The loader must return BG_OK or an error with a one-line message, never
 * crash, read out of bounds or leak (ASan checks the last two). On success
 * the printout and the lookups run too, so their code sees every shape of
 * policy the loader accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "worker/policy_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bg_policy p;
    char err[512];
    bg_err e = bg_policy_load_text("fuzz.yaml", (const char *)data, size, &p, err, sizeof err);
    if (e != BG_OK) {
        /* a message is always written, on one line */
        if (!err[0] || strchr(err, '\n'))
            __builtin_trap();
        return 0;
    }
    if (p.n_classes == 0 || p.default_class >= p.n_classes)
        __builtin_trap();
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        bg_policy_print(&p, devnull);
        fclose(devnull);
    }
    bg_str id = {"spiffe://prod/ci/x", 18}, owner = {"data-eng", 8}, none = {NULL, 0};
    const bg_class_policy *c = bg_policy_class_for(&p, id, owner, none);
    for (uint32_t i = 0; i < p.n_envelopes; i++)
        (void)bg_policy_envelope_for(&p, id, c->name, owner, p.envelopes[i].not_before);
    bg_policy_free(&p);
    return 0;
}
