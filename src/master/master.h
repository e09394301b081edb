/*
 * The master process: supervises the workers. It never calls into gRPC
 * (gRPC core is not fork-safe) and holds no database across fork().
 */
#ifndef QUOTERD_MASTER_H
#define QUOTERD_MASTER_H

#include "config.h"

/*
 * Runs the master until it stops; returns the process exit status. db_fd
 * is the database file, already checked (check.h).
 */
int master_run(const struct config *c, int daemonize, int db_fd);

#endif
