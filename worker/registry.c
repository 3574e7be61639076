/* Schema Registry client (see registry.h).
 *
 * One libcurl easy handle, reused so the connection stays alive; a bounded
 * response buffer (a schema answer beyond BG_MAX_MESSAGE is refused); a flat
 * cache of answered ids (negative answers bounded by REG_MAX_CACHE, so
 * hostile ids from the wire cannot grow memory without limit). */
#include "registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define REG_MAX_CACHE 65536u   /* ids remembered as unknown or invalid */
#define REG_MAX_PASSWORD 4096u /* bytes of a password file */
#define REG_BACKOFF_START_MS 200
#define REG_MAX_URL 2048u /* base URL; the request URL adds at most 24 bytes */

typedef struct reg_entry {
    int32_t id;
    bg_err answer; /* BG_OK (text set), BG_ERR_UNKNOWN_SCHEMA or BG_ERR_SCHEMA */
    char *text;
    size_t len;
    char why[160]; /* for negative answers */
} reg_entry;

struct bg_registry {
    CURL *curl;
    char *url;     /* base, without a trailing '/' */
    char *userpwd; /* "user:password" or NULL */
    char *ca_file;
    int64_t timeout_ms, retry_max_ms;
    int max_attempts;
    reg_entry *e;
    size_t n, cap;
    uint64_t requests;
    char *body; /* response buffer */
    size_t body_len, body_cap;
    bool body_over;
};

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t n, const char *fmt, ...) {
    if (!why || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static bg_err read_password(const char *path, char **out, char *errstr, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        say(errstr, n, "schema_registry.password_file: cannot read '%s': %s", path,
            strerror(errno));
        return BG_ERR_CONFIG;
    }
    char *buf = malloc(REG_MAX_PASSWORD + 1);
    if (!buf) {
        fclose(f);
        return BG_ERR_NOMEM;
    }
    size_t got = fread(buf, 1, REG_MAX_PASSWORD + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || got > REG_MAX_PASSWORD) {
        free(buf);
        say(errstr, n, "schema_registry.password_file: '%s' is %s", path,
            bad ? "unreadable" : "longer than 4096 bytes");
        return BG_ERR_CONFIG;
    }
    buf[got] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0'; /* the first line; a trailing newline is not part of it */
    if (!buf[0]) {
        free(buf);
        say(errstr, n, "schema_registry.password_file: '%s' is empty", path);
        return BG_ERR_CONFIG;
    }
    *out = buf;
    return BG_OK;
}

bg_err bg_registry_new(const bg_registry_opts *o, bg_registry **out, char *errstr,
                       size_t errstr_size) {
    if (!o || !out || !o->url || o->timeout_ms < 1 || o->retry_max_ms < 0) {
        say(errstr, errstr_size, "schema registry: no URL or bad options");
        return BG_ERR_INVALID;
    }
    if (strlen(o->url) > REG_MAX_URL) {
        say(errstr, errstr_size, "schema_registry.url: longer than %u characters", REG_MAX_URL);
        return BG_ERR_CONFIG;
    }
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
        say(errstr, errstr_size, "schema_registry.url: '%s' is not an http:// or https:// URL",
            o->url);
        return BG_ERR_CONFIG;
    }
    CURLU *u = curl_url();
    if (!u)
        return BG_ERR_NOMEM;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, o->url, 0);
    char *host = NULL;
    if (!uc)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_free(host);
    curl_url_cleanup(u);
    if (uc) {
        say(errstr, errstr_size, "schema_registry.url: '%s' is not a valid URL: %s", o->url,
            curl_url_strerror(uc));
        return BG_ERR_CONFIG;
    }
    if (!o->username != !o->password_file) {
        say(errstr, errstr_size,
            "schema_registry.username and schema_registry.password_file go together");
        return BG_ERR_CONFIG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        say(errstr, errstr_size, "schema registry: libcurl initialisation failed");
        return BG_ERR_IO;
    }
    bg_registry *r = calloc(1, sizeof *r);
    if (!r)
        return BG_ERR_NOMEM;
    r->timeout_ms = o->timeout_ms;
    r->retry_max_ms = o->retry_max_ms;
    r->max_attempts = o->max_attempts;
    r->url = dup_str(o->url);
    r->ca_file = o->ca_file ? dup_str(o->ca_file) : NULL;
    r->curl = curl_easy_init();
    bg_err err = (!r->url || (o->ca_file && !r->ca_file) || !r->curl) ? BG_ERR_NOMEM : BG_OK;
    if (!err) {
        size_t ul = strlen(r->url);
        while (ul > 0 && r->url[ul - 1] == '/')
            r->url[--ul] = '\0';
    }
    if (!err && o->username) {
        char *pw = NULL;
        err = read_password(o->password_file, &pw, errstr, errstr_size);
        if (!err) {
            size_t a = strlen(o->username), b = strlen(pw);
            r->userpwd = malloc(a + b + 2);
            if (r->userpwd) {
                memcpy(r->userpwd, o->username, a);
                r->userpwd[a] = ':';
                memcpy(r->userpwd + a + 1, pw, b + 1);
            } else {
                err = BG_ERR_NOMEM;
            }
            memset(pw, 0, b);
            free(pw);
        }
    }
    if (err) {
        if (err == BG_ERR_NOMEM)
            say(errstr, errstr_size, "schema registry: out of memory");
        bg_registry_free(r);
        return err;
    }
    *out = r;
    return BG_OK;
}

bg_err bg_registry_from_config(const bg_config *cfg, bg_registry **out, char *errstr,
                               size_t errstr_size) {
    *out = NULL;
    if (!cfg->registry_url)
        return BG_OK;
    bg_registry_opts o = {.url = cfg->registry_url,
                          .username = cfg->registry_username,
                          .password_file = cfg->registry_password_file,
                          .ca_file = cfg->registry_ca_file,
                          .timeout_ms = cfg->registry_timeout_ms,
                          .retry_max_ms = cfg->registry_retry_max_ms};
    bg_err err = bg_registry_new(&o, out, errstr, errstr_size);
    return err == BG_ERR_INVALID ? BG_ERR_CONFIG : err;
}

void bg_registry_free(bg_registry *r) {
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    free(r->url);
    if (r->userpwd) {
        memset(r->userpwd, 0, strlen(r->userpwd));
        free(r->userpwd);
    }
    free(r->ca_file);
    for (size_t i = 0; i < r->n; i++)
        free(r->e[i].text);
    free(r->e);
    free(r->body);
    free(r);
}

uint64_t bg_registry_requests(const bg_registry *r) {
    return r ? r->requests : 0;
}

static reg_entry *cached(bg_registry *r, int32_t id) {
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].id == id)
            return &r->e[i];
    return NULL;
}

/* Remember a final answer; takes ownership of text. A negative answer
 * beyond REG_MAX_CACHE entries is not remembered (ids come from the wire);
 * a schema always is (the codec keeps it too), unless memory runs out. */
static reg_entry *remember(bg_registry *r, int32_t id, bg_err answer, char *text, size_t len,
                           const char *why) {
    if (answer != BG_OK && r->n >= REG_MAX_CACHE)
        return NULL;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        reg_entry *ne = realloc(r->e, nc * sizeof *ne);
        if (!ne) {
            free(text);
            return NULL;
        }
        r->e = ne;
        r->cap = nc;
    }
    reg_entry *e = &r->e[r->n++];
    memset(e, 0, sizeof *e);
    e->id = id;
    e->answer = answer;
    e->text = text;
    e->len = len;
    snprintf(e->why, sizeof e->why, "%s", why ? why : "");
    return e;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque) {
    bg_registry *r = opaque;
    size_t n = size * nmemb;
    if (r->body_len + n > BG_MAX_MESSAGE) {
        r->body_over = true;
        return 0; /* aborts the transfer */
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t nc = r->body_cap ? r->body_cap : 4096;
        while (nc < r->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(r->body, nc);
        if (!nb)
            return 0;
        r->body = nb;
        r->body_cap = nc;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

/* error_code of a Confluent error answer, 0 when there is none. */
static long error_code(const char *body, size_t len) {
    json_t *j = json_loadb(body, len, 0, NULL);
    long code = 0;
    if (j && json_is_integer(json_object_get(j, "error_code")))
        code = (long)json_integer_value(json_object_get(j, "error_code"));
    json_decref(j);
    return code;
}

/* One request. A final answer is cached and returned; a transient one is not. */
static bg_err request(bg_registry *r, int32_t id, char *why, size_t ws) {
    char url[REG_MAX_URL + 32];
    if (snprintf(url, sizeof url, "%s/schemas/ids/%ld", r->url, (long)id) >= (int)sizeof url) {
        say(why, ws, "schema registry URL too long");
        return BG_ERR_CONFIG;
    }
    CURL *c = r->curl;
    curl_easy_reset(c);
    r->body_len = 0;
    r->body_over = false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (r->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
    if (r->userpwd) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, r->userpwd);
    }
    r->requests++;
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (r->body_over)
            say(why, ws, "schema registry: answer for id %d is larger than %u bytes", (int)id,
                BG_MAX_MESSAGE);
        else
            say(why, ws, "schema registry %s: %s", r->url, curl_easy_strerror(cc));
        return BG_ERR_IO;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 404 && error_code(r->body ? r->body : "", r->body_len) == 40403) {
        say(why, ws, "schema id %d is not in the schema registry (40403)", (int)id);
        remember(r, id, BG_ERR_UNKNOWN_SCHEMA, NULL, 0, why);
        return BG_ERR_UNKNOWN_SCHEMA;
    }
    if (status == 401 || status == 403) {
        say(why, ws, "schema registry %s refused the credentials (HTTP %ld)", r->url, status);
        return BG_ERR_CONFIG;
    }
    if (status != 200) {
        say(why, ws, "schema registry %s answered HTTP %ld for id %d", r->url, status, (int)id);
        return BG_ERR_IO;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body ? r->body : "", r->body_len, 0, &je);
    json_t *s = j ? json_object_get(j, "schema") : NULL;
    json_t *type = j ? json_object_get(j, "schemaType") : NULL;
    bg_err err = BG_OK;
    if (!json_is_string(s)) {
        /* a proxy's page or a broken registry: not a final answer about the id */
        say(why, ws, "schema registry answer for id %d has no \"schema\" string", (int)id);
        err = BG_ERR_IO;
    } else if (type && (!json_is_string(type) || strcmp(json_string_value(type), "AVRO") != 0)) {
        say(why, ws, "schema id %d is a %s schema, not Avro", (int)id,
            json_is_string(type) ? json_string_value(type) : "non-Avro");
        remember(r, id, BG_ERR_SCHEMA, NULL, 0, why);
        err = BG_ERR_SCHEMA;
    } else {
        size_t len = json_string_length(s);
        char *text = malloc(len + 1);
        if (!text) {
            say(why, ws, "out of memory");
            err = BG_ERR_NOMEM;
        } else {
            memcpy(text, json_string_value(s), len);
            text[len] = '\0';
            if (!remember(r, id, BG_OK, text, len, NULL)) {
                say(why, ws, "out of memory");
                err = BG_ERR_NOMEM;
            }
        }
    }
    json_decref(j);
    return err;
}

bg_err bg_registry_fetch(bg_registry *r, int32_t id, const char **text, size_t *len, char *why,
                         size_t why_size) {
    if (!r || !text || !len) {
        say(why, why_size, "no registry or no output");
        return BG_ERR_INVALID;
    }
    reg_entry *e = cached(r, id);
    if (!e) {
        bg_err err = request(r, id, why, why_size);
        if (err)
            return err;
        e = cached(r, id);
        if (!e)
            return BG_ERR_NOMEM;
    }
    if (e->answer) {
        say(why, why_size, "%s", e->why);
        return e->answer;
    }
    *text = e->text;
    *len = e->len;
    return BG_OK;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

bg_err bg_registry_resolve(bg_registry *r, bg_codec *codec, int32_t id, volatile sig_atomic_t *stop,
                           char *why, size_t why_size) {
    if (!r || !codec) {
        say(why, why_size, "no registry or no codec");
        return BG_ERR_INVALID;
    }
    if (bg_codec_has_schema(codec, id))
        return BG_OK;
    int64_t backoff = REG_BACKOFF_START_MS;
    for (int attempt = 1;; attempt++) {
        const char *text;
        size_t len;
        bg_err err = bg_registry_fetch(r, id, &text, &len, why, why_size);
        if (!err) {
            char e[400];
            err = bg_codec_add_schema(codec, id, text, len, e, sizeof e);
            if (!err) {
                bg_info("schema id %d registered from the schema registry", (int)id);
                return BG_OK;
            }
            if (err == BG_ERR_NOMEM)
                return err;
            /* the registry's final answer is a schema Avro-C refuses: a dead letter */
            say(why, why_size, "schema id %d from the registry: %s", (int)id, e);
            reg_entry *ce = cached(r, id);
            if (ce) {
                free(ce->text);
                ce->text = NULL;
                ce->len = 0;
                ce->answer = BG_ERR_SCHEMA;
                snprintf(ce->why, sizeof ce->why, "%s", why);
            }
            return BG_ERR_SCHEMA;
        }
        if (err == BG_ERR_UNKNOWN_SCHEMA || err == BG_ERR_SCHEMA || err == BG_ERR_NOMEM ||
            err == BG_ERR_INVALID)
            return err;
        if ((r->max_attempts > 0 && attempt >= r->max_attempts) || (stop && *stop))
            return err;
        if (backoff > r->retry_max_ms)
            backoff = r->retry_max_ms;
        bg_warn("schema id %d: %s; retrying in %lld ms (attempt %d)", (int)id, why,
                (long long)backoff, attempt);
        for (int64_t slept = 0; slept < backoff && !(stop && *stop); slept += 50)
            sleep_ms(backoff - slept < 50 ? backoff - slept : 50);
        if (stop && *stop)
            return err;
        backoff = backoff * 2 > r->retry_max_ms ? r->retry_max_ms : backoff * 2;
    }
}
