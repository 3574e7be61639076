/* libyaml document helpers for the config and policy loaders (see yaml_doc.h).
 *
 * Everything here treats the document as hostile: node ids are range-checked
 * before use, scalars with embedded NUL bytes are refused (they would be cut
 * short by every C string function later), and mapping checks are quadratic
 * only in the number of keys of one mapping, which the callers' files keep
 * small. Alias cycles (`&a [*a]`, which libyaml's loader builds) cannot trap
 * the callers: they only descend into the fixed shape of their format. */
#include "yaml_doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- loading -------------------------------------------------------------- */

/* libyaml's reader errors carry a byte offset but no line: count it. */
static void offset_to_mark(const char *text, size_t len, size_t off, unsigned long *line,
                           unsigned long *col) {
    unsigned long l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static bg_err syntax_error(bg_yaml *y, const yaml_parser_t *p, const char *text, size_t len) {
    unsigned long line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_to_mark(text, len, p->problem_offset, &line, &col);
    } else {
        line = (unsigned long)p->problem_mark.line + 1;
        col = (unsigned long)p->problem_mark.column + 1;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(y->err, y->errsz, "%s: out of memory while parsing YAML", y->name);
        return BG_ERR_NOMEM;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (y->with_col)
        snprintf(y->err, y->errsz, "%s:%lu:%lu: YAML syntax error: %s%s%s", y->name, line, col,
                 p->context ? p->context : "", p->context ? ", " : "", problem);
    else
        snprintf(y->err, y->errsz, "%s:%lu: YAML syntax error: %s%s%s (column %lu)", y->name,
                 line, p->context ? p->context : "", p->context ? ", " : "", problem, col);
    bg_yaml_one_line(y->err);
    return BG_ERR_CONFIG;
}

bg_err bg_yaml_load(bg_yaml *y, const char *name, const char *text, size_t len, bool with_col,
                    char *err, size_t errsz) {
    memset(y, 0, sizeof *y);
    y->name = name ? name : "<input>";
    y->with_col = with_col;
    y->err = err;
    y->errsz = errsz;
    if (errsz)
        err[0] = '\0';

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errsz, "%s: out of memory", y->name);
        return BG_ERR_NOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &y->doc)) {
        bg_err e = syntax_error(y, &p, text, len);
        yaml_parser_delete(&p);
        return e;
    }
    y->loaded = true;

    /* A second document would be silently ignored; say so instead. */
    yaml_document_t extra;
    if (!yaml_parser_load(&p, &extra)) {
        bg_err e = syntax_error(y, &p, text, len);
        yaml_parser_delete(&p);
        bg_yaml_free(y);
        return e;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root) {
        bg_yaml_fail(y, extra_root, "only one YAML document is allowed");
        yaml_document_delete(&extra);
        yaml_parser_delete(&p);
        bg_yaml_free(y);
        return BG_ERR_CONFIG;
    }
    yaml_document_delete(&extra);
    yaml_parser_delete(&p);
    return BG_OK;
}

void bg_yaml_free(bg_yaml *y) {
    if (y && y->loaded) {
        yaml_document_delete(&y->doc);
        y->loaded = false;
    }
}

bg_err bg_yaml_read_file(const char *what, const char *path, size_t max_bytes, char **text,
                         size_t *len, char *err, size_t errsz) {
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "cannot read %s '%s': %s", what, path, strerror(errno));
        return BG_ERR_IO;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        snprintf(err, errsz, "cannot read %s '%s': out of memory", what, path);
        return BG_ERR_NOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) {
                free(buf);
                fclose(f);
                snprintf(err, errsz, "cannot read %s '%s': larger than %zu bytes", what, path,
                         max_bytes);
                return BG_ERR_IO;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errsz, "cannot read %s '%s': out of memory", what, path);
                return BG_ERR_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    /* fread hides the errno of a failed read (EISDIR for a directory). */
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        free(buf);
        snprintf(err, errsz, "cannot read %s '%s': %s", what, path, strerror(saved));
        return BG_ERR_IO;
    }
    if (n > max_bytes) {
        free(buf);
        snprintf(err, errsz, "cannot read %s '%s': larger than %zu bytes", what, path, max_bytes);
        return BG_ERR_IO;
    }
    *text = buf;
    *len = n;
    return BG_OK;
}

/* --- nodes ---------------------------------------------------------------- */

yaml_node_t *bg_yaml_root(bg_yaml *y) {
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

yaml_node_t *bg_yaml_node(bg_yaml *y, int id) {
    /* yaml_document_get_node range-checks id; keep that explicit. */
    return y->loaded ? yaml_document_get_node(&y->doc, id) : NULL;
}

unsigned long bg_yaml_line(const yaml_node_t *n) {
    return n ? (unsigned long)n->start_mark.line + 1 : 0;
}

unsigned long bg_yaml_col(const yaml_node_t *n) {
    return n ? (unsigned long)n->start_mark.column + 1 : 0;
}

const char *bg_yaml_kind(const yaml_node_t *n) {
    switch (n ? n->type : YAML_NO_NODE) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

bool bg_yaml_is_null(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && s[0] == '~') || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

void bg_yaml_one_line(char *msg) {
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

bg_err bg_yaml_fail(bg_yaml *y, const yaml_node_t *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at)
        snprintf(y->err, y->errsz, "%s: %s", y->name, msg);
    else if (y->with_col)
        snprintf(y->err, y->errsz, "%s:%lu:%lu: %s", y->name, bg_yaml_line(at), bg_yaml_col(at),
                 msg);
    else
        snprintf(y->err, y->errsz, "%s:%lu: %s", y->name, bg_yaml_line(at), msg);
    bg_yaml_one_line(y->err);
    return BG_ERR_CONFIG;
}

bg_err bg_yaml_scalar(bg_yaml *y, const yaml_node_t *n, const char *what, const char **out) {
    *out = NULL;
    if (!n || n->type != YAML_SCALAR_NODE)
        return bg_yaml_fail(y, n, "%s: expected a single value, found %s", what, bg_yaml_kind(n));
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return bg_yaml_fail(y, n, "%s: value contains a NUL byte", what);
    *out = s;
    return BG_OK;
}

bg_err bg_yaml_map_check(bg_yaml *y, const yaml_node_t *n, const char *what,
                         const char *const *allowed) {
    if (!n || n->type != YAML_MAPPING_NODE)
        return bg_yaml_fail(y, n, "%s: expected a mapping, found %s", what, bg_yaml_kind(n));
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
        yaml_node_t *k = bg_yaml_node(y, a->key);
        const char *ks;
        if (!k || k->type != YAML_SCALAR_NODE)
            return bg_yaml_fail(y, k ? k : n, "%s: keys must be plain names, found %s", what,
                                bg_yaml_kind(k));
        bg_err e = bg_yaml_scalar(y, k, what, &ks);
        if (e)
            return e;
        if (allowed) {
            bool known = false;
            for (const char *const *w = allowed; *w && !known; w++)
                known = strcmp(*w, ks) == 0;
            if (!known) {
                char list[256];
                size_t off = 0;
                list[0] = '\0';
                for (const char *const *w = allowed; *w && off < sizeof list; w++) {
                    int m = snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "", *w);
                    if (m < 0)
                        break;
                    off += (size_t)m;
                }
                return bg_yaml_fail(y, k, "unknown key '%s' in %s (expected one of: %s)", ks,
                                    what, list);
            }
        }
        for (yaml_node_pair_t *b = n->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *kb = bg_yaml_node(y, b->key);
            if (kb && kb->type == YAML_SCALAR_NODE &&
                kb->data.scalar.length == k->data.scalar.length &&
                memcmp(kb->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0)
                return bg_yaml_fail(y, k, "duplicate key '%s' in %s (first at line %lu)", ks,
                                    what, bg_yaml_line(kb));
        }
    }
    return BG_OK;
}

yaml_node_t *bg_yaml_map_get(bg_yaml *y, const yaml_node_t *n, const char *key) {
    if (!n || n->type != YAML_MAPPING_NODE)
        return NULL;
    size_t klen = strlen(key);
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
        yaml_node_t *k = bg_yaml_node(y, a->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == klen &&
            memcmp(k->data.scalar.value, key, klen) == 0)
            return bg_yaml_node(y, a->value);
    }
    return NULL;
}

/* --- scalar syntaxes -------------------------------------------------------- */

/* Digits of s into *out with overflow check; stops at the first non-digit. */
static const char *parse_digits(const char *s, uint64_t limit, uint64_t *out) {
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (limit - d) / 10)
            return NULL;
        v = v * 10 + d;
        p++;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

bool bg_yaml_parse_int(const char *s, int64_t *out) {
    bool neg = false;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    uint64_t v;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    const char *end = parse_digits(s, limit, &v);
    if (!end || *end)
        return false;
    /* -(INT64_MAX + 1) without signed overflow */
    *out = neg ? (v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

bool bg_yaml_parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static const struct {
    const char *suffix;
    int64_t ms;
} duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};

bool bg_yaml_parse_duration(const char *s, int64_t *out_ms) {
    uint64_t v;
    const char *end = parse_digits(s, (uint64_t)INT64_MAX, &v);
    if (!end)
        return false;
    if (*end == '\0') {
        *out_ms = (int64_t)v;
        return true;
    }
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
        if (strcmp(end, duration_units[i].suffix) == 0) {
            uint64_t unit = (uint64_t)duration_units[i].ms;
            if (v > (uint64_t)INT64_MAX / unit)
                return false;
            *out_ms = (int64_t)(v * unit);
            return true;
        }
    }
    return false;
}

void bg_yaml_format_duration(int64_t ms, char *buf, size_t size) {
    if (ms > 0) {
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
            if (ms % duration_units[i].ms == 0) {
                snprintf(buf, size, "%lld%s", (long long)(ms / duration_units[i].ms),
                         duration_units[i].suffix);
                return;
            }
        }
    }
    snprintf(buf, size, "%lldms", (long long)ms);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil; exact for every year we accept). */
int64_t bg_yaml_days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}
