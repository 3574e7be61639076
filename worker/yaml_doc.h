/* A thin layer over libyaml's document API shared by the config and policy
 * loaders: load one document from memory, look nodes up, check a mapping's
 * keys (unknown or duplicate -> error), and report errors as
 * "NAME:LINE[:COL]: message" with 1-based positions.
 *
 * libyaml resolves no types: every scalar is text. The scalar parsers below
 * (integer, boolean, duration) are the one definition of those syntaxes for
 * both files.
 *
 * Ownership: a bg_yaml owns its document; bg_yaml_free() releases it. Node and
 * string pointers it hands out live as long as the bg_yaml. */
#ifndef BG_YAML_DOC_H
#define BG_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "../detectors/err.h"

typedef struct bg_yaml {
    yaml_document_t doc;
    bool loaded;     /* doc must be deleted */
    const char *name; /* file name used in messages, not owned */
    bool with_col;   /* messages carry ":COL" after the line */
    char *err;       /* caller's error buffer */
    size_t errsz;
} bg_yaml;

/* --- loading -------------------------------------------------------------- */

/* Parse text (len bytes, need not be NUL-terminated) as exactly one YAML
 * document. An empty stream is a document without a root (bg_yaml_root() ==
 * NULL). Syntax errors return BG_ERR_CONFIG with libyaml's position.
 * On error y needs no bg_yaml_free() (calling it is harmless). */
bg_err bg_yaml_load(bg_yaml *y, const char *name, const char *text, size_t len, bool with_col,
                    char *err, size_t errsz);
void bg_yaml_free(bg_yaml *y);

/* Read a whole file (at most max_bytes) into a malloc'd buffer. On error
 * returns BG_ERR_IO with "cannot read WHAT 'PATH': reason" in err. */
bg_err bg_yaml_read_file(const char *what, const char *path, size_t max_bytes, char **text,
                         size_t *len, char *err, size_t errsz);

/* --- nodes ---------------------------------------------------------------- */

yaml_node_t *bg_yaml_root(bg_yaml *y);
yaml_node_t *bg_yaml_node(bg_yaml *y, int id);
unsigned long bg_yaml_line(const yaml_node_t *n); /* 1-based */
unsigned long bg_yaml_col(const yaml_node_t *n);  /* 1-based */
/* "scalar", "mapping" or "sequence", for messages. */
const char *bg_yaml_kind(const yaml_node_t *n);
/* A plain scalar spelling null: empty, "~", "null", "Null", "NULL". */
bool bg_yaml_is_null(const yaml_node_t *n);

/* Format "NAME:LINE[:COL]: message" at node `at` (NULL: no position) into the
 * error buffer; returns BG_ERR_CONFIG so callers can `return bg_yaml_fail(...)`. */
bg_err bg_yaml_fail(bg_yaml *y, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replace control characters (newlines, tabs, escapes from quoted scalars)
 * in a finished message by '?', so every error stays on one line. */
void bg_yaml_one_line(char *msg);

/* The text of a scalar node. Errors (BG_ERR_CONFIG) when n is not a scalar
 * or holds a NUL byte; `what` names the key in the message. */
bg_err bg_yaml_scalar(bg_yaml *y, const yaml_node_t *n, const char *what, const char **out);

/* Check that n is a mapping whose keys are scalars, pairwise distinct and,
 * when `allowed` (NULL-terminated) is given, each one of `allowed`. */
bg_err bg_yaml_map_check(bg_yaml *y, const yaml_node_t *n, const char *what,
                         const char *const *allowed);
/* Value node of `key` in mapping n, or NULL when absent (or n is no mapping). */
yaml_node_t *bg_yaml_map_get(bg_yaml *y, const yaml_node_t *n, const char *key);

/* --- scalar syntaxes -------------------------------------------------------- */

/* Decimal integer with optional sign, no other characters. */
bool bg_yaml_parse_int(const char *s, int64_t *out);
/* true/false, yes/no, on/off (any case). */
bool bg_yaml_parse_bool(const char *s, bool *out);
/* Non-negative duration in ms: an integer (ms) or an integer followed by one
 * of ms, s, m, h, d ("500ms", "30s", "15m", "1h", "1d"). */
bool bg_yaml_parse_duration(const char *s, int64_t *out_ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (for the time parsers
 * of the policy and of `burstguard series`). */
int64_t bg_yaml_days_from_civil(int64_t y, int64_t m, int64_t d);
/* Write ms as the largest exact unit ("1h", "90s", "250ms") into buf. */
void bg_yaml_format_duration(int64_t ms, char *buf, size_t size);

#endif
