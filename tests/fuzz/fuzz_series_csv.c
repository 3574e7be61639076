/* libFuzzer target: arbitrary bytes as the CSV input of `burstguard series`.
 *
 * bg_series_process() must return 0 (and write a header plus one row per
 * data row), 2 (bad input, one-line message) or 1 never here (the output is
 * /dev/null); never crash, read out of bounds or leak. The scorer (the
 * engine's stack or the series preset, by the first byte) runs on every
 * accepted value, so extreme values reach it too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "detectors/segment.h"
#include "detectors/series_stack.h"

int bg_series_process_preset(FILE *in, FILE *out, const bg_stack_params *p,
                             const bg_seg_params *seg, char *err, size_t err_size);
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
    p.use_bocpd = data[0] & 1; /* the engine stack in both forms, and the series preset */
    bg_seg_params seg;
    bg_seg_params_default(&seg);
    char err[512] = "";
    int rc = bg_series_process_preset(in, out, &p, data[0] % 3 == 2 ? &seg : NULL, err, sizeof err);
    fclose(in);
    fclose(out);
    if (rc != 0 && rc != 2)
        __builtin_trap();
    if (rc == 2 && (!err[0] || strchr(err, '\n')))
        __builtin_trap();
    return 0;
}
