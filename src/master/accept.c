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
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "handoff.h"
#include "log.h"

/* A Unix listener hands connections only to workers whose heartbeat is
 * fresher than this, while any is. */
#define HANDOFF_STALE_MS 3000

/* Connections the master cannot place, which any client can cause at
 * will: one line each would flood the log. */
static struct log_limit no_worker =
    LOG_LIMIT_INIT("connections no worker took");
static struct log_limit all_full =
    LOG_LIMIT_INIT("connections refused: every worker full");

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

/* Reports what the limits above dropped: at most once a second while
 * connections come, and at the end. */
static void
flush_logs(int now)
{
	static long last;

	if (!now && now_ms() - last < 1000)
		return;
	last = now_ms();
	log_limit_flush(&no_worker);
	log_limit_flush(&all_full);
}

/* No new connections once a stop has begun. */
void
listener_close(struct master *m)
{
	if (m->listen_fd < 0)
		return;
	flush_logs(1);
	close(m->listen_fd);
	m->listen_fd = -1;
	unlink(m->config->listen_addr.path);
}

/*
 * Whether a worker holds max_connections: the count it last published,
 * and those handed to it since (a flood comes faster than its counts).
 */
static int
full(struct master *m, const struct proc *p)
{
	const struct scoreboard_slot *s = proc_slot(m, p);
	long held = (long)atomic_load(&s->conns) +
	    (long)(p->handed - atomic_load(&s->received));

	return m->config->conn_cap > 0 && held >= m->config->conn_cap;
}

/*
 * Hands fd to the next ready worker in turn that is not full, if fresh
 * only to one whose heartbeat is recent: 0 if one took it, -1 if none
 * could, -2 if the only ones that could are full.
 */
static int
hand_off(struct master *m, int fd, int fresh)
{
	int rc = -1;

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
		if (full(m, p)) {
			rc = -2;
			continue;
		}
		if (channel_send(p->chan, CHAN_CONN, 0, NULL, 0, fd) == 0) {
			p->handed++;
			return 0;
		}
	}
	return rc;
}

/*
 * Hands each new connection on the Unix listener to the next ready
 * worker in turn, passing over any whose heartbeat is stale (stopped or
 * hung: the connection would wait there) unless all are, and any that
 * holds max_connections; with none to take it, the connection is closed
 * and the client tries again.
 */
void
listener_accept(struct master *m)
{
	int fd, rc;

	flush_logs(0);
	/* gRPC expects a non-blocking socket. */
	while ((fd = accept4(m->listen_fd, NULL, NULL,
		    SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		if ((rc = hand_off(m, fd, 1)) != 0)
			rc = hand_off(m, fd, 0);
		if (rc == -2)
			log_limited(&all_full, LOG_LEVEL_WARN,
			    "every worker holds max_connections (%d): "
			    "connection refused",
			    m->config->conn_cap);
		else if (rc != 0)
			log_limited(&no_worker, LOG_LEVEL_WARN,
			    "no worker to take a connection");
		close(fd);
	}
	if (errno == EMFILE || errno == ENFILE) {
		/* The connection stays queued and the listener readable:
		 * pause rather than spin until descriptors free up. */
		log_limited(&no_worker, LOG_LEVEL_WARN, "accept: %s",
		    strerror(errno));
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
