/*
 * The connections a worker holds. The kernel spreads TCP connections over
 * the workers (SO_REUSEPORT), but it cannot do that for Unix sockets, so
 * the master accepts them and hands each to a worker over its channel
 * (CHAN_CONN); the control thread (worker.c) gives each to gRPC here.
 *
 * gRPC 1.51 has no cap on connections, so they are counted here, once a
 * second, as the descriptors open beyond those the worker had before any
 * connection, and published in the worker's scoreboard slot. A Unix
 * listener's master skips a full worker; on TCP, where gRPC accepts by
 * itself, a full worker asks to be replaced (as one whose accept4()
 * failed does) and retires once its replacement serves, its connections
 * draining. max_connections is that trigger, not a hard limit: the
 * worker keeps the master's descriptor limit (raised to the hard one),
 * since a lower one let a burst faster than the count run it out, and
 * gRPC then stops accepting on that listener for good. Running out
 * anyway is the backstop: its accept4() fails and it asks the same.
 */
#include "worker_impl.h"

#include <dirent.h>
#include <errno.h>
#include <grpc/grpc_posix.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* A worker out of descriptors loses every connection handed to it: one
 * line a connection would flood the log. */
static struct log_limit lost_conns = LOG_LIMIT_INIT("connections not received");

void
conn_init(struct worker *w)
{
	/* TLS is refused for Unix sockets at start (config.c). */
	w->conn_creds = grpc_insecure_server_credentials_create();
}

void
conn_add(struct worker *w, int fd)
{
	w->received++;
	if (fd < 0) {
		/* The kernel could not give us the descriptor (MSG_CTRUNC):
		 * the connection is closed, and its client tries again. */
		log_limited(&lost_conns, LOG_LEVEL_WARN,
		    "a connection from the master could not be received: out "
		    "of descriptors");
		return;
	}
	/* A stopping server takes no new connection: its client tries
	 * again, and the master's next one goes to a worker that serves. */
	if (w->conn_creds == NULL || atomic_load(&w->shutting_down)) {
		close(fd);
		return;
	}
	grpc_server_add_channel_from_fd(w->server, fd, w->conn_creds);
}

void
conn_end(struct worker *w)
{
	log_limit_flush(&lost_conns);
	if (w->conn_creds != NULL)
		grpc_server_credentials_release(w->conn_creds);
	w->conn_creds = NULL;
}

/* Descriptors open, or -1 if they cannot be counted (none is free to
 * list them with, say). */
static int
count_fds(void)
{
	struct dirent *e;
	DIR *d;
	int n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the listing's own */
}

void
conn_base(struct worker *w)
{
	struct dirent *e;
	DIR *d;

	w->fd_base = count_fds();
	w->nlisteners = 0;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	while ((e = readdir(d)) != NULL &&
	    w->nlisteners <
		(int)(sizeof(w->listeners) / sizeof(w->listeners[0]))) {
		int fd = atoi(e->d_name), on = 0;
		socklen_t len = sizeof(on);

		if (e->d_name[0] != '.' && fd != dirfd(d) &&
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 &&
		    on)
			w->listeners[w->nlisteners++] = fd;
	}
	closedir(d);
}

int
conn_stop_listening(struct worker *w)
{
	int shut = 0;

	for (int i = 0; i < w->nlisteners; i++) {
		int on = 0;
		socklen_t len = sizeof(on);

		/* Still a listener (gRPC keeps it open until its shutdown):
		 * shutdown() makes the kernel close its queue and leave the
		 * group; gRPC's accept4() then fails with EINVAL. */
		if (getsockopt(w->listeners[i], SOL_SOCKET, SO_ACCEPTCONN, &on,
			&len) == 0 &&
		    on && shutdown(w->listeners[i], SHUT_RD) == 0)
			shut++;
	}
	return shut > 0;
}

void
conn_tick(struct worker *w)
{
	const struct config *c = w->config;
	int n = count_fds();
	char why[128];

	log_limit_flush(&lost_conns);
	if (n < 0 || w->fd_base < 0)
		return;
	n = n > w->fd_base ? n - w->fd_base : 0;
	atomic_store(&w->score->received, w->received);
	atomic_store(&w->score->conns, n);
	/* A Unix listener's master hands a full worker nothing more. */
	if (c->conn_cap == 0 || n < c->conn_cap ||
	    c->listen_addr.kind != LISTEN_TCP)
		return;
	snprintf(why, sizeof(why), "%d connections, max_connections is %d", n,
	    c->conn_cap);
	worker_ask_replacement(w, why);
}
