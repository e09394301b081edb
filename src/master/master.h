/*
 * The master process: supervises the workers. It never calls into gRPC
 * (gRPC core is not fork-safe) and holds no database across fork().
 */
#ifndef QUOTERD_MASTER_H
#define QUOTERD_MASTER_H

#include "config.h"
#include "store.h"

/* What main() prepared before the master starts. */
struct master_start {
	int db_fd;            /* the checked database (check.h) */
	struct store_info db; /* what its checker found */
	int metrics_fd;       /* listening for /metrics, or -1 */
};

/* Runs the master until it stops; returns the process exit status. */
int master_run(const struct config *c, int daemonize,
    const struct master_start *start);
/*
 * --signal: sends sig to the master whose pid is in the pidfile at path;
 * -1 after saying why not on stderr.
 */
int pidfile_signal(const char *path, int sig);

#endif
