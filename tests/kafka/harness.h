/* Process-level test harness: starts real `burstguard` processes (the binary
 * named by $BURSTGUARD_BIN, set by ctest), talks Kafka protocol to the mock
 * cluster they run, and reads the outputs back. Header-only so each kafka
 * test stays one executable. */
#ifndef BG_TEST_HARNESS_H
#define BG_TEST_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "worker/codec.h"
#include "worker/readback.h"

static inline const char *h_bin(void) {
    const char *b = getenv("BURSTGUARD_BIN");
    return b ? b : "./burstguard";
}

static inline double h_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fork+exec argv; stdout to out_fd (or /dev/null when < 0), stderr to the file errlog. */
static inline pid_t h_spawn(char *const argv[], int out_fd, const char *errlog) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : devnull, 1);
        int e = errlog ? open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0644) : devnull;
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid up to timeout_s; returns the exit code, or -1 on timeout
 * (the process is then killed), or 128+signal. */
static inline int h_wait(pid_t pid, double timeout_s) {
    double end = h_now() + timeout_s;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (h_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(20000);
    }
}

typedef struct h_mock {
    pid_t pid;
    char bootstrap[256];
} h_mock;

static inline int h_mock_start(h_mock *m, int partitions) {
    int fds[2];
    if (pipe(fds))
        return -1;
    char parts[16];
    snprintf(parts, sizeof parts, "%d", partitions);
    char *argv[] = {(char *)h_bin(), "mock-broker", "--partitions", parts, NULL};
    m->pid = h_spawn(argv, fds[1], "mock-broker.log");
    close(fds[1]);
    size_t n = 0;
    while (n < sizeof m->bootstrap - 1) {
        ssize_t r = read(fds[0], m->bootstrap + n, 1);
        if (r <= 0 || m->bootstrap[n] == '\n')
            break;
        n++;
    }
    m->bootstrap[n] = 0;
    close(fds[0]);
    return n > 0 ? 0 : -1;
}

static inline void h_mock_stop(h_mock *m) {
    kill(m->pid, SIGTERM);
    h_wait(m->pid, 10);
}

static inline void h_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A temporary working directory; the test chdirs into it. */
static inline void h_tmpdir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "/tmp/bg-%s-XXXXXX", name);
    if (!mkdtemp(buf) || chdir(buf))
        abort();
}

static inline rd_kafka_t *h_producer(const char *bootstrap) {
    char e[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(c, "partitioner", "murmur2_random", e, sizeof e);
    rd_kafka_conf_set(c, "linger.ms", "5", e, sizeof e);
    return rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
}

static inline int h_produce(rd_kafka_t *p, const char *topic, const void *key, size_t key_len,
                     const void *val, size_t len) {
    return (int)rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                                  RD_KAFKA_V_VALUE((void *)(uintptr_t)val, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
}

/* Encode ev with the codec's schema id and produce it keyed by its identity. */
static inline int h_produce_event(rd_kafka_t *p, bg_codec *c, int32_t id, const bg_event *ev) {
    static const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1"};
    bg_buf b = {0};
    if (bg_codec_encode_event(c, id, ev, &b))
        return -1;
    int r = h_produce(p, topics[ev->kind], ev->identity.ptr, ev->identity.len, b.data, b.len);
    bg_buf_free(&b);
    return r;
}

/* Drain topic until pred(msgs, n, arg) holds or timeout_s passes. Returns the
 * last read (caller frees). */
typedef int (*h_pred)(const bg_rb_msg *msgs, size_t n, void *arg);
static inline int h_read_until(const char *bootstrap, const char *topic, h_pred pred, void *arg,
                        double timeout_s, bg_rb_msg **msgs, size_t *n) {
    double end = h_now() + timeout_s;
    char err[256];
    *msgs = NULL;
    *n = 0;
    for (;;) {
        bg_rb_msgs_free(*msgs, *n);
        *msgs = NULL;
        *n = 0;
        if (bg_rb_drain(bootstrap, topic, 10000, msgs, n, err, sizeof err) == BG_OK &&
            pred(*msgs, *n, arg))
            return 1;
        if (h_now() > end)
            return 0;
        usleep(300000);
    }
}

static inline bg_str h_s(const char *s) { return (bg_str){s, (uint32_t)strlen(s)}; }

/* The tests' events: a UsageEvent (api "chat", 10 tokens in) and a
 * SecretIssued (a 900 s CLOUD_SESSION from "sts" with scope s3:*) at event
 * time t (ms). Strings borrow from the arguments; owner may be NULL. */
static inline bg_event h_usage_event(const char *event_id, const char *who, const char *owner,
                                     int64_t t, const char *dest, int calls) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_USAGE;
    ev.event_id = h_s(event_id);
    ev.identity = h_s(who);
    if (owner)
        ev.owner = h_s(owner);
    ev.event_time = t;
    ev.u.usage.api = h_s("chat");
    ev.u.usage.destination = h_s(dest);
    ev.u.usage.api_calls = calls;
    ev.u.usage.tokens_in = 10;
    return ev;
}

static inline bg_event h_secret_event(const char *event_id, const char *who, int64_t t,
                                      const char *secret_id) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_SECRET;
    ev.event_id = h_s(event_id);
    ev.identity = h_s(who);
    ev.event_time = t;
    ev.u.secret.secret_id = h_s(secret_id);
    ev.u.secret.secret_kind = BG_SK_CLOUD_SESSION;
    ev.u.secret.issuer = h_s("sts");
    ev.u.secret.scopes[0] = h_s("s3:*");
    ev.u.secret.n_scopes = 1;
    ev.u.secret.ttl_seconds = 900;
    return ev;
}

#endif
