/*
 * Connections for a Unix-socket listener. The kernel spreads TCP
 * connections over the workers (SO_REUSEPORT), but it cannot do that for
 * Unix sockets, so the master accepts them and hands each to a worker
 * (handoff.h). A thread of its own takes them here and gives them to
 * gRPC: the receive blocks, and gRPC core has no way to wait on a
 * descriptor of ours beside its own.
 */
#include "worker_impl.h"

#include <errno.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handoff.h"
#include "log.h"

/* Until the master's end closes or the worker stops. */
static void *
conn_thread(void *arg)
{
	struct worker *w = arg;
	grpc_server_credentials *creds;
	int fd, rc;

	creds = grpc_insecure_server_credentials_create();
	while ((rc = handoff_recv(w->conn_fd, &fd)) == 1) {
		if (atomic_load(&w->shutting_down)) {
			close(fd);
			continue;
		}
		grpc_server_add_channel_from_fd(w->server, fd, creds);
	}
	if (rc < 0)
		log_warn("connections from the master");
	grpc_server_credentials_release(creds);
	return NULL;
}

void
conn_start(struct worker *w)
{
	int rc;

	if ((rc = pthread_create(&w->conn_thread, NULL, conn_thread, w)) != 0) {
		errno = rc;
		fatal("pthread_create");
	}
}

void
conn_stop(struct worker *w)
{
	/* Wakes the thread from its receive. */
	shutdown(w->conn_fd, SHUT_RDWR);
	pthread_join(w->conn_thread, NULL);
	close(w->conn_fd);
}
