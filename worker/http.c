/* HTTP endpoint (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

struct bg_http {
    struct MHD_Daemon *d;
    bg_metrics *m;
    unsigned port;
};

#define HEALTHY_WITHIN_S 30.0

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg) {
    size_t n = strlen(msg);
    char *b = malloc(n + 1);
    if (!b)
        return MHD_NO;
    memcpy(b, msg, n + 1);
    return reply(c, status, "text/plain; charset=utf-8", b, n);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    bg_http *h = cls;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    if (!strcmp(url, "/metrics")) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
            return MHD_NO;
        bg_metrics_render(h->m, f);
        fclose(f);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    }
    if (!strcmp(url, "/healthz")) {
        pthread_mutex_lock(&h->m->mu);
        double age = bg_metrics_now() - h->m->last_poll;
        pthread_mutex_unlock(&h->m->mu);
        return age < HEALTHY_WITHIN_S ? text(c, MHD_HTTP_OK, "ok\n")
                                      : text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not polling\n");
    }
    if (!strcmp(url, "/readyz")) {
        pthread_mutex_lock(&h->m->mu);
        bool ready = h->m->ready;
        pthread_mutex_unlock(&h->m->mu);
        return ready ? text(c, MHD_HTTP_OK, "ready\n")
                     : text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    }
    return text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

bg_err bg_http_start(const char *listen, bg_metrics *m, bg_http **out, char *errstr,
                     size_t errstr_size) {
    const char *colon = strrchr(listen, ':');
    if (!colon) {
        snprintf(errstr, errstr_size, "http.listen '%s' is not HOST:PORT", listen);
        return BG_ERR_CONFIG;
    }
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        hl = sizeof host - 1;
    memcpy(host, listen, hl);
    host[hl] = 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai);
    if (rc || !ai) {
        snprintf(errstr, errstr_size, "http.listen '%s': %s", listen, gai_strerror(rc));
        return BG_ERR_CONFIG;
    }
    bg_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        return BG_ERR_NOMEM;
    }
    h->m = m;
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handle, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(errstr, errstr_size, "cannot listen on %s (address in use or not allowed)",
                 listen);
        free(h);
        return BG_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *out = h;
    return BG_OK;
}

unsigned bg_http_port(const bg_http *h) { return h->port; }

void bg_http_stop(bg_http *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
