/* Start and stop tests/kafka/registry_double.py (a Schema Registry test
 * double) from a C test: fork/exec Debian's /usr/bin/python3 with the script
 * from $BG_SOURCE_DIR, read the "PORT n" line it prints, and build its URL.
 * Header-only, shared by tests/unit/test_registry.c and
 * tests/kafka/test_registry_e2e.c. */
#ifndef BG_TEST_REGISTRY_DOUBLE_H
#define BG_TEST_REGISTRY_DOUBLE_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

typedef struct h_reg {
    pid_t pid;
    int port;
    char url[64];
} h_reg;

/* extra: further flags (--fail-first N, --slow S, --auth U:P, --port P), NULL-terminated. */
static inline int h_reg_start(h_reg *r, const char *dir, const char *const *extra) {
    const char *src = getenv("BG_SOURCE_DIR");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/kafka/registry_double.py", src ? src : ".");
    const char *argv[24] = {"/usr/bin/python3", script, "--dir", dir};
    size_t n = 4;
    for (size_t i = 0; extra && extra[i] && n < 22; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int fds[2];
    if (pipe(fds))
        return -1;
    r->pid = fork();
    if (r->pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(fds[1], 1);
        close(fds[0]);
        execv(argv[0], (char *const *)(void *)argv);
        _exit(127);
    }
    close(fds[1]);
    char line[64];
    size_t k = 0;
    while (k < sizeof line - 1) {
        ssize_t got = read(fds[0], line + k, 1);
        if (got <= 0 || line[k] == '\n')
            break;
        k++;
    }
    line[k] = '\0';
    close(fds[0]);
    if (r->pid < 0 || sscanf(line, "PORT %d", &r->port) != 1)
        return -1;
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d", r->port);
    return 0;
}

static inline void h_reg_stop(h_reg *r) {
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGTERM);
    int st;
    waitpid(r->pid, &st, 0);
    r->pid = 0;
}

static size_t h_reg_body(char *d, size_t s, size_t n, void *o) {
    char *buf = o;
    size_t have = strlen(buf), add = s * n;
    if (have + add < 256) {
        memcpy(buf + have, d, add);
        buf[have + add] = '\0';
    }
    return s * n;
}

/* Schema requests the double has served (GET /__requests), -1 on error. */
static inline long h_reg_requests(const h_reg *r) {
    char url[128], body[256] = "";
    snprintf(url, sizeof url, "%s/__requests", r->url);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_reg_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    long n = -1;
    const char *p = strstr(body, "\"requests\":");
    if (cc == CURLE_OK && p)
        n = strtol(p + 11, NULL, 10);
    return n;
}

#endif
