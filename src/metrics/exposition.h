/*
 * The Prometheus text exposition (format 0.0.4) of the shared counters
 * (metrics.h) and of the master process.
 */
#ifndef QUOTERD_EXPOSITION_H
#define QUOTERD_EXPOSITION_H

#include <stddef.h>
#include <sys/types.h>

#include "metrics.h"

/*
 * Renders every metric, summing each worker slot's threads; master is
 * the process the process_* metrics describe. Returns malloc'd text and
 * its length in *len, or NULL.
 */
char *exposition_render(struct metrics *m, pid_t master, size_t *len);

#endif
