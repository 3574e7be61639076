/* libFuzzer target: arbitrary bytes as the CSV input of `burstguard series`.
 *
 * bg_series_process() must return 0 (and write a header plus one row per
 * data row), 2 (bad input, one-line message) or 1 never here (the output is
 * /dev/null); never crash, read out of bounds or leak. The detector stack
 * runs on every accepted value, so extreme values reach it too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "detectors/series_stack.h"

int bg_series_process(FILE *in, FILE *out, const bg_stack_params *p, char *err, size_t err_size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    FILE *in = fmemopen((void *)(uintptr_t)data, size, "r");
    FILE *out = fopen("/dev/null", "w");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return 0;
    }
    bg_stack_params p;
    bg_stack_params_default(&p);
    p.use_bocpd = data[0] & 1; /* both forms */
    char err[512] = "";
    int rc = bg_series_process(in, out, &p, err, sizeof err);
    fclose(in);
    fclose(out);
    if (rc != 0 && rc != 2)
        __builtin_trap();
    if (rc == 2 && (!err[0] || strchr(err, '\n')))
        __builtin_trap();
    return 0;
}
