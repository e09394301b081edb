/*
 * A worker process: one gRPC server on the shared listen address, driven
 * by one completion queue, answering quotes.Quoter from the store.
 */
#ifndef QUOTERD_WORKER_H
#define QUOTERD_WORKER_H

#include "config.h"
#include "metrics.h"
#include "scoreboard.h"

/*
 * Runs worker number index, in a process just forked from the master,
 * which it hears from and reports to over chan (channel.h): CHAN_READY
 * once it serves, CHAN_SWAP with a checked database to serve from then
 * on (answered CHAN_SWAPPED or CHAN_SWAP_FAILED), CHAN_STOP to drain and
 * stop, and, with a Unix-socket listener, CHAN_CONN with each connection
 * the master accepted; a closed channel means the master is gone, and
 * the worker stops. The database is the file open as db_fd, the one the
 * master last had checked; the worker maps it and closes db_fd. Its call
 * threads renew the heartbeat in score (its slot of the master's
 * scoreboard) at least once a second. metrics, unless NULL, is where they
 * count calls: one record a call thread, config_threads() of them, in the
 * shared block (metrics.h). Never returns: exits 0 after a graceful stop,
 * EXIT_FATAL if it cannot serve at all (the master must not restart it),
 * 1 on other errors.
 */
void worker_main(const struct config *c, int index, int chan, int db_fd,
    struct scoreboard_slot *score, struct metrics_thread *metrics)
    __attribute__((noreturn));

#endif
