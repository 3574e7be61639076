/* The HTTP endpoint (libmicrohttpd, its own thread): /metrics in the
 * Prometheus text format, /healthz (the process polls: 200 while the last
 * poll is less than 30 s old) and /readyz (200 once the envelopes table has
 * been read and the group has given the member its assignment, even an
 * empty one: a replica beyond the partition count is a ready standby). Anything else is 404.
 * Ownership: the server reads m, which must outlive it. */
#ifndef BG_HTTP_H
#define BG_HTTP_H

#include <stddef.h>

#include "../detectors/err.h"
#include "metrics.h"

typedef struct bg_http bg_http;

/* listen: "HOST:PORT" (port 0 picks a free one). */
bg_err bg_http_start(const char *listen, bg_metrics *m, bg_http **out, char *errstr,
                     size_t errstr_size);
/* The port actually bound. */
unsigned bg_http_port(const bg_http *h);
void bg_http_stop(bg_http *h); /* NULL is a no-op */

#endif
