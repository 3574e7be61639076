/* One HTTP POST of a JSON body to a webhook, with libcurl: the transport
 * under the alert sink (alert.h). No retries here: the caller classifies the
 * outcome (network error, status, Retry-After) and decides. */
#ifndef BG_WEBHOOK_H
#define BG_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "../detectors/err.h"

typedef struct bg_webhook_result {
    long status;            /* HTTP status; 0 when no response arrived */
    int64_t retry_after_ms; /* Retry-After of the response, -1 when absent */
} bg_webhook_result;

/* POST body (application/json) to url with an Idempotency-Key header (omitted
 * when NULL), waiting at most timeout_ms. BG_OK whenever a response arrived
 * (whatever its status); BG_ERR_IO with a reason in errstr on network errors
 * and timeouts. The response body is read and discarded (capped). */
bg_err bg_webhook_post(const char *url, const char *idempotency_key, const char *body,
                       int64_t timeout_ms, bg_webhook_result *res, char *errstr,
                       size_t errstr_size);

#endif
