/*
 * A worker process: one gRPC server on the shared listen address, driven
 * by one completion queue, answering quotes.Quoter from the store.
 */
#ifndef QUOTERD_WORKER_H
#define QUOTERD_WORKER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "metrics.h"
#include "scoreboard.h"

/* What a worker tells the master over the status pipe. */
enum worker_event {
	WORKER_READY = 1,       /* serving */
	WORKER_RELOADED = 2,    /* new calls use the database now at the path */
	WORKER_RELOAD_FAILED = 3, /* kept the database it had */
	WORKER_SICK = 4         /* cannot take new connections: replace me */
};

/*
 * The master asks workers to reopen the database with this signal, its
 * value the swap's generation (a real-time signal, so that requests
 * queue rather than merge, each with its own generation).
 */
#define WORKER_SIGRELOAD (SIGRTMIN + 1)

/*
 * Smaller than PIPE_BUF, so workers' writes never interleave. generation
 * is the swap a report answers (0 for none), so that the master counts
 * it toward that swap only. pid is the sender's: a report a dead worker
 * left in the pipe must not be taken for its replacement's.
 */
struct worker_msg {
	int32_t index;
	int32_t event;
	uint32_t generation;
	int32_t pid;
};

/*
 * Runs worker number index of the master master_pid, in a process just
 * forked from it, reporting to the master on status_fd. The database is
 * the file open as db_fd, the one the master last had checked, even if
 * the path now names another file; the worker maps it and closes db_fd.
 * WORKER_SIGRELOAD (or SIGHUP) makes it open the master's db_fd again,
 * through /proc. With a Unix-socket listener, the master accepts and
 * passes each connection over conn_fd (handoff.h); otherwise conn_fd is
 * -1 and the worker listens itself. Its call threads renew the heartbeat
 * in score (its slot of the master's scoreboard) at least once a second.
 * metrics, unless NULL, is where they count calls: one record a call
 * thread, config_threads() of them, in the shared block (metrics.h). Never returns: exits 0 after a graceful stop, EXIT_FATAL
 * if it cannot serve at all (the master must not restart it), 1 on other
 * errors.
 */
void worker_main(const struct config *c, int index, pid_t master_pid,
    int status_fd, int db_fd, int conn_fd, struct scoreboard_slot *score,
    struct metrics_thread *metrics)
    __attribute__((noreturn));

#endif
