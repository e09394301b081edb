/*
 * The scoreboard: memory the master maps shared before it forks, with as
 * many slots as worker indexes, where each worker says how it is doing
 * without a message or a system call. A slot is one worker's from its
 * fork to its reaping (the master allocates them; a worker retiring
 * beside its replacement keeps its own). It holds a heartbeat, which the
 * worker's call threads renew at least once a second even when idle, so
 * the master can tell a hung or stopped worker from a quiet one, and the
 * connections the worker holds. Each slot has cache lines of its own, so
 * workers writing their slots never share one.
 */
#ifndef QUOTERD_SCOREBOARD_H
#define QUOTERD_SCOREBOARD_H

#include <stdatomic.h>
#include <sys/types.h>

#define SCOREBOARD_SLOT_SIZE 256 /* four cache lines */

struct scoreboard_slot {
	/* ms, CLOCK_MONOTONIC; 0: none yet; -1: no more (its call threads
	 * have ended) */
	_Alignas(64) atomic_long heartbeat;
	atomic_int pid; /* the worker in the slot */
	/*
	 * Connections the worker holds, counted once a second by its control
	 * thread, and how many the master had handed it (CHAN_CONN) by then:
	 * the master adds those it handed since, to know a full worker.
	 */
	atomic_int conns;
	atomic_uint received;
	/* Later: counters, each written by one worker only. */
	char room[SCOREBOARD_SLOT_SIZE - sizeof(atomic_long) -
	    3 * sizeof(atomic_int)];
};

_Static_assert(sizeof(struct scoreboard_slot) == SCOREBOARD_SLOT_SIZE,
    "scoreboard slots keep their size");

struct scoreboard;

/* Maps a scoreboard of nslots slots, shared with children forked after;
 * NULL with errno if it cannot. */
struct scoreboard *scoreboard_create(int nslots);
void scoreboard_destroy(struct scoreboard *sb);
struct scoreboard_slot *scoreboard_slot(struct scoreboard *sb, int index);

/* The master, before starting a worker in the slot: no heartbeat yet. */
void scoreboard_reset(struct scoreboard_slot *s, pid_t pid);
/* A worker: it is alive now; returns now (scoreboard_now()). */
long scoreboard_beat(struct scoreboard_slot *s);
/* A worker whose call threads have ended: it beats no more. */
void scoreboard_done(struct scoreboard_slot *s);
/* How long ago the last heartbeat was, in ms; -1 if none yet, or no
 * more. */
long scoreboard_age(const struct scoreboard_slot *s);

/* The clock heartbeats use: ms, CLOCK_MONOTONIC (one for all processes). */
long scoreboard_now(void);

#endif
