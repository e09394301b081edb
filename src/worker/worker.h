/*
 * A worker process: one gRPC server on the shared listen address, driven
 * by one completion queue, answering quotes.Quoter from the store.
 */
#ifndef QUOTERD_WORKER_H
#define QUOTERD_WORKER_H

#include <sys/types.h>

#include "config.h"

/*
 * Runs worker number index of the master master_pid, in a process just
 * forked from it; writes one byte to ready_fd once it serves. Never
 * returns: exits 0 after a graceful stop, EXIT_FATAL if it cannot serve
 * at all (the master must not restart it), 1 on other errors.
 */
void worker_main(const struct config *c, int index, pid_t master_pid,
    int ready_fd) __attribute__((noreturn));

#endif
