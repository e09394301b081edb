/*
 * The checker children (see check.h): forked from the master with the
 * candidate database's descriptor, or the TLS files' names, a checker
 * runs store_verify(), or reads the TLS files and matches key to
 * certificate, and sends one verdict over its channel (channel.h) before
 * it leaves with _exit(): a TLS checker's "good" carries the memory file
 * it wrote the files into. The master believes a verdict only if it is
 * whole, of the verdict's size, of the checker's kind, and the child then
 * exited 0.
 */
#include "check.h"

#include "channel.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct check {
	int tls; /* a checker of TLS files, not of a database */
	pid_t pid;
	int ch;     /* the master's end of the checker's channel */
	int reaped; /* the master's reap collected the child */
	int status; /* its wait status, once reaped */
};

_Static_assert(sizeof(struct check_verdict) <= CHANNEL_BODY_MAX,
    "a verdict is one channel message");

static void verdict_fail(struct check_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
verdict_fail(struct check_verdict *v, const char *fmt, ...)
{
	va_list ap;

	memset(v, 0, sizeof(*v));
	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
}

/* A checker's start: what it is to ps, and what its death leaves. */
static void
checker_init(const char *name)
{
	struct rlimit no_core = {0, 0};
	sigset_t none;

	/* A crafted file that crashes us leaves no core behind, and we do
	 * not outlive a master that has stopped waiting. */
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Not a worker, to ps and to the tests. */
	prctl(PR_SET_NAME, name);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void checker_main(int fd, int ch) __attribute__((noreturn));

static void
checker_main(int fd, int ch)
{
	struct check_verdict v;
	int rc;

	checker_init("quoterd-check");
	memset(&v, 0, sizeof(v));
	if ((rc = store_verify(fd, &v.info, v.why, sizeof(v.why))) == 0)
		v.ok = 1;
	else if (v.why[0] == '\0')
		snprintf(v.why, sizeof(v.why), "%s", store_strerror(rc));
	if (channel_send(ch, CHAN_VERDICT, 0, &v, sizeof(v), -1) != 0)
		_exit(1);
	_exit(0);
}

static void
tls_checker_main(const struct tls_config *t, int ch) __attribute__((noreturn));

static void
tls_checker_main(const struct tls_config *t, int ch)
{
	struct check_verdict v;
	struct tls_pems pems;
	int fd = -1, rc;

	checker_init("quoterd-certs");
	memset(&v, 0, sizeof(v));
	if (tls_read_pair(t, &pems, v.why, sizeof(v.why)) == 0) {
		if ((rc = tls_publish(&pems, &fd)) == 0)
			v.ok = 1;
		else
			snprintf(v.why, sizeof(v.why), "TLS memory file: %s",
			    tls_strerror(rc));
		tls_free_pems(&pems);
	}
	if (channel_send(ch, v.ok ? CHAN_CERTS : CHAN_VERDICT, 0, &v, sizeof(v),
		fd) != 0)
		_exit(1);
	_exit(0);
}

/* Forks a checker of fd (a database) or t (TLS files). */
static int
start(int fd, const struct tls_config *t, struct check **out)
{
	struct check *c;
	int p[2], rc;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return errno;
	if ((rc = channel_open(p)) != 0) {
		free(c);
		return rc;
	}
	if ((c->pid = fork()) < 0) {
		int err = errno;

		close(p[0]);
		close(p[1]);
		free(c);
		return err;
	}
	if (c->pid == 0) {
		close(p[0]);
		if (t != NULL)
			tls_checker_main(t, p[1]);
		checker_main(fd, p[1]);
	}
	close(p[1]);
	c->tls = t != NULL;
	c->ch = p[0];
	*out = c;
	return 0;
}

int
check_start(int fd, struct check **out)
{
	return start(fd, NULL, out);
}

int
check_start_tls(const struct tls_config *t, struct check **out)
{
	return start(-1, t, out);
}

int
check_fd(const struct check *c)
{
	return c->ch;
}

pid_t
check_pid(const struct check *c)
{
	return c->pid;
}

void
check_reaped(struct check *c, int status)
{
	c->reaped = 1;
	c->status = status;
}

static void
collect(struct check *c)
{
	pid_t pid;

	if (c->reaped)
		return;
	do
		pid = waitpid(c->pid, &c->status, 0);
	while (pid < 0 && errno == EINTR);
	c->reaped = pid == c->pid;
}

void
check_finish(struct check *c, struct check_verdict *v, int *out)
{
	struct channel_msg m;
	int fd, rc;

	if (out != NULL)
		*out = -1;
	rc = channel_recv(c->ch, &m, &fd);
	close(c->ch);
	collect(c);
	if (c->reaped && WIFSIGNALED(c->status))
		verdict_fail(v, "the checker died of signal %d (%s)",
		    WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
	else if (rc != 0 || m.len != sizeof(*v) || !c->reaped ||
	    !WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0 ||
	    !(m.type == CHAN_VERDICT || (c->tls && m.type == CHAN_CERTS)))
		verdict_fail(v, "the checker failed without a verdict");
	else {
		memcpy(v, m.body, sizeof(*v));
		v->why[sizeof(v->why) - 1] = '\0';
		/* "Good" is a TLS checker's memory file, and only that. */
		if (c->tls && (m.type == CHAN_CERTS) != (v->ok != 0))
			verdict_fail(v, "the checker failed without a verdict");
		else if (fd >= 0 && out != NULL && v->ok) {
			*out = fd;
			fd = -1;
		}
	}
	if (rc == 0 && fd >= 0)
		close(fd);
	free(c);
}

void
check_abort(struct check *c, struct check_verdict *v)
{
	if (!c->reaped)
		kill(c->pid, SIGKILL);
	collect(c);
	close(c->ch);
	free(c);
	verdict_fail(v, "the check took too long");
}

void
check_wait(struct check *c, int timeout_ms, struct check_verdict *v, int *fd)
{
	struct pollfd pfd;
	struct timespec start, now;
	long left;
	int rc;

	if (fd != NULL)
		*fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pfd.fd = c->ch;
	pfd.events = POLLIN;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms -
		    ((now.tv_sec - start.tv_sec) * 1000 +
			(now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0) {
			check_abort(c, v);
			return;
		}
		rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			break;
		if (rc < 0 && errno != EINTR) {
			check_abort(c, v);
			return;
		}
	}
	check_finish(c, v, fd);
}

/* What a file that is not a regular one is, for the refusal. */
static const char *
file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "of an unknown type";
}

int
check_open(const char *path, struct stat *st, char *why, size_t whylen)
{
	int fd, flags;

	/* Refuse what stat() shows is no file before opening it: opening
	 * a device can have effects of its own. */
	if (stat(path, st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st->st_mode))
		goto not_regular;
	/* It may have been replaced since: O_NONBLOCK, so that a FIFO
	 * cannot hold us, and fstat() says what opened. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		goto not_regular;
	}
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
not_regular:
	snprintf(why, whylen, "not a regular file but %s",
	    file_kind(st->st_mode));
	return -1;
}
