/* Webhook transport (see webhook.h). A fresh easy handle per request keeps
 * the code simple; alert volume is a few posts a second at most. */
#include "webhook.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#define WEBHOOK_MAX_RESPONSE (64u * 1024u) /* we never need the body; stop reading beyond */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *opaque) {
    (void)ptr;
    size_t *seen = opaque;
    size_t n = size * nmemb;
    *seen += n;
    return *seen > WEBHOOK_MAX_RESPONSE ? 0 : n;
}

bg_err bg_webhook_post(const char *url, const char *idempotency_key, const char *body,
                       int64_t timeout_ms, bg_webhook_result *res, char *errstr,
                       size_t errstr_size) {
    res->status = 0;
    res->retry_after_ms = -1;
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(errstr, errstr_size, "curl_easy_init failed");
        return BG_ERR_NOMEM;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char idem[256];
    if (idempotency_key) {
        snprintf(idem, sizeof idem, "Idempotency-Key: %s", idempotency_key);
        hdrs = curl_slist_append(hdrs, idem);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    size_t seen = 0;
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "burstguard-alert/" BG_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &seen);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    bg_err err = BG_OK;
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && status > 0)) {
        snprintf(errstr, errstr_size, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
        err = BG_ERR_IO;
    } else {
        res->status = status;
        curl_off_t ra = -1;
        if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            res->retry_after_ms = (int64_t)ra * 1000;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return err;
}
