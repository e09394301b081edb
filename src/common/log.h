/*
 * Logging for every quoterd process: one line per event on stderr, in a
 * file or to syslog, with time, level, pid and role ("master",
 * "worker 3"), after OpenBSD ntpd's log.c. fatal() and fatalx() log and
 * exit with the process's fatal status. Messages are escaped so that one
 * event is always one line.
 */
#ifndef QUOTERD_LOG_H
#define QUOTERD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/* Exit status of a process that must not be restarted (as nginx's 2). */
#define EXIT_FATAL 2

void log_init(const char *role, enum log_level level);
/*
 * Sends the log to target: "stderr", "syslog" (the daemon facility), or a
 * file, appended to. -1 with errno if the file cannot be opened.
 */
int log_open(const char *target);
/* Opens the log file again (after logrotate renamed it); 0 if none. */
int log_reopen(void);
/* True while the log goes to stderr. */
int log_to_stderr(void);
void log_setrole(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_setlevel(enum log_level level);
int log_parselevel(const char *name, enum log_level *out);
/* How fatal() exits: exit() by default; workers leave with _exit(). */
typedef void (*log_exitfn)(int) __attribute__((noreturn));
void log_setexit(log_exitfn exitfn);

/*
 * Messages a client can cause at will (gRPC's complaints about what a
 * peer sent, say) are rate-limited per kind: a static struct log_limit
 * each, LOG_LIMIT_INIT("what they are about"). Past the limit, lines are
 * dropped and counted, and the next line let through is preceded by
 * "suppressed N similar messages (what)".
 */
struct log_limit {
	const char *what;
	int tokens;
	long refilled; /* ms, monotonic; 0: never used */
	unsigned long dropped;
	enum log_level level; /* of the last message */
};
#define LOG_LIMIT_INIT(what)                                                   \
	{                                                                      \
		what, 0, 0, 0, LOG_LEVEL_WARN                                  \
	}

void log_limited(struct log_limit *l, enum log_level level, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
/* Logs the count of messages dropped, if any, now; for a periodic tick
 * and the end of a process, so no count goes unreported. */
void log_limit_flush(struct log_limit *l);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For what ends the process, when it ends by returning rather than
 * by fatal(). */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void
fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void
fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
