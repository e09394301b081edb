/*
 * A Unix-domain listener, for connections handed from the master to
 * workers: SO_REUSEPORT does not exist for them, so the master accepts
 * and passes each connection to a worker over its channel (channel.h,
 * CHAN_CONN), which gives it to gRPC (src/worker/conn.c).
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
int
handoff_listen(const char *path, int mode, long gid, char *err, size_t errlen);

#endif
