/*
 * The master's insides, shared by the files of src/master/ that run its
 * loop: master.c (the loop), proc.c (workers), swap.c (database
 * generations), certs.c (TLS reloads), reload.c (SIGHUP's answer),
 * accept.c (a Unix listener) and daemon.c (pidfile, --daemon). One
 * struct master, passed to each, is all of the state.
 */
#ifndef QUOTERD_MASTER_IMPL_H
#define QUOTERD_MASTER_IMPL_H

#include <limits.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <time.h>

#include "check.h"
#include "config.h"
#include "master.h"
#include "metrics.h"
#include "channel.h"
#include "scoreboard.h"
#include "store.h"
#include "worker.h"

enum proc_state {
	PROC_FREE,    /* no worker */
	PROC_ACTIVE,  /* serving, or to be restarted */
	PROC_RETIRING /* told to finish its calls and exit (SIGTTOU, sick) */
};

struct proc {
	enum proc_state state;
	pid_t pid; /* 0: not running */
	int ready;
	long started;    /* ms, monotonic */
	long respawn_at; /* ms, monotonic; 0: none due */
	int backoff_ms;
	unsigned swapped; /* the last swap generation it confirmed */
	int chan;         /* the master's end of its channel, or -1 */
	int hung;         /* killed for a stale heartbeat */
	int sick;         /* asked to be replaced (see proc_replace_sick()) */
	int counters;     /* its metrics record while it runs, or -1 */
	int score;        /* its scoreboard slot while it runs */
	unsigned handed;  /* connections handed to it (CHAN_CONN) */
	long retire_by;   /* ms: retiring, killed if still alive then; 0 */
	int waits_for;    /* retiring once worker waits_for serves; -1 */
};

enum stop_mode { RUNNING, STOP_GRACEFUL, STOP_NOW };

/* What identifies one version of the database file. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct swap {
	unsigned generation;
	long started; /* ms; 0: no swap waiting for reports */
	int expected; /* workers sent the new database */
	int switched;
	int failed;
	unsigned long long quotes, authors;
};

/* A TLS reload: its checker, then the workers' confirmations (certs.c). */
struct certs {
	unsigned generation;
	long started; /* ms; 0: none waiting */
	int expected; /* workers sent the new files */
	int done;
	struct check *check; /* the TLS files being checked, or NULL */
	long check_deadline; /* ms: refused if no verdict by then */
	int check_again;     /* SIGHUP during the check: read them again */
};

/* What a reload is made of, each with its own verdict. */
enum reload_part { RELOAD_DB, RELOAD_TLS, RELOAD_NPARTS };

#define RELOAD_WAITERS_MAX 16
#define RELOAD_WHY_MAX     512

/* A --signal reload command waiting for the answer. */
struct reload_waiter {
	pid_t pid;
	unsigned name; /* its socket's autobound abstract name, as a number */
};

/* SIGHUP's reload until it is over (reload.c). */
struct reload {
	int active; /* systemd waits for READY=1 */
	struct reload_waiter waiters[RELOAD_WAITERS_MAX];
	int nwaiters;
	int ok[RELOAD_NPARTS]; /* each part's last verdict in this reload */
	char why[RELOAD_NPARTS][RELOAD_WHY_MAX]; /* and its log line */
};

struct master {
	const struct config *config;
	struct proc *procs;
	struct scoreboard *sb; /* a slot per proc, each owned by one worker */
	int nprocs;            /* slots: MAX_WORKERS */
	int nworkers;          /* active workers: the count asked for */
	int sigfd;
	int inotify_fd; /* -1: not watching */
	char db_name[NAME_MAX + 1];
	int db_fd;              /* the checked database that workers open */
	struct file_id db_id;   /* the file db_fd is */
	struct file_id seen_id; /* the file last examined, good or not */
	struct swap swap;
	struct certs certs;
	struct metrics *metrics; /* the counters, or NULL: metrics off */
	int metrics_fd;          /* the metrics process's listener, or -1 */
	pid_t metrics_pid;       /* the metrics process, or 0 */
	long metrics_respawn_at; /* ms; 0: none due */
	struct check *check;     /* a candidate being checked, or NULL */
	int check_fd;            /* the candidate's descriptor */
	struct file_id check_id; /* the file check_fd is */
	const char *check_why;   /* what asked for it: "SIGHUP", ... */
	long check_deadline;     /* ms: refused if no verdict by then */
	int check_again;         /* asked to swap again during the check: */
	int check_force;         /* and whether by SIGHUP */
	struct reload reload;
	int pidfile_fd;
	int listen_fd; /* Unix listener, which the master accepts on; or -1 */
	int next;      /* the worker the next connection goes to */
	int notify_fd; /* --daemon: tells the waiting parent we serve */
	long start_deadline; /* --daemon: ms by which workers must serve */
	enum stop_mode stopping;
	long stop_deadline;
	long listener_close_at;   /* ms: a Unix listener lasts the drain */
	long accept_paused_until; /* ms: out of descriptors, try later */
	int status;               /* exit status once stopped */
	int announced;            /* "serving" logged */
};

/* The monotonic clock in ms, as the scoreboard's heartbeats read it. */
static inline long
now_ms(void)
{
	return scoreboard_now();
}

/*
 * A worker's scoreboard slot: its own from its fork to its reaping,
 * wherever it retires, so that no other worker's heartbeat is read as
 * its own (proc_spawn()).
 */
static inline struct scoreboard_slot *
proc_slot(struct master *m, const struct proc *p)
{
	return scoreboard_slot(m->sb, p->score);
}

/* The sooner of two waits in ms, where -1 is none. */
static inline long
sooner(long a, long b)
{
	return a < 0 || (b >= 0 && b < a) ? b : a;
}

/* proc.c: the workers and the metrics process. */
void proc_init(struct master *m);
void proc_spawn(struct master *m, int index);
void proc_spawn_metrics(struct master *m);
int proc_running(const struct master *m);
void proc_signal_all(struct master *m, int sig);
void proc_reopen_logs(struct master *m);
/* Sends fd, as message type of generation gen, to every active worker;
 * returns how many it reached, a warning naming what for the others. */
int proc_send_active(struct master *m, enum channel_type type, uint32_t gen,
    int fd, const char *what);
void proc_reap(struct master *m);
long proc_respawn(struct master *m, long now);
void proc_read_channel(struct master *m, int index);
long proc_check_heartbeats(struct master *m);
long proc_replace_sick(struct master *m);
long proc_retire_due(struct master *m, long now);
void proc_scale(struct master *m, int delta);
void proc_stop(struct master *m, enum stop_mode mode, int status);
long proc_stop_due(struct master *m, long now);
void proc_end(struct master *m);

/* swap.c: database generations. */
void swap_init(struct master *m);
void swap_publish(struct master *m, const struct store_info *info, int swapped);
void swap_database(struct master *m, const char *why, int force);
void swap_read_inotify(struct master *m);
void swap_finish_check(struct master *m, int timed_out);
void swap_abort_check(struct master *m);
void swap_worker_reported(struct master *m, int index, int swapped,
    unsigned generation);
long swap_due(struct master *m, long now);
void swap_end(struct master *m);

/* certs.c: TLS certificate reloads. */
void certs_reload(struct master *m);
void certs_finish_check(struct master *m, int timed_out);
void certs_worker_reported(struct master *m, unsigned generation);
long certs_due(struct master *m, long now);
int certs_busy(const struct master *m);
void certs_end(struct master *m);

/* reload.c: SIGHUP's reload as one job, and its answer. */
void reload_start(struct master *m, const struct signalfd_siginfo *si);
void reload_verdict(struct master *m, enum reload_part part, int ok,
    const char *why);
void reload_done(struct master *m);
void reload_end(struct master *m);

/* accept.c: how connections reach the workers. */
int listener_open(struct master *m);
void listener_accept(struct master *m);
void listener_close(struct master *m);
void listener_check_migrate_req(const struct config *c);

/* daemon.c: the pidfile, --daemon, the descriptor limit. */
void daemon_detach(struct master *m);
void daemon_tell_parent(struct master *m, const char *why);
long daemon_start_due(struct master *m, long now);
void daemon_raise_nofile(void);
int pidfile_open(struct master *m);
void pidfile_close(struct master *m);

#endif
