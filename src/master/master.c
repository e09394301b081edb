/*
 * The master loop, after nginx's ngx_process_cycle.c: fork the workers,
 * then wait on a signalfd, the workers' status pipe and an inotify watch
 * of the database's directory, restarting workers that die (with backoff
 * when they crash-loop) and swapping the database, until told to stop.
 * Signals stay blocked in the master; nothing runs in a handler.
 *
 * A swap: the master opens the new file and forks a checker of it
 * (check.c), going on with its loop meanwhile; on the checker's "good" it
 * sends WORKER_SIGRELOAD to every worker, which reopens it and reports
 * back, and the master logs one line when all have switched. The master
 * never parses a database itself.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "handoff.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "scoreboard.h"
#include "store.h"
#include "tls.h"
#include "worker.h"

/* A worker that dies sooner than this after its start is crash-looping. */
#define STABLE_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* Beyond shutdown_timeout, how long workers get before SIGKILL. */
#define STOP_GRACE_MS 5000
/* How long workers get to report a swap before the master logs it. */
#define SWAP_REPORT_MS 5000

/*
 * --daemon: the workers get start_timeout to start before the master
 * gives up (and stops) and the waiting parent exits 1 with the reason;
 * the parent itself waits this much longer in case the master cannot
 * even say so.
 */
#define DAEMON_PARENT_GRACE_MS 10000

/* A sick worker's replacement starts no sooner than this after it. */
#define SICK_MIN_MS 1000
/* A Unix listener hands connections only to workers whose heartbeat is
 * fresher than this, while any is. */
#define HANDOFF_STALE_MS 3000

/* Worker slots; a slot's index is the worker's number. */
#define MAX_WORKERS 1024

enum proc_state {
	PROC_FREE,     /* no worker */
	PROC_ACTIVE,   /* serving, or to be restarted */
	PROC_RETIRING  /* told to finish its calls and exit (SIGTTOU) */
};

struct proc {
	enum proc_state state;
	pid_t pid;      /* 0: not running */
	int ready;
	long started;   /* ms, monotonic */
	long respawn_at; /* ms, monotonic; 0: none due */
	int backoff_ms;
	unsigned swapped; /* the last swap generation it confirmed */
	int chan;         /* Unix listener: the master's end of its channel */
	int hung;         /* killed for a stale heartbeat */
	int sick;         /* asked to be replaced (see replace_sick()) */
	int counters;     /* its metrics record while it runs, or -1 */
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
	long started;  /* ms; 0: no swap waiting for reports */
	int expected;  /* workers signalled */
	int switched;
	int failed;
	unsigned long long quotes, authors;
};

struct master {
	const struct config *config;
	struct proc *procs;
	struct scoreboard *sb; /* one slot per proc */
	int nprocs;     /* slots: MAX_WORKERS */
	int nworkers;   /* active workers: the count asked for */
	int sigfd;
	int status_rd, status_wr;
	int inotify_fd; /* -1: not watching */
	char db_name[NAME_MAX + 1];
	int db_fd;      /* the checked database that workers open */
	struct file_id db_id;   /* the file db_fd is */
	struct file_id seen_id; /* the file last examined, good or not */
	struct swap swap;
	struct metrics *metrics; /* the counters, or NULL: metrics off */
	int metrics_fd;         /* the metrics process's listener, or -1 */
	pid_t metrics_pid;      /* the metrics process, or 0 */
	long metrics_respawn_at; /* ms; 0: none due */
	struct check *check;    /* a candidate being checked, or NULL */
	int check_fd;           /* the candidate's descriptor */
	struct file_id check_id; /* the file check_fd is */
	const char *check_why;  /* what asked for it: "SIGHUP", ... */
	long check_deadline;    /* ms: refused if no verdict by then */
	int check_again;        /* asked to swap again during the check: */
	int check_force;        /* and whether by SIGHUP */
	int reloading;          /* systemd waits for READY=1 after SIGHUP */
	int pidfile_fd;
	int listen_fd;  /* Unix listener, which the master accepts on; or -1 */
	int next;       /* the worker the next connection goes to */
	int notify_fd; /* --daemon: tells the waiting parent we serve */
	long start_deadline; /* --daemon: ms by which workers must serve */
	enum stop_mode stopping;
	long stop_deadline;
	long listener_close_at; /* ms: a Unix listener lasts the drain */
	long accept_paused_until; /* ms: out of descriptors, try later */
	int status;    /* exit status once stopped */
	int announced; /* "serving" logged */
};

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
running(const struct master *m)
{
	int n = 0;

	for (int i = 0; i < m->nprocs; i++)
		n += m->procs[i].pid != 0;
	return n;
}

/* quoterd_workers: the workers running now. */
static void
count_workers(struct master *m)
{
	if (m->metrics != NULL)
		metrics_set(&metrics_master(m->metrics)->workers,
		    (uint64_t)running(m));
}

/* In a child forked from the master: what only the master may hold. */
static void
close_master_fds(struct master *m)
{
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].chan >= 0)
			close(m->procs[i].chan);
	close(m->sigfd);
	close(m->status_rd);
	if (m->inotify_fd >= 0)
		close(m->inotify_fd);
	if (m->pidfile_fd >= 0)
		close(m->pidfile_fd);
	if (m->notify_fd >= 0)
		close(m->notify_fd);
	if (m->check != NULL) {
		close(check_fd(m->check));
		close(m->check_fd);
	}
}

/*
 * A metrics record for a new worker: one no running worker writes, so
 * that each has one writer. Not the slot's own: a sick worker retires
 * from another slot while its replacement serves in its old one.
 */
static int
free_counters(const struct master *m)
{
	for (int r = 0; r < m->nprocs; r++) {
		int used = 0;

		for (int i = 0; i < m->nprocs && !used; i++)
			used = m->procs[i].pid != 0 && m->procs[i].counters == r;
		if (!used)
			return r;
	}
	return -1;
}

/* The metrics process (httpd.h); restarted if it dies. */
static void
spawn_metrics(struct master *m)
{
	pid_t pid;

	m->metrics_respawn_at = 0;
	if ((pid = fork()) < 0) {
		log_warn("starting the metrics process");
		m->metrics_respawn_at = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
		close_master_fds(m);
		close(m->status_wr);
		close(m->db_fd);
		httpd_main(m->metrics_fd, m->metrics);
	}
	m->metrics_pid = pid;
	log_info("metrics on http://%s/metrics, pid %ld",
	    m->config->metrics_listen, (long)pid);
}

static void
spawn(struct master *m, int index)
{
	struct proc *p = &m->procs[index];
	pid_t pid, master_pid = getpid();
	int chan[2] = {-1, -1};

	p->state = PROC_ACTIVE;
	p->respawn_at = 0;
	p->ready = 0;
	p->hung = p->sick = 0;
	p->counters = m->metrics != NULL ? free_counters(m) : -1;
	/* The worker beats once it serves; until then it is not judged. */
	scoreboard_reset(scoreboard_slot(m->sb, index), 0);
	if ((m->listen_fd >= 0 && handoff_channel(chan) != 0) ||
	    (pid = fork()) < 0) {
		log_warn("starting worker %d", index);
		if (chan[0] >= 0) {
			close(chan[0]);
			close(chan[1]);
		}
		p->respawn_at = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
		/* Only the master accepts; a worker gets its own channel. */
		if (chan[0] >= 0)
			close(chan[0]);
		close_master_fds(m);
		if (m->metrics_fd >= 0)
			close(m->metrics_fd);
		/* The worker maps the checked file from its copy of db_fd,
		 * then closes it, so that it pins no file after a swap. */
		worker_main(m->config, index, master_pid, m->status_wr,
		    m->db_fd, chan[1], scoreboard_slot(m->sb, index),
		    metrics_thread(m->metrics, p->counters, 0));
	}
	if (chan[0] >= 0) {
		close(chan[1]);
		p->chan = chan[0];
	}
	p->pid = pid;
	p->started = now_ms();
	count_workers(m);
	log_info("worker %d started, pid %ld", index, (long)pid);
}

static void
signal_all(struct master *m, int sig)
{
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].pid != 0)
			kill(m->procs[i].pid, sig);
	if (m->metrics_pid != 0)
		kill(m->metrics_pid, sig);
}

/* No new connections once a stop has begun. */
static void
close_listener(struct master *m)
{
	if (m->listen_fd < 0)
		return;
	close(m->listen_fd);
	m->listen_fd = -1;
	unlink(m->config->listen + 5);
}

/* Hands fd to the next ready worker in turn, if fresh only to one whose
 * heartbeat is recent; 0 if one took it. */
static int
hand_off(struct master *m, int fd, int fresh)
{
	for (int tries = 0; tries < m->nprocs; tries++) {
		struct proc *p = &m->procs[m->next];
		long age;

		m->next = (m->next + 1) % m->nprocs;
		if (p->state != PROC_ACTIVE || p->pid == 0 || !p->ready ||
		    p->chan < 0)
			continue;
		age = scoreboard_age(scoreboard_slot(m->sb,
		    (int)(p - m->procs)));
		if (fresh && (age < 0 || age > HANDOFF_STALE_MS))
			continue;
		if (handoff_send(p->chan, fd) == 0)
			return 0;
	}
	return -1;
}

/*
 * Hands each new connection on the Unix listener to the next ready
 * worker in turn, passing over any whose heartbeat is stale (stopped or
 * hung: the connection would wait there) unless all are; with none
 * ready, the connection is closed and the client tries again.
 */
static void
accept_connections(struct master *m)
{
	int fd;

	/* gRPC expects a non-blocking socket. */
	while ((fd = accept4(m->listen_fd, NULL, NULL,
	    SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		if (hand_off(m, fd, 1) != 0 && hand_off(m, fd, 0) != 0)
			log_warnx("no worker to take a connection");
		close(fd);
	}
	if (errno == EMFILE || errno == ENFILE) {
		/* The connection stays queued and the listener readable:
		 * pause rather than spin until descriptors free up. */
		log_warn("accept");
		m->accept_paused_until = now_ms() + 100;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		log_warn("accept");
	}
}

static void
begin_stop(struct master *m, enum stop_mode mode, int status)
{
	if (m->stopping == RUNNING || mode == STOP_NOW) {
		log_info(mode == STOP_NOW ? "stopping now"
					  : "stopping: workers finish their "
					    "calls");
		signal_all(m, mode == STOP_NOW ? SIGKILL : SIGTERM);
		m->stop_deadline = now_ms() +
		    (long)(m->config->drain_time +
			m->config->shutdown_timeout) * 1000 +
		    STOP_GRACE_MS;
		/* The manager's stop timeout then covers a long drain_time. */
		notify("STOPPING=1\nEXTEND_TIMEOUT_USEC=%ld",
		    (m->stop_deadline - now_ms() + STOP_GRACE_MS) * 1000);
	}
	m->stopping = mode;
	if (status > m->status)
		m->status = status;
	if (m->check != NULL) {
		struct check_verdict v;

		check_abort(m->check, &v);
		m->check = NULL;
		close(m->check_fd);
		m->check_fd = -1;
		m->check_again = 0;
	}
	/* Workers still serve while they drain: so does a Unix listener. */
	if (mode == STOP_NOW || m->config->drain_time == 0)
		close_listener(m);
	else if (m->listener_close_at == 0)
		m->listener_close_at =
		    now_ms() + (long)m->config->drain_time * 1000;
	for (int i = 0; i < m->nprocs; i++)
		m->procs[i].respawn_at = 0;
}

static void
describe_exit(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/*
 * --daemon: gives the waiting parent its one message, an empty one once
 * the daemon serves or the reason it will not, so that whoever ran it
 * reads why on the terminal instead of digging in a log.
 */
static void
tell_parent(struct master *m, const char *why)
{
	if (m->notify_fd < 0)
		return;
	if (write(m->notify_fd, why, strlen(why) + (why[0] == '\0')) < 0)
		log_warn("daemon parent");
	close(m->notify_fd);
	m->notify_fd = -1;
}

static void
reap(struct master *m)
{
	char how[96];
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *p = NULL;
		int index;
		long lived;

		for (index = 0; index < m->nprocs; index++)
			if (m->procs[index].pid == pid) {
				p = &m->procs[index];
				break;
			}
		if (p == NULL) {
			if (m->check != NULL && pid == check_pid(m->check))
				check_reaped(m->check, status);
			if (pid == m->metrics_pid) {
				m->metrics_pid = 0;
				describe_exit(status, how, sizeof(how));
				if (m->stopping != RUNNING)
					continue;
				log_warnx("metrics process (pid %ld) %s; "
					  "restarting it", (long)pid, how);
				m->metrics_respawn_at = now_ms() +
				    BACKOFF_MAX_MS / 10;
			}
			continue;
		}
		p->pid = 0;
		count_workers(m);
		if (p->chan >= 0) {
			close(p->chan);
			p->chan = -1;
		}
		describe_exit(status, how, sizeof(how));
		if (p->state == PROC_RETIRING) {
			p->state = PROC_FREE;
			log_info("worker %d (pid %ld) retired: %s", index,
			    (long)pid, how);
			continue;
		}
		if (m->stopping != RUNNING) {
			log_debug("worker %d (pid %ld) %s", index, (long)pid,
			    how);
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FATAL) {
			char why[192];

			snprintf(why, sizeof(why), "worker %d (pid %ld) %s: it "
			    "cannot serve, so quoterd stops", index, (long)pid,
			    how);
			log_errorx("%s", why);
			tell_parent(m, why);
			begin_stop(m, STOP_GRACEFUL, 1);
			continue;
		}
		lived = now_ms() - p->started;
		if (lived >= STABLE_MS)
			p->backoff_ms = 0;
		else if (p->backoff_ms == 0)
			p->backoff_ms = BACKOFF_MIN_MS;
		else if ((p->backoff_ms *= 2) > BACKOFF_MAX_MS)
			p->backoff_ms = BACKOFF_MAX_MS;
		log_warnx("worker %d (pid %ld) %s; restarting it%s", index,
		    (long)pid, how, p->backoff_ms ? " after a pause" : "");
		if (m->metrics != NULL)
			metrics_add(&metrics_master(m->metrics)->worker_restarts,
			    1);
		p->respawn_at = now_ms() + p->backoff_ms;
	}
}

/*
 * Kills (SIGKILL) each serving worker whose heartbeat is older than
 * worker_timeout: stopped, or hung in a way no signal of ours would
 * mend. reap() then starts another in its place. Returns how long until
 * the next check is due, in ms.
 */
static long
check_heartbeats(struct master *m)
{
	long limit = (long)m->config->worker_timeout * 1000, age;

	for (int i = 0; i < m->nprocs; i++) {
		struct proc *p = &m->procs[i];

		if (p->state != PROC_ACTIVE || p->pid == 0 || !p->ready ||
		    p->hung)
			continue;
		age = scoreboard_age(scoreboard_slot(m->sb, i));
		if (age <= limit)
			continue;
		log_warnx("worker %d (pid %ld) has not answered for %ld ms: "
			  "killing it", i, (long)p->pid, age);
		kill(p->pid, SIGKILL);
		p->hung = 1;
	}
	return limit / 4 < 1000 ? (limit / 4 > 100 ? limit / 4 : 100) : 1000;
}

/*
 * Replaces each worker that reported itself sick: the worker moves to a
 * free slot to retire there (finishing its calls, as after SIGTTOU) and
 * a new one starts in its slot at once. Not sooner than SICK_MIN_MS
 * after the sick one started, so that a cause that lasts (a flood of
 * connections holding every descriptor) cannot make it spin. Returns ms
 * until one is due, or -1.
 */
static long
replace_sick(struct master *m)
{
	long now = now_ms(), next = -1;
	int spare;

	for (int i = 0; i < m->nprocs; i++) {
		struct proc *p = &m->procs[i];

		if (p->state != PROC_ACTIVE || !p->sick || p->pid == 0)
			continue;
		if (now < p->started + SICK_MIN_MS) {
			if (next < 0 || p->started + SICK_MIN_MS - now < next)
				next = p->started + SICK_MIN_MS - now;
			continue;
		}
		for (spare = m->nprocs - 1;
		     spare >= 0 && m->procs[spare].state != PROC_FREE; spare--)
			;
		if (spare < 0) {
			/* Every slot busy: restart it in place instead. */
			kill(p->pid, SIGTERM);
			p->sick = 0;
			continue;
		}
		log_info("worker %d (pid %ld) retires in slot %d; a new worker "
			 "%d starts", i, (long)p->pid, spare, i);
		m->procs[spare] = *p;
		m->procs[spare].state = PROC_RETIRING;
		kill(p->pid, SIGTERM);
		p->chan = -1;
		p->pid = 0;
		p->backoff_ms = 0;
		spawn(m, i);
	}
	return next;
}

static void
announce(struct master *m)
{
	int ready = 0;

	for (int i = 0; i < m->nprocs; i++)
		ready += m->procs[i].state == PROC_ACTIVE &&
		    m->procs[i].pid != 0 && m->procs[i].ready;
	if (m->announced || m->stopping != RUNNING || ready < m->nworkers)
		return;
	m->announced = 1;
	log_info("serving %s with %d workers", m->config->listen, ready);
	notify("READY=1\nSTATUS=serving %s with %d workers", m->config->listen,
	    ready);
	tell_parent(m, "");
}

/*
 * After SIGHUP, systemd is told READY=1 once the reload is over: the
 * file refused, or every worker switched (or the report's deadline).
 */
static void
reload_done(struct master *m)
{
	if (!m->reloading || m->check != NULL || m->swap.started != 0)
		return;
	m->reloading = 0;
	notify("READY=1");
}

static void
swap_report(struct master *m)
{
	struct swap *sw = &m->swap;

	if (sw->started == 0)
		return;
	log_info("database generation %u: %s: %llu quotes, %llu authors; "
		 "%d of %d workers switched in %ld ms%s",
	    sw->generation, m->config->database, sw->quotes, sw->authors,
	    sw->switched, sw->expected, now_ms() - sw->started,
	    sw->failed ? " (the others kept the previous database)" : "");
	sw->started = 0;
	reload_done(m);
}

static void
read_status(struct master *m)
{
	struct worker_msg msg;
	struct swap *sw = &m->swap;

	while (read(m->status_rd, &msg, sizeof(msg)) == sizeof(msg)) {
		/* From the worker now in the slot, not one that died
		 * after writing it. */
		if (msg.index < 0 || msg.index >= m->nprocs ||
		    msg.pid == 0 || msg.pid != m->procs[msg.index].pid)
			continue;
		switch (msg.event) {
		case WORKER_SICK:
			if (m->procs[msg.index].state == PROC_ACTIVE &&
			    !m->procs[msg.index].sick) {
				m->procs[msg.index].sick = 1;
				log_warnx("worker %d (pid %ld) cannot accept "
					  "connections any more: replacing it",
				    msg.index, (long)msg.pid);
			}
			break;
		case WORKER_READY:
			m->procs[msg.index].ready = 1;
			log_debug("worker %d ready", msg.index);
			announce(m);
			break;
		case WORKER_RELOADED:
		case WORKER_RELOAD_FAILED:
			/* A late report of an earlier swap is not about the
			 * file now in use. */
			if (sw->started == 0 || msg.generation != sw->generation)
				break;
			/* Count workers, not reports. */
			if (m->procs[msg.index].swapped == sw->generation)
				break;
			m->procs[msg.index].swapped = sw->generation;
			if (msg.event == WORKER_RELOADED)
				sw->switched++;
			else
				sw->failed++;
			if (sw->switched + sw->failed >= sw->expected)
				swap_report(m);
			break;
		}
	}
}

static void
file_id(const struct stat *st, struct file_id *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
}

static int
same_file(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The database gauges, for the file now served; swapped: one more swap. */
static void
publish_database(struct master *m, const struct store_info *info,
    int swapped)
{
	struct metrics_master *mm;

	if (m->metrics == NULL)
		return;
	mm = metrics_master(m->metrics);
	metrics_set(&mm->generation, m->swap.generation);
	metrics_set(&mm->quotes, info->nquotes);
	metrics_set(&mm->authors, info->nauthors);
	metrics_set(&mm->loaded_at, (uint64_t)time(NULL));
	if (swapped)
		metrics_add(&mm->swaps_ok, 1);
}

/*
 * Opens the database at the path and forks a checker of the very file it
 * opened; the verdict comes to the loop (finish_check). Unless force, a
 * file that looks the same as the one last examined is not checked again.
 */
static void
swap_database(struct master *m, const char *why, int force)
{
	const char *path = m->config->database;
	struct stat st;
	int fd, rc;

	if (m->stopping != RUNNING)
		return;
	if (m->check != NULL) {
		/* The path may name yet another file by the time this check
		 * ends: look again then. */
		m->check_again = 1;
		m->check_force |= force;
		return;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st)) {
		log_warn("%s: %s", why, path);
		log_warnx("new database refused; still serving generation %u",
		    m->swap.generation);
		if (fd >= 0)
			close(fd);
		return;
	}
	file_id(&st, &m->check_id);
	if (!force && same_file(&m->check_id, &m->seen_id)) {
		close(fd);
		return;
	}
	m->seen_id = m->check_id; /* checked once is enough for this file */
	if ((rc = check_start(fd, &m->check)) != 0) {
		log_warnx("%s: %s: cannot start the checker: %s; still serving "
			  "generation %u", why, path, strerror(rc),
		    m->swap.generation);
		close(fd);
		return;
	}
	m->check_fd = fd;
	m->check_why = why;
	m->check_deadline = now_ms() + (long)m->config->check_timeout * 1000;
	log_debug("%s: checking %s (checker pid %ld)", why, path,
	    (long)check_pid(m->check));
}

/*
 * Acts on a checker's verdict: a bad file is refused with the reason,
 * and the workers keep serving what they have; a good one becomes the
 * database every worker switches to.
 */
static void
finish_check(struct master *m, int timed_out)
{
	struct swap *sw = &m->swap;
	struct check_verdict v;

	if (timed_out)
		check_abort(m->check, &v);
	else
		check_finish(m->check, &v);
	m->check = NULL;
	if (!v.ok) {
		log_warnx("%s: %s: %s; new database refused; still serving "
			  "generation %u", m->check_why, m->config->database,
		    v.why, sw->generation);
		close(m->check_fd);
		if (m->metrics != NULL)
			metrics_add(&metrics_master(m->metrics)->swaps_refused,
			    1);
	} else {
		/* Same descriptor number, new file: workers always find the
		 * current database at /proc/MASTER/fd/db_fd. */
		if (dup3(m->check_fd, m->db_fd, O_CLOEXEC) < 0)
			fatal("dup3");
		close(m->check_fd);
		m->db_id = m->check_id;
		if (sw->started != 0)
			swap_report(m); /* a swap still waiting for reports */
		sw->generation++;
		sw->quotes = v.info.nquotes;
		sw->authors = v.info.nauthors;
		publish_database(m, &v.info, 1);
		sw->started = now_ms();
		sw->switched = sw->failed = 0;
		/* Retiring workers are stopping: they take no new database. */
		sw->expected = 0;
		for (int i = 0; i < m->nprocs; i++) {
			struct proc *p = &m->procs[i];

			if (p->state != PROC_ACTIVE || p->pid == 0)
				continue;
			if (sigqueue(p->pid, WORKER_SIGRELOAD,
			    (union sigval){.sival_int = (int)sw->generation}) ==
			    0)
				sw->expected++;
			else
				log_warn("worker %d: cannot ask it to reload",
				    i);
		}
		if (sw->expected == 0)
			swap_report(m);
	}
	m->check_fd = -1;
	if (m->check_again) {
		int force = m->check_force;

		m->check_again = m->check_force = 0;
		swap_database(m, "database file replaced", force);
	}
	reload_done(m);
}

/* Watches the database's directory: quotes-import renames onto the path. */
static void
watch_database(struct master *m)
{
	char dir[PATH_MAX], name[PATH_MAX];

	m->inotify_fd = -1;
	if (!m->config->watch_database)
		return;
	snprintf(dir, sizeof(dir), "%s", m->config->database);
	snprintf(name, sizeof(name), "%s", m->config->database);
	snprintf(m->db_name, sizeof(m->db_name), "%s", basename(name));
	if ((m->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		log_warn("inotify: not watching %s", m->config->database);
		return;
	}
	if (inotify_add_watch(m->inotify_fd, dirname(dir),
	    IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		log_warn("inotify: not watching %s", m->config->database);
		close(m->inotify_fd);
		m->inotify_fd = -1;
	}
}

static void
read_inotify(struct master *m)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	int changed = 0;
	ssize_t n;

	while ((n = read(m->inotify_fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			/* After an overflow, any event may have been lost. */
			if ((ev->mask & IN_Q_OVERFLOW) ||
			    (ev->len > 0 && strcmp(ev->name, m->db_name) == 0))
				changed = 1;
		}
	if (changed)
		swap_database(m, "database file replaced", 0);
}

/*
 * SIGTTIN adds a worker in the lowest free slot; SIGTTOU retires the
 * highest one, which finishes its calls first. Never fewer than one.
 */
static void
scale(struct master *m, int delta)
{
	int i;

	if (m->stopping != RUNNING)
		return;
	if (delta > 0) {
		for (i = 0; i < m->nprocs && m->procs[i].state != PROC_FREE;
		     i++)
			;
		if (i == m->nprocs) {
			log_warnx("SIGTTIN: already %d workers", m->nworkers);
			return;
		}
		m->nworkers++;
		log_info("workers: %d -> %d", m->nworkers - 1, m->nworkers);
		m->procs[i].backoff_ms = 0;
		spawn(m, i);
		return;
	}
	if (m->nworkers <= 1) {
		log_warnx("SIGTTOU: keeping the last worker");
		return;
	}
	for (i = m->nprocs - 1; m->procs[i].state != PROC_ACTIVE; i--)
		;
	m->nworkers--;
	log_info("workers: %d -> %d, retiring worker %d", m->nworkers + 1,
	    m->nworkers, i);
	m->procs[i].respawn_at = 0;
	if (m->procs[i].pid != 0) {
		m->procs[i].state = PROC_RETIRING;
		kill(m->procs[i].pid, SIGTERM);
	} else {
		m->procs[i].state = PROC_FREE;
	}
}

static void
handle_signal(struct master *m, int sig)
{
	switch (sig) {
	case SIGCHLD:
		reap(m);
		break;
	case SIGTERM:
	case SIGINT:
		begin_stop(m, STOP_GRACEFUL, 0);
		break;
	case SIGQUIT:
		begin_stop(m, STOP_NOW, 0);
		break;
	case SIGHUP:
		notify("RELOADING=1");
		tls_reload(m->config);
		m->reloading = 1;
		swap_database(m, "SIGHUP", 1);
		reload_done(m);
		break;
	case SIGTTIN:
		scale(m, 1);
		break;
	case SIGTTOU:
		scale(m, -1);
		break;
	case SIGUSR1:
		/* logrotate has moved the file: everyone opens it anew. */
		if (log_reopen() != 0)
			log_warn("reopening the log");
		signal_all(m, SIGUSR1);
		break;
	}
}

static int
open_pidfile(struct master *m)
{
	const char *path = m->config->pidfile;
	char buf[32];
	int fd, n;

	m->pidfile_fd = -1;
	if (path[0] == '\0')
		return 0;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		log_error("pidfile %s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = (int)read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_errorx("pidfile %s is locked: quoterd is already running "
			  "(pid %s)", path, buf);
		close(fd);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		log_warn("pidfile %s", path);
		close(fd);
		return -1;
	}
	m->pidfile_fd = fd;
	return 0;
}

/*
 * The --daemon parent: waits for the daemon's word, a NUL byte once it
 * serves or the reason it gave up, and exits 0 or 1 accordingly. It
 * never waits forever: workers may fail to start for good.
 */
static void __attribute__((noreturn))
daemon_parent(int fd, long wait_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	char why[256];
	ssize_t n = 0, r;
	long deadline = now_ms() + wait_ms;
	int ready;

	while ((size_t)n < sizeof(why) - 1) {
		long left = deadline - now_ms();

		ready = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready == 0) {
			fprintf(stderr, "quoterd: the daemon did not report "
					"serving within %ld s\n",
			    wait_ms / 1000);
			_exit(1);
		}
		if ((r = read(fd, why + n, sizeof(why) - 1 - (size_t)n)) < 0 &&
		    errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
		if (why[0] == '\0')
			_exit(0);
	}
	why[n] = '\0';
	fprintf(stderr, "quoterd: %s\n", n > 0 ? why
	    : "the daemon stopped before serving (see its log)");
	_exit(1);
}

/*
 * Detaches from the terminal. The parent waits until the daemon serves
 * (or fails) so that its exit status means something to whoever ran it.
 */
static int
daemonize(struct master *m)
{
	int fds[2], null;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		close(fds[1]);
		daemon_parent(fds[0], (long)m->config->start_timeout * 1000 +
		    DAEMON_PARENT_GRACE_MS);
	}
	close(fds[0]);
	if (setsid() < 0)
		fatal("setsid");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	/* Never the launching terminal: a log on stderr goes to syslog. */
	if (log_to_stderr())
		log_open("syslog");
	if ((null = open("/dev/null", O_RDWR)) >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (chdir("/") != 0)
		log_warn("chdir /");
	m->notify_fd = fds[1];
	m->start_deadline = now_ms() + (long)m->config->start_timeout * 1000;
	return 0;
}

/*
 * A worker that stops closes its SO_REUSEPORT listener, and the kernel
 * resets connections still queued on it unless tcp_migrate_req moves
 * them to another worker's listener (Linux 5.14 and later).
 */
static void
check_migrate_req(const struct config *c)
{
	char value = '1';
	int fd;

	if (strncmp(c->listen, "unix:", 5) == 0 ||
	    (fd = open("/proc/sys/net/ipv4/tcp_migrate_req",
		 O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (read(fd, &value, 1) == 1 && value == '0')
		log_info("net.ipv4.tcp_migrate_req is 0: connections queued on "
			 "a stopping worker will be reset; setting it to 1 "
			 "hands them to the others");
	close(fd);
}

/*
 * Each connection is a descriptor in some worker, and the usual soft
 * limit (1024) is a few hundred clients a worker away: take what the
 * hard limit allows, for the master and the workers it forks.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("getrlimit");
		return;
	}
	if (rl.rlim_cur >= rl.rlim_max) {
		log_info("descriptors: %llu a process",
		    (unsigned long long)rl.rlim_cur);
		return;
	}
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	/* An unlimited hard limit is still capped by fs.nr_open. */
	if (rl.rlim_cur == RLIM_INFINITY) {
		FILE *f = fopen("/proc/sys/fs/nr_open", "re");
		unsigned long long nr = 0;

		if (f != NULL) {
			if (fscanf(f, "%llu", &nr) != 1)
				nr = 0;
			fclose(f);
		}
		rl.rlim_cur = nr > was ? (rlim_t)nr : was;
	}
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("descriptors: cannot raise %llu to %llu",
		    (unsigned long long)was, (unsigned long long)rl.rlim_max);
		return;
	}
	log_info("descriptors: %llu a process (raised from %llu)",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)was);
}

int
master_run(const struct config *c, int detach,
    const struct master_start *start)
{
	struct master m;
	struct stat st;
	sigset_t set, blocked;
	int fds[2];
	long now, timeout;

	memset(&m, 0, sizeof(m));
	m.config = c;
	m.notify_fd = -1;
	m.listen_fd = -1;
	/* A log reader or the --daemon parent that went away must not
	 * take the master down with it: writes fail with EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);
	if (detach)
		daemonize(&m);
	if (open_pidfile(&m) != 0)
		return 1;
	raise_nofile();

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTTIN);
	sigaddset(&set, SIGTTOU);
	sigaddset(&set, SIGUSR1);
	/* Workers inherit this mask: their signal thread waits for these. */
	blocked = set;
	sigaddset(&blocked, WORKER_SIGRELOAD);
	if (sigprocmask(SIG_BLOCK, &blocked, NULL) != 0)
		fatal("sigprocmask");
	if ((m.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd");
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("pipe");
	m.status_rd = fds[0];
	m.status_wr = fds[1];
	m.db_fd = start->db_fd;
	m.check_fd = -1;
	m.metrics_fd = start->metrics_fd;
	if (fstat(m.db_fd, &st) != 0)
		fatal("fstat %s", c->database);
	file_id(&st, &m.db_id);
	m.seen_id = m.db_id;
	watch_database(&m);
	if (strncmp(c->listen, "unix:", 5) == 0) {
		char err[256];

		if ((m.listen_fd = handoff_listen(c->listen + 5, c->unix_mode,
		    c->unix_gid, err, sizeof(err))) < 0) {
			log_errorx("cannot listen on %s: %s", c->listen, err);
			return 1;
		}
	}

	m.nprocs = MAX_WORKERS;
	m.nworkers = config_workers(c);
	if ((m.procs = calloc((size_t)m.nprocs, sizeof(*m.procs))) == NULL)
		fatal("calloc");
	if ((m.sb = scoreboard_create(m.nprocs)) == NULL)
		fatal("scoreboard");
	for (int i = 0; i < m.nprocs; i++)
		m.procs[i].chan = m.procs[i].counters = -1;
	if (m.metrics_fd >= 0) {
		int rc = metrics_create(m.nprocs, config_threads(c), &m.metrics);

		if (rc != 0) {
			errno = rc;
			fatal("metrics");
		}
		publish_database(&m, &start->db, 0);
		spawn_metrics(&m);
	}
	log_info("starting %d workers on %s, database %s", m.nworkers,
	    c->listen, c->database);
	check_migrate_req(c);
	for (int i = 0; i < m.nworkers; i++)
		spawn(&m, i);

	for (;;) {
		struct pollfd pfd[5] = {{m.sigfd, POLLIN, 0},
		    {m.status_rd, POLLIN, 0}, {m.inotify_fd, POLLIN, 0},
		    {m.listen_fd, POLLIN, 0}, {-1, POLLIN, 0}};
		struct signalfd_siginfo si;

		if (m.stopping != RUNNING && running(&m) == 0)
			break;
		now = now_ms();
		timeout = -1;
		for (int i = 0; i < m.nprocs; i++) {
			struct proc *p = &m.procs[i];

			if (p->state == PROC_ACTIVE && p->pid == 0 &&
			    p->respawn_at != 0 && m.stopping == RUNNING) {
				if (p->respawn_at <= now)
					spawn(&m, i);
				else if (timeout < 0 ||
				    p->respawn_at - now < timeout)
					timeout = p->respawn_at - now;
			}
		}
		if (m.metrics_respawn_at != 0 && m.stopping == RUNNING) {
			if (m.metrics_respawn_at <= now)
				spawn_metrics(&m);
			else if (timeout < 0 || m.metrics_respawn_at - now < timeout)
				timeout = m.metrics_respawn_at - now;
		}
		if (m.stopping != RUNNING) {
			if (now >= m.stop_deadline) {
				log_warnx("workers still running %d s after "
					  "stop: killing them",
				    c->drain_time + c->shutdown_timeout +
					STOP_GRACE_MS / 1000);
				signal_all(&m, SIGKILL);
				m.stop_deadline = now + BACKOFF_MAX_MS;
				m.status = 1;
			}
			timeout = m.stop_deadline - now;
			if (m.listen_fd >= 0 && now >= m.listener_close_at)
				close_listener(&m);
			else if (m.listen_fd >= 0 &&
			    m.listener_close_at - now < timeout)
				timeout = m.listener_close_at - now;
		}
		if (m.notify_fd >= 0 && m.stopping == RUNNING) {
			if (now >= m.start_deadline) {
				char why[128];

				snprintf(why, sizeof(why), "workers did not "
				    "start within %d s (see the log): stopping",
				    c->start_timeout);
				log_warnx("%s", why);
				tell_parent(&m, why);
				begin_stop(&m, STOP_NOW, 1);
			} else if (timeout < 0 ||
			    m.start_deadline - now < timeout) {
				timeout = m.start_deadline - now;
			}
		}
		if (m.swap.started != 0) {
			long left = m.swap.started + SWAP_REPORT_MS - now;

			if (left <= 0) {
				swap_report(&m);
			} else if (timeout < 0 || left < timeout) {
				timeout = left;
			}
		}
		if (m.check != NULL) {
			if (m.check_deadline <= now) {
				finish_check(&m, 1);
				continue;
			}
			pfd[4].fd = check_fd(m.check);
			if (timeout < 0 || m.check_deadline - now < timeout)
				timeout = m.check_deadline - now;
		}
		if (m.stopping == RUNNING) {
			long next = replace_sick(&m);

			if (next >= 0 && (timeout < 0 || next < timeout))
				timeout = next;
		}
		if (m.stopping == RUNNING && c->worker_timeout > 0) {
			long next = check_heartbeats(&m);

			if (timeout < 0 || next < timeout)
				timeout = next;
		}
		if (m.accept_paused_until > now) {
			pfd[3].fd = -1;
			if (timeout < 0 || m.accept_paused_until - now < timeout)
				timeout = m.accept_paused_until - now;
		}
		if (poll(pfd, 5, (int)timeout) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (pfd[1].revents & POLLIN)
			read_status(&m);
		if (pfd[2].revents & POLLIN)
			read_inotify(&m);
		if ((pfd[3].revents & POLLIN) && m.listen_fd >= 0)
			accept_connections(&m);
		if (pfd[4].revents != 0 && m.check != NULL)
			finish_check(&m, 0);
		while (read(m.sigfd, &si, sizeof(si)) == sizeof(si))
			handle_signal(&m, (int)si.ssi_signo);
	}

	if (m.pidfile_fd >= 0) {
		unlink(c->pidfile);
		close(m.pidfile_fd);
	}
	if (m.inotify_fd >= 0)
		close(m.inotify_fd);
	close_listener(&m);
	close(m.db_fd);
	if (m.metrics_pid != 0) {
		kill(m.metrics_pid, SIGKILL);
		waitpid(m.metrics_pid, NULL, 0);
	}
	if (m.metrics_fd >= 0)
		close(m.metrics_fd);
	metrics_close(m.metrics);
	scoreboard_destroy(m.sb);
	free(m.procs);
	log_info("stopped");
	return m.status;
}
