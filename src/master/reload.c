/*
 * SIGHUP's reload as one job, and its answer. systemd 252 has no
 * Type=notify-reload: its reload job ends when ExecReload's command
 * exits, so that command, `quoterd --signal reload`, waits here for the
 * master to say the reload is over.
 *
 * The command autobinds an AF_UNIX datagram socket (the kernel picks an
 * unused abstract name of five hex digits, so no one can take it first),
 * then sends SIGHUP with sigqueue(), its value a marker and that name.
 * The master reads the signal from its signalfd: SI_QUEUE with the
 * marker names a waiter, kept in a bounded list and acknowledged at
 * once with "+". When the reload ends (the database checked and swapped
 * in every worker or refused, and the TLS files likewise), the master
 * tells systemd READY=1 and sends each waiter one datagram: "0" or "1"
 * (the command's exit status), then the log lines that say what
 * happened. Sending never blocks and its failure is ignored: a waiter
 * that has gone costs nothing. The command believes only datagrams whose
 * sender the kernel says is the master. A plain SIGHUP reloads the same
 * way and gets no answer; so does a marked one that the kernel merged
 * into a SIGHUP already pending, or one sent to a master older than
 * this protocol, and then the command, unacknowledged, says so and
 * leaves without waiting.
 */
#include "master_impl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

/*
 * sigqueue()'s value that asks for an answer: the marker in the bits
 * above an autobound name's 20 (five hex digits), which stay positive.
 */
#define RELOAD_MARK       0x2d5u
#define RELOAD_NAME_BITS  20
#define RELOAD_NAME_MASK  ((1u << RELOAD_NAME_BITS) - 1)
#define RELOAD_NAME_CHARS 5
/* How long the command waits for "+" before it takes the master to be
 * one that does not answer: it answers from its poll loop at once. */
#define RELOAD_ACK_MS 5000

/* The autobound abstract name a waiter listens on, from its number. */
static socklen_t
reload_address(unsigned name, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "%05x",
	    name & RELOAD_NAME_MASK);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    RELOAD_NAME_CHARS);
}

/* One datagram to one waiter, never blocking. */
static void
tell(int fd, const struct reload_waiter *w, const char *msg, size_t n)
{
	struct sockaddr_un sun;
	socklen_t len = reload_address(w->name, &sun);

	if (fd < 0 ||
	    sendto(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL,
		(struct sockaddr *)&sun, len) != (ssize_t)n)
		log_debug("reload: no answer to pid %ld: %s", (long)w->pid,
		    fd < 0 ? "no socket" : strerror(errno));
}

static int
answer_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		log_warn("reload: cannot answer the waiting commands: socket");
	return fd;
}

/* Sends every waiter the verdict and forgets them. */
static void
answer(struct master *m, int ok, const char *text)
{
	struct reload *r = &m->reload;
	char msg[2 * RELOAD_WHY_MAX + 8];
	int fd, n;

	if (r->nwaiters == 0)
		return;
	n = snprintf(msg, sizeof(msg), "%d%s", ok ? 0 : 1, text);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	fd = answer_socket();
	for (int i = 0; i < r->nwaiters; i++)
		tell(fd, &r->waiters[i], msg, (size_t)n);
	if (fd >= 0)
		close(fd);
	r->nwaiters = 0;
}

/* A waiter for the reload this SIGHUP starts (or joins). */
static void
add_waiter(struct master *m, pid_t pid, unsigned name)
{
	struct reload *r = &m->reload;
	struct reload_waiter w = {pid, name};
	int fd;

	for (int i = 0; i < r->nwaiters; i++)
		if (r->waiters[i].pid == pid && r->waiters[i].name == name)
			return;
	if (r->nwaiters == RELOAD_WAITERS_MAX) {
		log_warnx("reload: %d commands already wait for an answer; "
			  "pid %ld gets none",
		    RELOAD_WAITERS_MAX, (long)pid);
		return;
	}
	r->waiters[r->nwaiters++] = w;
	/* Heard: the command now waits for the end, however long. */
	if ((fd = answer_socket()) >= 0) {
		tell(fd, &w, "+", 1);
		close(fd);
	}
}

void
reload_start(struct master *m, const struct signalfd_siginfo *si)
{
	struct reload *r = &m->reload;

	if (si->ssi_code == SI_QUEUE && si->ssi_pid > 0 &&
	    (unsigned)si->ssi_int >> RELOAD_NAME_BITS == RELOAD_MARK)
		add_waiter(m, (pid_t)si->ssi_pid,
		    (unsigned)si->ssi_int & RELOAD_NAME_MASK);
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

/*
 * The next datagram the master sends, NUL-terminated in buf: its length,
 * or 0 once deadline_ms have passed since start (now_ms()). Anyone may send to
 * an abstract name: what the kernel does not say came from the master is
 * dropped.
 */
static size_t
master_says(int fd, pid_t master, char *buf, size_t size, long start,
    long deadline_ms)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct pollfd pfd = {fd, POLLIN, 0};
	long left;

	while ((left = deadline_ms - (now_ms() - start)) > 0) {
		struct iovec iov = {buf, size - 1};
		struct msghdr msg = {0};
		struct cmsghdr *cm;
		struct ucred cred = {0, 0, 0};
		ssize_t n;

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
		if (cred.pid != master)
			continue;
		buf[n] = '\0';
		return (size_t)n;
	}
	return 0;
}

/* An autobound socket, and its name as a number; -1 on failure. */
static int
autobind(unsigned *name)
{
	sa_family_t family = AF_UNIX;
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	char hex[RELOAD_NAME_CHARS + 1], *end;
	int fd, on = 1;

	/* SO_PASSCRED: the kernel names each datagram's sender. Binding
	 * only the family asks the kernel for an unused abstract name. */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0 ||
	    bind(fd, (struct sockaddr *)&family, sizeof(family)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sun, &len) != 0)
		goto fail;
	errno = EPROTO; /* a name not as Linux makes them */
	if (len !=
		offsetof(struct sockaddr_un, sun_path) + 1 +
		    RELOAD_NAME_CHARS ||
	    sun.sun_path[0] != '\0')
		goto fail;
	memcpy(hex, sun.sun_path + 1, RELOAD_NAME_CHARS);
	hex[RELOAD_NAME_CHARS] = '\0';
	*name = (unsigned)strtoul(hex, &end, 16);
	if (*end != '\0' || *name > RELOAD_NAME_MASK)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* The command's side: --signal reload. */
int
reload_request(const char *path, int timeout_s)
{
	union sigval mark;
	char buf[4096];
	long start;
	unsigned name;
	pid_t pid;
	int fd;

	if (pidfile_read(path, &pid) != 0)
		return 1;
	/* Bound before the signal, so that the answer finds it. */
	if ((fd = autobind(&name)) < 0) {
		fprintf(stderr, "quoterd: reload: socket: %s\n",
		    strerror(errno));
		return 1;
	}
	mark.sival_int = (int)(RELOAD_MARK << RELOAD_NAME_BITS | name);
	if (sigqueue(pid, SIGHUP, mark) != 0) {
		fprintf(stderr, "quoterd: pid %ld: %s\n", (long)pid,
		    strerror(errno));
		close(fd);
		return 1;
	}
	start = now_ms();
	if (master_says(fd, pid, buf, sizeof(buf), start, RELOAD_ACK_MS) == 0 ||
	    buf[0] != '+') {
		close(fd);
		fprintf(stderr,
		    "quoterd: pid %ld did not acknowledge the reload (a "
		    "quoterd older than this command, or a SIGHUP already "
		    "pending took this one): it reloads, but this command "
		    "cannot wait for the end (see its log)\n",
		    (long)pid);
		return 0;
	}
	while (master_says(fd, pid, buf, sizeof(buf), start,
		   (long)timeout_s * 1000) != 0) {
		if (buf[0] != '0' && buf[0] != '1')
			continue;
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
