/* libFuzzer target: arbitrary bytes as a framed RevocationCommand handed to
 * `burstguard verify-command` (bg_codec_revocation_unsign + bg_sign_verify).
 *
 * Hostile lengths, union and enum indexes must be refused before Avro-C reads
 * the body; the result is an error with a one-line reason or canonical bytes
 * that are never longer than the input. Never a crash, an out-of-bounds read,
 * a huge allocation or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "worker/codec.h"
#include "worker/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bg_codec *codec;
    static const uint8_t pk[BG_SIGN_PUBLIC_BYTES] = {1, 2, 3};
    char err[256];
    if (!codec && (bg_sign_init() || bg_codec_new(&codec, err, sizeof err) ||
                   bg_codec_add_defaults(codec, err, sizeof err)))
        __builtin_trap();
    bg_buf canon = {0};
    char key_id[BG_MAX_STRING + 1], why[256] = "";
    uint8_t sig[BG_SIGN_BYTES];
    size_t sig_len = 0;
    bg_err e = bg_codec_revocation_unsign(codec, data, size, &canon, key_id, sizeof key_id, sig,
                                          &sig_len, why, sizeof why);
    if (e == BG_OK) {
        if (canon.len > size || sig_len > BG_SIGN_BYTES)
            __builtin_trap();
        (void)bg_sign_verify(canon.data, canon.len, sig, sig_len, pk);
    } else if (strchr(why, '\n')) {
        __builtin_trap();
    }
    bg_buf_free(&canon);
    return 0;
}
