/*
 * SIGHUP's reload as one job, and its answer. systemd 252 has no
 * Type=notify-reload: its reload job ends when ExecReload's command
 * exits, so that command, `quoterd --signal reload`, waits here for the
 * master to say the reload is over.
 *
 * The command binds an abstract AF_UNIX datagram socket named after its
 * pid, then sends SIGHUP with sigqueue() and a marker value. The master
 * reads the signal from its signalfd: SI_QUEUE with the marker names a
 * waiter (ssi_pid), kept in a bounded list. When the reload ends (the
 * database checked and swapped in every worker or refused, and the TLS
 * files likewise), the master tells systemd READY=1 and sends each
 * waiter one datagram: "0" or "1" (the command's exit status), then the
 * log lines that say what happened. Sending never blocks and its failure
 * is ignored: a waiter that has gone costs nothing. The command believes
 * only a datagram whose sender the kernel says is the master. A plain
 * SIGHUP reloads the same way and gets no answer.
 */
#include "master_impl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

/* sigqueue()'s value that asks for an answer: "qrld". */
#define RELOAD_MARK 0x71726c64

/* The abstract socket name a waiter with this pid listens on. */
static socklen_t
reload_address(pid_t pid, struct sockaddr_un *sun)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
	    "quoterd-reload-%ld", (long)pid);
	return (
	    socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Sends every waiter the verdict and forgets them. */
static void
answer(struct master *m, int ok, const char *text)
{
	struct reload *r = &m->reload;
	struct sockaddr_un sun;
	char msg[2 * RELOAD_WHY_MAX + 8];
	socklen_t len;
	int fd, n;

	if (r->nwaiters == 0)
		return;
	n = snprintf(msg, sizeof(msg), "%d%s", ok ? 0 : 1, text);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	for (int i = 0; i < r->nwaiters && fd >= 0; i++) {
		len = reload_address(r->waiters[i], &sun);
		if (sendto(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
			(struct sockaddr *)&sun, len) != n)
			log_debug("reload: no answer to pid %ld: %s",
			    (long)r->waiters[i], strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	r->nwaiters = 0;
}

/* A waiter for the reload this SIGHUP starts (or joins). */
static void
add_waiter(struct master *m, pid_t pid)
{
	struct reload *r = &m->reload;

	for (int i = 0; i < r->nwaiters; i++)
		if (r->waiters[i] == pid)
			return;
	if (r->nwaiters == RELOAD_WAITERS_MAX) {
		log_warnx("reload: %d commands already wait for an answer; "
			  "pid %ld gets none",
		    RELOAD_WAITERS_MAX, (long)pid);
		return;
	}
	r->waiters[r->nwaiters++] = pid;
}

void
reload_start(struct master *m, const struct signalfd_siginfo *si)
{
	struct reload *r = &m->reload;

	if (si->ssi_code == SI_QUEUE && si->ssi_int == RELOAD_MARK &&
	    si->ssi_pid > 0)
		add_waiter(m, (pid_t)si->ssi_pid);
	if (m->stopping != RUNNING) {
		answer(m, 0, "\nquoterd is stopping: no reload");
		return;
	}
	if (!r->active) {
		notify("RELOADING=1");
		r->active = 1;
		for (int i = 0; i < RELOAD_NPARTS; i++) {
			r->ok[i] = 1;
			r->why[i][0] = '\0';
		}
	}
	/* A check under way is looked at again once it ends: each part's
	 * last verdict is about files as they were after this signal. */
	certs_reload(m);
	swap_database(m, "SIGHUP", 1);
	reload_done(m);
}

void
reload_verdict(struct master *m, enum reload_part part, int ok, const char *why)
{
	struct reload *r = &m->reload;

	if (!r->active)
		return;
	r->ok[part] = ok;
	snprintf(r->why[part], sizeof(r->why[part]), "%s",
	    why != NULL ? why : "");
}

/*
 * The reload is over once no check runs and no worker's report is
 * awaited, for the database and the TLS files alike: systemd is told
 * READY=1 and every waiter its verdict.
 */
void
reload_done(struct master *m)
{
	struct reload *r = &m->reload;
	char text[2 * RELOAD_WHY_MAX + 4];
	size_t len = 0;
	int ok = 1;

	if (!r->active || m->check != NULL || m->swap.started != 0 ||
	    certs_busy(m))
		return;
	r->active = 0;
	notify("READY=1");
	text[0] = '\0';
	for (int i = 0; i < RELOAD_NPARTS; i++) {
		ok &= r->ok[i];
		if (r->why[i][0] != '\0' && len < sizeof(text))
			len += (size_t)snprintf(text + len, sizeof(text) - len,
			    "\n%s", r->why[i]);
	}
	answer(m, ok, text);
}

/* A stop ends the reload: its waiters are told now, not once the
 * drain is over. */
void
reload_end(struct master *m)
{
	m->reload.active = 0;
	answer(m, 0, "\nquoterd is stopping: the reload did not end");
}

/* The command's side: --signal reload. */
int
reload_request(const char *path, int timeout_s)
{
	union sigval mark = {.sival_int = RELOAD_MARK};
	char buf[4096], cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct sockaddr_un sun;
	struct timespec start, now;
	struct pollfd pfd;
	socklen_t len;
	pid_t pid;
	int fd, on = 1;

	if (pidfile_read(path, &pid) != 0)
		return 1;
	/* Bound before the signal, so that the answer finds it. SO_PASSCRED:
	 * the kernel names each datagram's sender. */
	len = reload_address(getpid(), &sun);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0 ||
	    bind(fd, (struct sockaddr *)&sun, len) != 0) {
		fprintf(stderr, "quoterd: reload: socket: %s\n",
		    strerror(errno));
		return 1;
	}
	if (sigqueue(pid, SIGHUP, mark) != 0) {
		fprintf(stderr, "quoterd: pid %ld: %s\n", (long)pid,
		    strerror(errno));
		close(fd);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	pfd = (struct pollfd){fd, POLLIN, 0};
	for (;;) {
		struct iovec iov = {buf, sizeof(buf) - 1};
		struct msghdr msg = {0};
		struct cmsghdr *cm;
		struct ucred cred = {0, 0, 0};
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (long)timeout_s * 1000 -
		    ((now.tv_sec - start.tv_sec) * 1000 +
			(now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		if ((n = recvmsg(fd, &msg, MSG_DONTWAIT)) <= 0)
			continue;
		for (cm = CMSG_FIRSTHDR(&msg); cm != NULL;
		     cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_CREDENTIALS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(cred)))
				memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
		/* Anyone may send to an abstract name: only the master's
		 * answer counts. */
		if (cred.pid != pid || (buf[0] != '0' && buf[0] != '1'))
			continue;
		buf[n] = '\0';
		close(fd);
		if (buf[0] == '0') {
			printf("quoterd: reload done%s\n", buf + 1);
			return 0;
		}
		fprintf(stderr, "quoterd: reload refused%s\n", buf + 1);
		return 1;
	}
	close(fd);
	fprintf(stderr,
	    "quoterd: pid %ld: no answer to the reload within %d s (see its "
	    "log)\n",
	    (long)pid, timeout_s);
	return 1;
}
