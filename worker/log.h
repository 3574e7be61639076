/* Logs: one JSON object per line on stderr:
 *   {"ts":"2026-12-03T21:00:00.123Z","level":"info","msg":"..."}
 * Messages are plain text (escaped); callers never pass secret material. */
#ifndef BG_LOG_H
#define BG_LOG_H

typedef enum bg_log_level { BG_LOG_DEBUG, BG_LOG_INFO, BG_LOG_WARN, BG_LOG_ERROR } bg_log_level;

/* Messages below the level of env BURSTGUARD_LOG_LEVEL=debug|info|warn|error
 * (default info) are dropped. */
void bg_log(bg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bg_info(...) bg_log(BG_LOG_INFO, __VA_ARGS__)
#define bg_warn(...) bg_log(BG_LOG_WARN, __VA_ARGS__)
#define bg_error(...) bg_log(BG_LOG_ERROR, __VA_ARGS__)
#define bg_debug(...) bg_log(BG_LOG_DEBUG, __VA_ARGS__)

#endif
