/*
 * Connections for a Unix-socket listener. The kernel spreads TCP
 * connections over the workers (SO_REUSEPORT), but it cannot do that for
 * Unix sockets, so the master accepts them and hands each to a worker
 * over its channel (CHAN_CONN); the control thread (worker.c) gives each
 * to gRPC here.
 */
#include "worker_impl.h"

#include <grpc/grpc_posix.h>
#include <unistd.h>

#include "log.h"

void
conn_init(struct worker *w)
{
	/* TLS is refused for Unix sockets at start (config.c). */
	w->conn_creds = grpc_insecure_server_credentials_create();
}

void
conn_add(struct worker *w, int fd)
{
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
	if (w->conn_creds != NULL)
		grpc_server_credentials_release(w->conn_creds);
	w->conn_creds = NULL;
}
