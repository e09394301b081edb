/*
 * How connections reach the workers. On TCP the kernel spreads them over
 * the workers' SO_REUSEPORT sockets; Unix-domain sockets have no such
 * thing, so for those the master listens itself and hands each
 * connection to a worker in turn (over its channel), keeping the choice of
 * worker where it knows which are alive.
 */
#include "master_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "handoff.h"
#include "log.h"

/* A Unix listener hands connections only to workers whose heartbeat is
 * fresher than this, while any is. */
#define HANDOFF_STALE_MS 3000

/* With a Unix listener: listens on its path; -1 after logging why not. */
int
listener_open(struct master *m)
{
	const struct config *c = m->config;
	char err[256];

	m->listen_fd = -1;
	if (c->listen_addr.kind != LISTEN_UNIX)
		return 0;
	if ((m->listen_fd = handoff_listen(c->listen_addr.path, c->unix_mode,
		 c->unix_gid, err, sizeof(err))) < 0) {
		log_errorx("cannot listen on %s: %s", c->listen, err);
		return -1;
	}
	return 0;
}

/* No new connections once a stop has begun. */
void
listener_close(struct master *m)
{
	if (m->listen_fd < 0)
		return;
	close(m->listen_fd);
	m->listen_fd = -1;
	unlink(m->config->listen_addr.path);
}

/* Hands fd to the next ready worker in turn, if fresh only to one whose
 * heartbeat is recent; 0 if one took it. */
static int
hand_off(struct master *m, int fd, int fresh)
{
	for (int tries = 0; tries < m->nprocs; tries++) {
		struct proc *p = &m->procs[m->next];
		long age;

		m->next = (m->next + 1) % m->nprocs;
		if (p->state != PROC_ACTIVE || p->pid == 0 || !p->ready ||
		    p->chan < 0)
			continue;
		age = scoreboard_age(proc_slot(m, p));
		if (fresh && (age < 0 || age > HANDOFF_STALE_MS))
			continue;
		if (channel_send(p->chan, CHAN_CONN, 0, NULL, 0, fd) == 0)
			return 0;
	}
	return -1;
}

/*
 * Hands each new connection on the Unix listener to the next ready
 * worker in turn, passing over any whose heartbeat is stale (stopped or
 * hung: the connection would wait there) unless all are; with none
 * ready, the connection is closed and the client tries again.
 */
void
listener_accept(struct master *m)
{
	int fd;

	/* gRPC expects a non-blocking socket. */
	while ((fd = accept4(m->listen_fd, NULL, NULL,
		    SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		if (hand_off(m, fd, 1) != 0 && hand_off(m, fd, 0) != 0)
			log_warnx("no worker to take a connection");
		close(fd);
	}
	if (errno == EMFILE || errno == ENFILE) {
		/* The connection stays queued and the listener readable:
		 * pause rather than spin until descriptors free up. */
		log_warn("accept");
		m->accept_paused_until = now_ms() + 100;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		log_warn("accept");
	}
}

/*
 * A worker that stops closes its SO_REUSEPORT listener, and the kernel
 * resets connections still queued on it unless tcp_migrate_req moves
 * them to another worker's listener (Linux 5.14 and later).
 */
void
listener_check_migrate_req(const struct config *c)
{
	char value = '1';
	int fd;

	if (c->listen_addr.kind != LISTEN_TCP ||
	    (fd = open("/proc/sys/net/ipv4/tcp_migrate_req",
		 O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (read(fd, &value, 1) == 1 && value == '0')
		log_info("net.ipv4.tcp_migrate_req is 0: connections queued on "
			 "a stopping worker will be reset; setting it to 1 "
			 "hands them to the others");
	close(fd);
}
