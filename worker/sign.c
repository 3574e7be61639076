/* Ed25519 signatures of control records (see sign.h). */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define KEY_FILE_MAX 512u /* a base64 secret key is 88 characters */

bg_err bg_sign_init(void) {
    return sodium_init() < 0 ? BG_ERR_INVALID : BG_OK;
}

void bg_sign_wipe(void *p, size_t n) {
    sodium_memzero(p, n);
}

static bg_err write_file(const char *path, int flags, mode_t mode, const char *text, char *errstr,
                         size_t errstr_size) {
    int fd = open(path, flags, mode);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "cannot create '%s': %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(errstr, errstr_size, "cannot write '%s': %s", path, strerror(errno));
            close(fd);
            return BG_ERR_IO;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        snprintf(errstr, errstr_size, "cannot write '%s': %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    return BG_OK;
}

bg_err bg_sign_keygen(const char *prefix, char *errstr, size_t errstr_size) {
    if (bg_sign_init())
        return BG_ERR_INVALID;
    uint8_t pk[BG_SIGN_PUBLIC_BYTES], sk[BG_SIGN_SECRET_BYTES];
    char b64[sodium_base64_ENCODED_LEN(BG_SIGN_SECRET_BYTES, sodium_base64_VARIANT_ORIGINAL) + 1];
    char path[4096];
    crypto_sign_keypair(pk, sk);
    sodium_bin2base64(b64, sizeof b64 - 1, sk, sizeof sk, sodium_base64_VARIANT_ORIGINAL);
    strcat(b64, "\n");
    bg_sign_wipe(sk, sizeof sk);
    if ((size_t)snprintf(path, sizeof path, "%s.key", prefix) >= sizeof path) {
        snprintf(errstr, errstr_size, "--out prefix is too long");
        bg_sign_wipe(b64, sizeof b64);
        return BG_ERR_INVALID;
    }
    /* O_EXCL: never overwrite a key; the mode is set at creation (umask can
     * only narrow it) */
    bg_err err = write_file(path, O_WRONLY | O_CREAT | O_EXCL, 0600, b64, errstr, errstr_size);
    bg_sign_wipe(b64, sizeof b64);
    if (err)
        return err;
    sodium_bin2base64(b64, sizeof b64 - 1, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    strcat(b64, "\n");
    snprintf(path, sizeof path, "%s.pub", prefix);
    return write_file(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, b64, errstr, errstr_size);
}

/* Read a one-line base64 key of exactly want bytes. */
static bg_err load_key(const char *path, bool secret, uint8_t *out, size_t want, char *errstr,
                       size_t errstr_size) {
    if (bg_sign_init())
        return BG_ERR_INVALID;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "cannot read key file '%s': %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(errstr, errstr_size, "key file '%s' is not a regular file", path);
        close(fd);
        return BG_ERR_CONFIG;
    }
    if (secret && (st.st_mode & 077)) {
        snprintf(errstr, errstr_size,
                 "key file '%s' is readable or writable by group or others (mode %04o): "
                 "run chmod 600 on it",
                 path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return BG_ERR_CONFIG;
    }
    char buf[KEY_FILE_MAX + 1];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(errstr, errstr_size, "cannot read key file '%s': %s", path, strerror(errno));
            close(fd);
            bg_sign_wipe(buf, sizeof buf);
            return BG_ERR_IO;
        }
        if (r == 0 || (len += (size_t)r) > KEY_FILE_MAX)
            break;
    }
    close(fd);
    size_t got = 0;
    bool ok = len <= KEY_FILE_MAX &&
              sodium_base642bin(out, want, buf, len, " \t\r\n", &got, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0 &&
              got == want;
    bg_sign_wipe(buf, sizeof buf);
    if (!ok) {
        snprintf(
            errstr, errstr_size,
            "key file '%s' does not hold a %s Ed25519 %s key in base64 (see burstguard keygen)",
            path, secret ? "64-byte" : "32-byte", secret ? "secret" : "public");
        bg_sign_wipe(out, want);
        return BG_ERR_CONFIG;
    }
    return BG_OK;
}

bg_err bg_sign_load_secret(const char *path, uint8_t sk[BG_SIGN_SECRET_BYTES], char *errstr,
                           size_t errstr_size) {
    return load_key(path, true, sk, BG_SIGN_SECRET_BYTES, errstr, errstr_size);
}

bg_err bg_sign_load_public(const char *path, uint8_t pk[BG_SIGN_PUBLIC_BYTES], char *errstr,
                           size_t errstr_size) {
    return load_key(path, false, pk, BG_SIGN_PUBLIC_BYTES, errstr, errstr_size);
}

void bg_sign_detached(const uint8_t *msg, size_t len, const uint8_t sk[BG_SIGN_SECRET_BYTES],
                      uint8_t sig[BG_SIGN_BYTES]) {
    crypto_sign_detached(sig, NULL, msg, len, sk);
}

bool bg_sign_verify(const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len,
                    const uint8_t pk[BG_SIGN_PUBLIC_BYTES]) {
    if (!sig || sig_len != BG_SIGN_BYTES)
        return false;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

bg_err bg_sign_envelope(bg_codec *c, const bg_envelope_msg *env,
                        const uint8_t sk[BG_SIGN_SECRET_BYTES], bg_buf *scratch,
                        uint8_t sig[BG_SIGN_BYTES]) {
    if (!env->key_id.ptr || env->key_id.len == 0)
        return BG_ERR_INVALID;
    bg_err err = bg_codec_canonical_envelope(c, env, scratch);
    if (err)
        return err;
    bg_sign_detached(scratch->data, scratch->len, sk, sig);
    return BG_OK;
}

static bool str_eq(bg_str s, const char *z) {
    return s.ptr && strlen(z) == s.len && memcmp(s.ptr, z, s.len) == 0;
}

static bool listed(char *const *list, uint32_t n, bg_str s) {
    for (uint32_t i = 0; i < n; i++)
        if (str_eq(s, list[i]))
            return true;
    return false;
}

bg_err bg_sign_check_envelope(bg_codec *c, const bg_approver *approvers, uint32_t n,
                              const bg_envelope_msg *env, bg_buf *scratch, char *why,
                              size_t why_size) {
    if (!env->signature.ptr || !env->key_id.ptr) {
        snprintf(why, why_size,
                 "envelope is unsigned (%s missing) and approver keys are "
                 "configured",
                 env->key_id.ptr ? "signature" : "key_id");
        return BG_ERR_UNSIGNED;
    }
    int kl = (int)(env->key_id.len > 80 ? 80 : env->key_id.len);
    const bg_approver *a = NULL;
    for (uint32_t i = 0; i < n && !a; i++)
        if (str_eq(env->key_id, approvers[i].key_id))
            a = &approvers[i];
    if (!a) {
        snprintf(why, why_size, "key_id '%.*s' is not a trusted approver", kl, env->key_id.ptr);
        return BG_ERR_UNTRUSTED_KEY;
    }
    bg_err err = bg_codec_canonical_envelope(c, env, scratch);
    if (err) {
        snprintf(why, why_size, "cannot compute the canonical bytes: %s", bg_err_str(err));
        return err;
    }
    if (!bg_sign_verify(scratch->data, scratch->len, (const uint8_t *)env->signature.ptr,
                        env->signature.len, a->public_key)) {
        snprintf(why, why_size, "signature of key '%.*s' does not verify (%u-byte signature)", kl,
                 env->key_id.ptr, env->signature.len);
        return BG_ERR_BAD_SIGNATURE;
    }
    if (a->n_owners && !listed(a->owners, a->n_owners, env->owner)) {
        snprintf(why, why_size, "key '%.*s' may only authorise envelopes of its owners, not %s%.*s",
                 kl, env->key_id.ptr, env->owner.ptr ? "owner " : "one without an owner",
                 (int)(env->owner.len > 80 ? 80 : env->owner.len),
                 env->owner.ptr ? env->owner.ptr : "");
        return BG_ERR_KEY_SCOPE;
    }
    if (a->n_workload_classes &&
        !listed(a->workload_classes, a->n_workload_classes, env->workload_class)) {
        snprintf(why, why_size,
                 "key '%.*s' may only authorise envelopes of its workload classes, not %s%.*s", kl,
                 env->key_id.ptr, env->workload_class.ptr ? "class " : "one without a class",
                 (int)(env->workload_class.len > 80 ? 80 : env->workload_class.len),
                 env->workload_class.ptr ? env->workload_class.ptr : "");
        return BG_ERR_KEY_SCOPE;
    }
    return BG_OK;
}
