/* Ed25519 signatures of control records (DESIGN.md "Trust"), with libsodium.
 *
 * What is signed — the canonical bytes of a record:
 *   the Avro binary encoding of the record (no Confluent framing) under the
 *   worker's reader schema (schemas/envelope.avsc, schemas/revocation_command.avsc),
 *   fields in schema order, with `signature` set to null (union branch 0) and
 *   `key_id` set to the signer's key id. The signature is the 64-byte detached
 *   Ed25519 signature (crypto_sign_detached) of those bytes, carried in the
 *   record's `signature` field. Fields a newer producer adds beyond the
 *   reader schema are not covered.
 *
 * Key files (written by `burstguard keygen --out PREFIX`): PREFIX.key holds
 * the 64-byte libsodium secret key (seed || public key), PREFIX.pub the
 * 32-byte public key, each as one line of standard base64 (RFC 4648, with
 * padding). A secret key file readable by group or others is refused.
 * Secrets are never logged; buffers that held them are wiped.
 *
 * Envelope checks (bg_sign_check_envelope), with approvers in the policy:
 * unsigned -> BG_ERR_UNSIGNED, key_id not an approver -> BG_ERR_UNTRUSTED_KEY,
 * signature does not verify -> BG_ERR_BAD_SIGNATURE, approver scoped to
 * owners / workload classes that do not include the envelope's ->
 * BG_ERR_KEY_SCOPE. */
#ifndef BG_SIGN_H
#define BG_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../detectors/policy.h"
#include "codec.h"

#define BG_SIGN_PUBLIC_BYTES 32u
#define BG_SIGN_SECRET_BYTES 64u
#define BG_SIGN_BYTES 64u

/* Initialise libsodium (idempotent). BG_ERR_INVALID if it cannot start. */
bg_err bg_sign_init(void);

/* Write PREFIX.key (mode 0600, created exclusively) and PREFIX.pub. */
bg_err bg_sign_keygen(const char *prefix, char *errstr, size_t errstr_size);
/* Read a secret key file: BG_ERR_CONFIG with a one-line reason when it is
 * readable by group or others or not a key; BG_ERR_IO when unreadable. */
bg_err bg_sign_load_secret(const char *path, uint8_t sk[BG_SIGN_SECRET_BYTES], char *errstr,
                           size_t errstr_size);
bg_err bg_sign_load_public(const char *path, uint8_t pk[BG_SIGN_PUBLIC_BYTES], char *errstr,
                           size_t errstr_size);
/* Wipe a secret key buffer. */
void bg_sign_wipe(void *p, size_t n);

void bg_sign_detached(const uint8_t *msg, size_t len, const uint8_t sk[BG_SIGN_SECRET_BYTES],
                      uint8_t sig[BG_SIGN_BYTES]);
bool bg_sign_verify(const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len,
                    const uint8_t pk[BG_SIGN_PUBLIC_BYTES]);

/* Sign an envelope whose key_id is set: sig gets the signature of its
 * canonical bytes. scratch is a caller-owned buffer (reused). */
bg_err bg_sign_envelope(bg_codec *c, const bg_envelope_msg *env,
                        const uint8_t sk[BG_SIGN_SECRET_BYTES], bg_buf *scratch,
                        uint8_t sig[BG_SIGN_BYTES]);
/* Check a decoded envelope against the approvers (n > 0); see the header. */
bg_err bg_sign_check_envelope(bg_codec *c, const bg_approver *approvers, uint32_t n,
                              const bg_envelope_msg *env, bg_buf *scratch, char *why,
                              size_t why_size);

#endif
