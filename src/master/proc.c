/*
 * The workers' lives, and the metrics process's: every decision to start,
 * restart, replace, add, retire or kill one is made here, so that "why
 * did the master respawn" has one file to read. A worker that dies is
 * restarted, after a pause that doubles while it crash-loops; one that
 * exits EXIT_FATAL stops quoterd instead; one whose heartbeat goes stale
 * is killed; one that reports itself sick is replaced beside itself.
 */
#include "master_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "httpd.h"
#include "log.h"
#include "notify.h"

/* A worker that dies sooner than this after its start is crash-looping. */
#define STABLE_MS      5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* Beyond shutdown_timeout, how long workers get before SIGKILL. */
#define STOP_GRACE_MS 5000
/* A sick worker's replacement starts no sooner than this after it. */
#define SICK_MIN_MS 1000
/* A sick worker is told to stop once its replacement serves, or after
 * this if it does not. */
#define SICK_WAIT_MS 10000
/* Worker slots; a slot's index is the worker's number. */
#define MAX_WORKERS 1024

/* The worker slots, the scoreboard and, with metrics on, their counters. */
void
proc_init(struct master *m)
{
	const struct config *c = m->config;

	m->nprocs = MAX_WORKERS;
	m->nworkers = config_workers(c);
	if ((m->procs = calloc((size_t)m->nprocs, sizeof(*m->procs))) == NULL)
		fatal("calloc");
	if ((m->sb = scoreboard_create(m->nprocs)) == NULL)
		fatal("scoreboard");
	for (int i = 0; i < m->nprocs; i++)
		m->procs[i].chan = m->procs[i].counters =
		    m->procs[i].waits_for = -1;
	if (c->conn_cap > 0)
		log_info("max_connections: %d a worker", c->conn_cap);
	else
		log_info("max_connections: none (the descriptor limit leaves "
			 "no room for connections beyond the reserve of %d)",
		    CONFIG_FD_RESERVE);
	if (m->metrics_fd >= 0) {
		int rc =
		    metrics_create(m->nprocs, config_threads(c), &m->metrics);

		if (rc != 0) {
			errno = rc;
			fatal("metrics");
		}
	}
}

int
proc_running(const struct master *m)
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
		    (uint64_t)proc_running(m));
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
	if (m->certs.check != NULL)
		close(check_fd(m->certs.check));
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
			used =
			    m->procs[i].pid != 0 && m->procs[i].counters == r;
		if (!used)
			return r;
	}
	return -1;
}

/*
 * A scoreboard slot for a new worker: one no running worker owns. Not
 * the index's own: a sick worker goes on beating in its slot while it
 * retires from another index, and its replacement, if it shared the
 * slot, would look alive to the master while it hung.
 */
static int
free_score(const struct master *m)
{
	for (int r = 0; r < m->nprocs; r++) {
		int used = 0;

		for (int i = 0; i < m->nprocs && !used; i++)
			used = m->procs[i].pid != 0 && m->procs[i].score == r;
		if (!used)
			return r;
	}
	return -1;
}

/* The metrics process (httpd.h); restarted if it dies. */
void
proc_spawn_metrics(struct master *m)
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
		close(m->db_fd);
		httpd_main(m->metrics_fd, m->metrics);
	}
	m->metrics_pid = pid;
	log_info("metrics on http://%s/metrics, pid %ld",
	    m->config->metrics_listen, (long)pid);
}

void
proc_spawn(struct master *m, int index)
{
	struct proc *p = &m->procs[index];
	pid_t pid;
	int chan[2] = {-1, -1}, rc;

	p->state = PROC_ACTIVE;
	p->respawn_at = 0;
	p->ready = 0;
	p->hung = p->sick = 0;
	p->counters = m->metrics != NULL ? free_counters(m) : -1;
	metrics_slot_taken(m->metrics, p->counters);
	/* Never -1: there are as many slots as indexes, and each running
	 * worker owns one. */
	p->score = free_score(m);
	p->handed = 0;
	p->retire_by = 0;
	/* The worker beats once it serves; until then it is not judged. */
	scoreboard_reset(proc_slot(m, p), 0);
	if ((rc = channel_open(chan)) != 0 || (pid = fork()) < 0) {
		if (rc == 0)
			rc = errno;
		log_warnx("starting worker %d: %s", index, strerror(rc));
		if (chan[0] >= 0) {
			close(chan[0]);
			close(chan[1]);
		}
		p->respawn_at = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
		close(chan[0]);
		close_master_fds(m);
		if (m->metrics_fd >= 0)
			close(m->metrics_fd);
		/* The worker maps the checked file from its copy of db_fd,
		 * then closes it, so that it pins no file after a swap. */
		worker_main(m->config, index, chan[1], m->db_fd,
		    proc_slot(m, p),
		    metrics_thread(m->metrics, p->counters, 0));
	}
	close(chan[1]);
	/* The master never waits on a worker. */
	if (fcntl(chan[0], F_SETFL, O_NONBLOCK) != 0)
		log_warn("worker %d: channel", index);
	p->chan = chan[0];
	p->pid = pid;
	/* The slot is the child's now (it says so itself too): only the
	 * pid, since the child may have beaten and counted already. */
	atomic_store(&proc_slot(m, p)->pid, (int)pid);
	p->started = now_ms();
	count_workers(m);
	log_info("worker %d started, pid %ld", index, (long)pid);
}

/*
 * Asks a worker to finish its calls and stop. One that cannot take the
 * message (its channel full or gone: it is stuck or dying) gets SIGTERM,
 * which means the same to it.
 */
static void
ask_stop(struct proc *p)
{
	if (channel_send(p->chan, CHAN_STOP, 0, NULL, 0, -1) != 0)
		kill(p->pid, SIGTERM);
}

/*
 * Retires a worker: it finishes its calls and exits, and is killed if it
 * has not within the time a stop may take.
 */
static void
retire(struct master *m, struct proc *p)
{
	const struct config *c = m->config;

	p->state = PROC_RETIRING;
	p->waits_for = -1;
	p->retire_by = now_ms() +
	    (long)(c->drain_time + c->shutdown_timeout) * 1000 + STOP_GRACE_MS;
	ask_stop(p);
}

int
proc_send_active(struct master *m, enum channel_type type, uint32_t gen, int fd,
    const char *what)
{
	int sent = 0, rc;

	/* Retiring workers are stopping: they take nothing new. */
	for (int i = 0; i < m->nprocs; i++) {
		struct proc *p = &m->procs[i];

		if (p->pid == 0 || p->state != PROC_ACTIVE)
			continue;
		if ((rc = channel_send(p->chan, type, gen, NULL, 0, fd)) == 0)
			sent++;
		else
			log_warnx("worker %d: cannot send it %s: %s", i, what,
			    channel_strerror(rc));
	}
	return sent;
}

/*
 * Every process opens its log file again: workers by a message, so that
 * it comes before any stop sent after it (a signal and a message could be
 * read in either order, and a worker's last lines go to the old file).
 */
void
proc_reopen_logs(struct master *m)
{
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].pid != 0 &&
		    channel_send(m->procs[i].chan, CHAN_REOPEN, 0, NULL, 0,
			-1) != 0)
			kill(m->procs[i].pid, SIGUSR1);
	if (m->metrics_pid != 0)
		kill(m->metrics_pid, SIGUSR1);
}

void
proc_signal_all(struct master *m, int sig)
{
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].pid != 0)
			kill(m->procs[i].pid, sig);
	if (m->metrics_pid != 0)
		kill(m->metrics_pid, sig);
}

void
proc_stop(struct master *m, enum stop_mode mode, int status)
{
	if (m->stopping == RUNNING || mode == STOP_NOW) {
		log_info(mode == STOP_NOW ? "stopping now"
					  : "stopping: workers finish their "
					    "calls");
		if (mode == STOP_NOW) {
			proc_signal_all(m, SIGKILL);
		} else {
			for (int i = 0; i < m->nprocs; i++)
				if (m->procs[i].pid != 0) {
					/* The stop's deadline is now every
					 * worker's: a sick one waiting for its
					 * replacement had a shorter one. */
					m->procs[i].waits_for = -1;
					m->procs[i].retire_by = 0;
					ask_stop(&m->procs[i]);
				}
			if (m->metrics_pid != 0)
				kill(m->metrics_pid, SIGTERM);
		}
		m->stop_deadline = now_ms() +
		    (long)(m->config->drain_time +
			m->config->shutdown_timeout) *
			1000 +
		    STOP_GRACE_MS;
		/* The manager's stop timeout then covers a long drain_time. */
		notify("STOPPING=1\nEXTEND_TIMEOUT_USEC=%ld",
		    (m->stop_deadline - now_ms() + STOP_GRACE_MS) * 1000);
	}
	m->stopping = mode;
	if (status > m->status)
		m->status = status;
	swap_abort_check(m);
	/* Workers still serve while they drain: so does a Unix listener. */
	if (mode == STOP_NOW || m->config->drain_time == 0)
		listener_close(m);
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
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

void
proc_reap(struct master *m)
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
			if (m->certs.check != NULL &&
			    pid == check_pid(m->certs.check))
				check_reaped(m->certs.check, status);
			if (pid == m->metrics_pid) {
				m->metrics_pid = 0;
				describe_exit(status, how, sizeof(how));
				if (m->stopping != RUNNING)
					continue;
				log_warnx("metrics process (pid %ld) %s; "
					  "restarting it",
				    (long)pid, how);
				m->metrics_respawn_at =
				    now_ms() + BACKOFF_MAX_MS / 10;
			}
			continue;
		}
		/* What it said before it went still counts. */
		proc_read_channel(m, index);
		p->pid = 0;
		count_workers(m);
		/* Calls it had started and not finished never will be. */
		metrics_worker_gone(m->metrics, p->counters);
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

			snprintf(why, sizeof(why),
			    "worker %d (pid %ld) %s: it "
			    "cannot serve, so quoterd stops",
			    index, (long)pid, how);
			log_errorx("%s", why);
			daemon_tell_parent(m, why);
			proc_stop(m, STOP_GRACEFUL, 1);
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
			metrics_add(&metrics_master(m->metrics)
					 ->worker_restarts,
			    1);
		p->respawn_at = now_ms() + p->backoff_ms;
	}
}

/*
 * Kills (SIGKILL) each serving worker whose heartbeat is older than
 * worker_timeout: stopped, or hung in a way no signal of ours would
 * mend. proc_reap() then starts another in its place. Returns how long
 * until the next check is due, in ms.
 */
long
proc_check_heartbeats(struct master *m)
{
	long limit = (long)m->config->worker_timeout * 1000, age;

	for (int i = 0; i < m->nprocs; i++) {
		struct proc *p = &m->procs[i];

		/* A retiring worker too: while its calls finish it beats, and
		 * one that hangs would hold them for ever. */
		if (p->state == PROC_FREE || p->pid == 0 || !p->ready ||
		    p->hung)
			continue;
		age = scoreboard_age(proc_slot(m, p));
		if (age <= limit)
			continue;
		log_warnx("worker %d (pid %ld) has not answered for %ld ms: "
			  "killing it",
		    i, (long)p->pid, age);
		kill(p->pid, SIGKILL);
		p->hung = 1;
	}
	return limit / 4 < 1000 ? (limit / 4 > 100 ? limit / 4 : 100) : 1000;
}

/*
 * Replaces each worker that reported itself sick: the worker moves to a
 * free slot to retire there (finishing its calls, as after SIGTTOU, once
 * its replacement serves) and a new one starts in its slot at once. Not
 * sooner than SICK_MIN_MS after the sick one started, so that a cause
 * that lasts (a flood of connections holding every descriptor) cannot
 * make it spin. Returns ms until one is due, or -1.
 */
long
proc_replace_sick(struct master *m)
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
			ask_stop(p);
			p->sick = 0;
			continue;
		}
		log_info("worker %d (pid %ld) retires in slot %d; a new worker "
			 "%d starts",
		    i, (long)p->pid, spare, i);
		/*
		 * Its slot goes with it: its replacement gets another. It is
		 * told to stop once the replacement serves: until then it
		 * keeps what it can do (its connections, and on TCP its
		 * listener, which it gives up at once when told), so that no
		 * client finds no one listening in between.
		 */
		m->procs[spare] = *p;
		m->procs[spare].state = PROC_RETIRING;
		m->procs[spare].waits_for = i;
		m->procs[spare].retire_by = now + SICK_WAIT_MS;
		p->chan = -1;
		p->pid = 0;
		p->backoff_ms = 0;
		proc_spawn(m, i);
		/* At once: the loop polls the new worker's channel from its
		 * next turn, and its READY is what the sick one waits for. */
		next = 0;
	}
	return next;
}

/*
 * Kills (SIGKILL) each retiring worker still alive past the time a stop
 * may take (drain_time, shutdown_timeout and a grace), whatever its
 * heartbeat says: it holds connections that no longer get new calls.
 * Returns ms until the next such deadline, or -1.
 */
long
proc_retire_due(struct master *m, long now)
{
	long next = -1;

	for (int i = 0; i < m->nprocs; i++) {
		struct proc *p = &m->procs[i];

		if (p->state != PROC_RETIRING || p->pid == 0 ||
		    p->retire_by == 0)
			continue;
		if (now < p->retire_by) {
			next = sooner(next, p->retire_by - now);
			continue;
		}
		if (p->waits_for >= 0) {
			log_warnx("worker %d (pid %ld): its replacement does "
				  "not "
				  "serve yet; retiring it anyway",
			    i, (long)p->pid);
			retire(m, p);
			next = sooner(next, p->retire_by - now);
			continue;
		}
		log_warnx("worker %d (pid %ld) is still retiring %d s after "
			  "it was told to: killing it",
		    i, (long)p->pid,
		    m->config->drain_time + m->config->shutdown_timeout +
			STOP_GRACE_MS / 1000);
		kill(p->pid, SIGKILL);
		p->retire_by = 0;
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
	daemon_tell_parent(m, "");
}

/*
 * What worker index has said since the last look. A channel belongs to
 * one worker, so a message is that worker's; a channel that closes is a
 * worker that has gone (its exit is reaped apart).
 */
void
proc_read_channel(struct master *m, int index)
{
	struct proc *p = &m->procs[index];
	struct channel_msg msg;
	int fd, rc;

	while (p->chan >= 0 && p->pid != 0) {
		if ((rc = channel_recv(p->chan, &msg, &fd)) == CHANNEL_EMPTY)
			return;
		if (rc != 0 && rc != CHANNEL_EBADMSG && rc != CHANNEL_ENOFD) {
			/* Gone, or failing: polling it again would spin. */
			if (rc != CHANNEL_CLOSED)
				log_warnx("worker %d (pid %ld): %s", index,
				    (long)p->pid, channel_strerror(rc));
			close(p->chan);
			p->chan = -1;
			return;
		}
		if (rc != 0) {
			log_warnx("worker %d (pid %ld): %s", index,
			    (long)p->pid, channel_strerror(rc));
			continue;
		}
		switch (msg.type) {
		case CHAN_SICK:
			if (p->state == PROC_ACTIVE && !p->sick) {
				p->sick = 1;
				/* It has said why (accept4() failed, or it
				 * is full). */
				log_warnx("worker %d (pid %ld) asks to be "
					  "replaced: replacing it",
				    index, (long)p->pid);
			}
			break;
		case CHAN_READY:
			p->ready = 1;
			log_debug("worker %d ready", index);
			/* A sick worker it replaces can stop now. */
			for (int j = 0; j < m->nprocs; j++)
				if (m->procs[j].state == PROC_RETIRING &&
				    m->procs[j].pid != 0 &&
				    m->procs[j].waits_for == index)
					retire(m, &m->procs[j]);
			announce(m);
			break;
		case CHAN_TLS_DONE:
			certs_worker_reported(m, msg.generation);
			break;
		case CHAN_SWAPPED:
		case CHAN_SWAP_FAILED:
			swap_worker_reported(m, index, msg.type == CHAN_SWAPPED,
			    msg.generation);
			break;
		default:
			log_warnx("worker %d (pid %ld): an unexpected message "
				  "(type %u)",
			    index, (long)p->pid, msg.type);
			if (fd >= 0)
				close(fd);
			break;
		}
	}
}

/*
 * SIGTTIN adds a worker in the lowest free slot; SIGTTOU retires the
 * highest one, which finishes its calls first. Never fewer than one.
 */
void
proc_scale(struct master *m, int delta)
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
		proc_spawn(m, i);
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
		retire(m, &m->procs[i]);
	} else {
		m->procs[i].state = PROC_FREE;
	}
}

/*
 * Starts each worker, and the metrics process, whose restart is due.
 * Returns ms until the next one is, or -1.
 */
long
proc_respawn(struct master *m, long now)
{
	long timeout = -1;

	if (m->stopping != RUNNING)
		return -1;
	for (int i = 0; i < m->nprocs; i++) {
		struct proc *p = &m->procs[i];

		if (p->state != PROC_ACTIVE || p->pid != 0 ||
		    p->respawn_at == 0)
			continue;
		if (p->respawn_at <= now)
			proc_spawn(m, i);
		else
			timeout = sooner(timeout, p->respawn_at - now);
	}
	if (m->metrics_respawn_at != 0) {
		if (m->metrics_respawn_at <= now)
			proc_spawn_metrics(m);
		else
			timeout = sooner(timeout, m->metrics_respawn_at - now);
	}
	return timeout;
}

/*
 * While stopping: kills the workers that outlive the stop's deadline and
 * closes a Unix listener once the drain is over. Returns ms until the
 * next deadline, or -1 when not stopping.
 */
long
proc_stop_due(struct master *m, long now)
{
	const struct config *c = m->config;
	long timeout;

	if (m->stopping == RUNNING)
		return -1;
	if (now >= m->stop_deadline) {
		log_warnx("workers still running %d s after stop: killing them",
		    c->drain_time + c->shutdown_timeout + STOP_GRACE_MS / 1000);
		proc_signal_all(m, SIGKILL);
		m->stop_deadline = now + BACKOFF_MAX_MS;
		m->status = 1;
	}
	timeout = m->stop_deadline - now;
	if (m->listen_fd >= 0 && now >= m->listener_close_at)
		listener_close(m);
	else if (m->listen_fd >= 0 && m->listener_close_at - now < timeout)
		timeout = m->listener_close_at - now;
	return timeout;
}

/* Once every worker has gone: the metrics process, and what they shared. */
void
proc_end(struct master *m)
{
	if (m->metrics_pid != 0) {
		kill(m->metrics_pid, SIGKILL);
		waitpid(m->metrics_pid, NULL, 0);
	}
	if (m->metrics_fd >= 0)
		close(m->metrics_fd);
	metrics_close(m->metrics);
	scoreboard_destroy(m->sb);
	free(m->procs);
}
