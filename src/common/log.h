/*
 * Logging for every quoterd process: one line per event on stderr, with
 * time, level, pid and role ("master", "worker 3"), after OpenBSD ntpd's
 * log.c. fatal() and fatalx() log and exit with the process's fatal status.
 */
#ifndef QUOTERD_LOG_H
#define QUOTERD_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Exit status of a process that must not be restarted (as nginx's 2). */
#define EXIT_FATAL 2

void log_init(const char *role, enum log_level level);
void log_setrole(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_setlevel(enum log_level level);
int log_parselevel(const char *name, enum log_level *out);
/* What fatal() exits with: 1 by default, EXIT_FATAL in workers. */
void log_setfatalstatus(int status);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
