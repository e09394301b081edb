/*
 * Logging shared by the master, the workers and the metrics process: to
 * stderr, a file, or syslog. Each line is built in one buffer and written
 * with one write(2) (a file is opened O_APPEND), so lines from processes
 * sharing it do not interleave. A file is reopened on SIGUSR1 by each
 * process, onto the same descriptor number, so that threads writing
 * meanwhile never see a closed descriptor.
 *
 * Log lines often carry what a client sent (gRPC's messages quote header
 * values), so the message is escaped: control characters, backslashes and
 * bytes that are not UTF-8 become \n, \\, \xNN and the like, and one
 * event stays one line that no client can forge. Messages a client can
 * cause at will go through a token bucket (log_limited()).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

/* A limited kind of message: this many lines at once, then this many a
 * second. */
#define LIMIT_BURST   20
#define LIMIT_PER_SEC 5

static char log_role[32] = "quoterd";
static enum log_level log_max = LOG_LEVEL_INFO;
static int log_fd = STDERR_FILENO;
static int log_syslog;
static char log_path[4096]; /* a file; empty: stderr or syslog */
static log_exitfn log_exit = exit;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_init(const char *role, enum log_level level)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
	log_max = level;
}

static int
open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
log_open(const char *target)
{
	int fd;

	if (strcmp(target, "stderr") == 0) {
		log_fd = STDERR_FILENO;
		log_syslog = 0;
		log_path[0] = '\0';
		return 0;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog("quoterd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog = 1;
		log_path[0] = '\0';
		return 0;
	}
	if (strlen(target) >= sizeof(log_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open_file(target)) < 0)
		return -1;
	/* Above the standard descriptors, which a daemon points at
	 * /dev/null. */
	if (fd <= STDERR_FILENO) {
		int high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

		close(fd);
		if ((fd = high) < 0)
			return -1;
	}
	if (log_path[0] != '\0' && log_fd > STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	log_syslog = 0;
	snprintf(log_path, sizeof(log_path), "%s", target);
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (log_path[0] == '\0')
		return 0;
	if ((fd = open_file(log_path)) < 0)
		return -1;
	if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
log_to_stderr(void)
{
	return !log_syslog && log_path[0] == '\0';
}

void
log_setrole(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log_role, sizeof(log_role), fmt, ap);
	va_end(ap);
}

void
log_setlevel(enum log_level level)
{
	log_max = level;
}

int
log_parselevel(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_setexit(log_exitfn exitfn)
{
	log_exit = exitfn;
}

/* The length of the UTF-8 sequence at s (before end), 0 if none is. */
static size_t
utf8_seq(const unsigned char *s, const unsigned char *end)
{
	size_t n = *s >= 0xf0 ? 4 : *s >= 0xe0 ? 3 : *s >= 0xc0 ? 2 : 0;

	if (n == 0 || (size_t)(end - s) < n || !utf8_valid((const char *)s, n))
		return 0;
	return n;
}

/*
 * Copies msg[0..len) into out (size bytes), escaped: printable
 * ASCII and whole UTF-8 sequences as they are, the rest as C escapes.
 * Returns the length written; what does not fit is cut.
 */
static size_t
escape(char *out, size_t size, const char *msg, size_t len)
{
	const unsigned char *s = (const unsigned char *)msg, *end = s + len;
	size_t n = 0, k;

	while (s < end) {
		if (*s >= 0x20 && *s < 0x7f && *s != '\\') {
			if (n + 1 > size)
				break;
			out[n++] = (char)*s++;
		} else if (*s >= 0x80 && (k = utf8_seq(s, end)) > 0) {
			if (n + k > size)
				break;
			memcpy(out + n, s, k);
			n += k;
			s += k;
		} else {
			char esc[5];
			int e;

			switch (*s) {
			case '\n':
				e = snprintf(esc, sizeof(esc), "\\n");
				break;
			case '\r':
				e = snprintf(esc, sizeof(esc), "\\r");
				break;
			case '\t':
				e = snprintf(esc, sizeof(esc), "\\t");
				break;
			case '\\':
				e = snprintf(esc, sizeof(esc), "\\\\");
				break;
			default:
				e = snprintf(esc, sizeof(esc), "\\x%02x", *s);
				break;
			}
			if (n + (size_t)e > size)
				break;
			memcpy(out + n, esc, (size_t)e);
			n += (size_t)e;
			s++;
		}
	}
	return n;
}

static void
vlog(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char line[1024], msg[1024];
	struct timespec ts;
	struct tm tm;
	int n, m, prefix;

	if (level > log_max)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	prefix = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%ld] ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000, level_names[level], (long)getpid());
	/* syslog stamps time, level and pid itself: it gets the rest. */
	n = prefix +
	    snprintf(line + prefix, sizeof(line) - (size_t)prefix,
		"%s: ", log_role);
	m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m > (int)sizeof(msg) - 1)
		m = (int)sizeof(msg) - 1;
	if (m > 0)
		n += (int)escape(line + n, sizeof(line) - 2 - (size_t)n, msg,
		    (size_t)m);
	if (errnum != 0) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, ": %s",
		    strerror(errnum));
		if (m > 0)
			n += m;
		if (n > (int)sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	if (log_syslog) {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO,
		    LOG_DEBUG};

		line[n] = '\0';
		syslog(prio[level], "%s", line + prefix);
		return;
	}
	line[n++] = '\n';
	/* Best effort: there is nowhere to report a failed log write. */
	if (write(log_fd, line, (size_t)n) < 0)
		return;
}

static void log_emit(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
log_emit(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

/*
 * A token bucket per kind of message, shared by the process's threads
 * (gRPC logs from its own). Returns 0 to drop this line; otherwise it
 * goes, after a line about those dropped since the last one that went,
 * whose count is in *dropped. count_only: only take the count.
 */
static int
limit_take(struct log_limit *l, unsigned long *dropped, int count_only)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct timespec ts;
	long now, refill;
	int ok = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_lock(&mu);
	if (l->refilled == 0) {
		l->tokens = LIMIT_BURST;
		l->refilled = now;
	}
	refill = (now - l->refilled) * LIMIT_PER_SEC / 1000;
	if (refill > 0) {
		l->tokens = l->tokens + refill > LIMIT_BURST
		    ? LIMIT_BURST
		    : (int)(l->tokens + refill);
		l->refilled += refill * 1000 / LIMIT_PER_SEC;
		if (l->tokens == LIMIT_BURST)
			l->refilled = now;
	}
	if (count_only || l->tokens > 0) {
		l->tokens -= !count_only;
		*dropped = l->dropped;
		l->dropped = 0;
		ok = 1;
	} else {
		l->dropped++;
	}
	pthread_mutex_unlock(&mu);
	return ok;
}

void
log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
	unsigned long dropped;
	va_list ap;

	if (level > log_max)
		return;
	l->level = level;
	if (!limit_take(l, &dropped, 0))
		return;
	if (dropped > 0)
		log_emit(level, "suppressed %lu similar messages (%s)", dropped,
		    l->what);
	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

void
log_limit_flush(struct log_limit *l)
{
	unsigned long dropped;

	if (limit_take(l, &dropped, 1) && dropped > 0)
		log_emit(l->level, "suppressed %lu similar messages (%s)",
		    dropped, l->what);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_errorx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	log_exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	log_exit(1);
}
