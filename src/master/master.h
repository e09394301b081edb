/*
 * The master process: supervises the workers. It never calls into gRPC
 * (gRPC core is not fork-safe) and holds no database across fork().
 */
#ifndef QUOTERD_MASTER_H
#define QUOTERD_MASTER_H

#include <sys/types.h>

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
 * The descriptor limit the master and its workers will have: the soft
 * limit, raised to the hard one (capped by fs.nr_open if unlimited).
 */
unsigned long long daemon_nofile_limit(void);
/*
 * --signal: sends sig to the master whose pid is in the pidfile at path;
 * -1 after saying why not on stderr.
 */
int pidfile_signal(const char *path, int sig);
/* The running master's pid from the pidfile at path; -1 after saying why
 * not on stderr. */
int pidfile_read(const char *path, pid_t *pid);
/*
 * --signal reload: asks the master in the pidfile at path for a reload
 * and waits at most timeout_s for its answer (reload.c). The exit status:
 * 0 done, 1 refused (with the master's reason) or no answer.
 */
int reload_request(const char *path, int timeout_s);

#endif
