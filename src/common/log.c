/*
 * Logging shared by the master, the workers and the metrics process: to
 * stderr, a file, or syslog. Each line is built in one buffer and written
 * with one write(2) (a file is opened O_APPEND), so lines from processes
 * sharing it do not interleave. A file is reopened on SIGUSR1 by each
 * process, onto the same descriptor number, so that threads writing
 * meanwhile never see a closed descriptor.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "quoterd";
static enum log_level log_max = LOG_LEVEL_INFO;
static int log_fatal_status = 1;
static int log_fd = STDERR_FILENO;
static int log_syslog;
static char log_path[4096]; /* a file; empty: stderr or syslog */

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
log_setfatalstatus(int status)
{
	log_fatal_status = status;
}

static void
vlog(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n, m, prefix;

	if (level > log_max)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	prefix = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%ld] ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level],
	    (long)getpid());
	/* syslog stamps time, level and pid itself: it gets the rest. */
	n = prefix + snprintf(line + prefix, sizeof(line) - (size_t)prefix,
	    "%s: ", log_role);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m > 0)
		n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
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
	exit(log_fatal_status);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(log_fatal_status);
}
