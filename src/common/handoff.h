/*
 * Connections handed from the master to workers, for Unix-domain
 * sockets: SO_REUSEPORT does not exist for them, so the master accepts
 * and passes each connection (SCM_RIGHTS) to a worker, which gives it to
 * gRPC. A channel is one end of a socketpair per worker.
 */
#ifndef QUOTERD_HANDOFF_H
#define QUOTERD_HANDOFF_H

#include <stddef.h>

/*
 * Listens on the Unix socket path, whose file gets mode and, unless gid
 * is -1, that group. A stale socket file (nothing accepts on it) is
 * replaced; a live one is refused. Returns the listening descriptor, or
 * -1 with the reason in err.
 */
int handoff_listen(const char *path, int mode, long gid, char *err,
    size_t errlen);
/* A channel: fds[0] for the master, fds[1] for the worker. */
int handoff_channel(int fds[2]);
/* Passes fd over the channel; the caller still closes its copy. */
int handoff_send(int channel, int fd);
/* The next connection passed; 0 when the master's end is closed, -1 on
 * error. */
int handoff_recv(int channel, int *fd);

#endif
