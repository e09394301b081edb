/*
 * The master's loop, after nginx's ngx_process_cycle.c: it waits on a
 * signalfd, each worker's channel, an inotify watch of the database's
 * directory, a Unix listener and the checkers' verdicts (database, TLS
 * files), and hands each to the file that decides what it means
 * (proc.c, swap.c, certs.c, reload.c, accept.c, daemon.c), until told to
 * stop. Signals stay blocked in the master; nothing runs in a handler,
 * so nothing races the loop.
 */
#include "master_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

/* The loop's own descriptors: signals, inotify, a Unix listener, the
 * database checker, the TLS checker. */
#define NFIXED 5

static void
handle_signal(struct master *m, const struct signalfd_siginfo *si)
{
	switch ((int)si->ssi_signo) {
	case SIGCHLD:
		proc_reap(m);
		break;
	case SIGTERM:
	case SIGINT:
		proc_stop(m, STOP_GRACEFUL, 0);
		break;
	case SIGQUIT:
		proc_stop(m, STOP_NOW, 0);
		break;
	case SIGHUP:
		reload_start(m, si);
		break;
	case SIGTTIN:
		proc_scale(m, 1);
		break;
	case SIGTTOU:
		proc_scale(m, -1);
		break;
	case SIGUSR1:
		/* logrotate has moved the file: everyone opens it anew. */
		if (log_reopen() != 0)
			log_warn("reopening the log");
		proc_reopen_logs(m);
		break;
	}
}

/* The signals the loop reads from its signalfd; workers inherit the
 * mask, and their control thread reads the ones they act on. */
static int
block_signals(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTTIN);
	sigaddset(&set, SIGTTOU);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		fatal("sigprocmask");
	if ((fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd");
	return fd;
}

int
master_run(const struct config *c, int detach, const struct master_start *start)
{
	struct master m;
	struct pollfd *pfd;
	int *owner; /* pfd[NFIXED + k] is worker owner[k]'s channel */
	nfds_t nfds;
	long now, timeout;

	memset(&m, 0, sizeof(m));
	m.config = c;
	m.notify_fd = -1;
	m.listen_fd = -1;
	/* A log reader or the --daemon parent that went away must not
	 * take the master down with it: writes fail with EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);
	if (detach)
		daemon_detach(&m);
	if (pidfile_open(&m) != 0)
		return 1;
	daemon_raise_nofile();

	m.sigfd = block_signals();
	m.db_fd = start->db_fd;
	m.metrics_fd = start->metrics_fd;
	swap_init(&m);
	if (listener_open(&m) != 0)
		return 1;
	proc_init(&m);
	/* The loop's descriptors: NFIXED of its own, then the channel of
	 * each running worker (only those: poll() refuses more entries than
	 * the descriptor limit, and there are more slots than workers). */
	pfd = calloc((size_t)m.nprocs + NFIXED, sizeof(*pfd));
	owner = calloc((size_t)m.nprocs, sizeof(*owner));
	if (pfd == NULL || owner == NULL)
		fatal("calloc");
	if (m.metrics != NULL) {
		swap_publish(&m, &start->db, 0);
		proc_spawn_metrics(&m);
	}
	log_info("starting %d workers on %s, database %s", m.nworkers,
	    c->listen, c->database);
	listener_check_migrate_req(c);
	for (int i = 0; i < m.nworkers; i++)
		proc_spawn(&m, i);

	for (;;) {
		struct signalfd_siginfo si;

		if (m.stopping != RUNNING && m.reload.active)
			reload_end(&m);
		if (m.stopping != RUNNING && proc_running(&m) == 0)
			break;
		pfd[0] = (struct pollfd){m.sigfd, POLLIN, 0};
		pfd[1] = (struct pollfd){m.inotify_fd, POLLIN, 0};
		pfd[2] = (struct pollfd){m.listen_fd, POLLIN, 0};
		pfd[3] = (struct pollfd){-1, POLLIN, 0};
		pfd[4] = (struct pollfd){-1, POLLIN, 0};
		nfds = NFIXED;
		for (int i = 0; i < m.nprocs; i++)
			if (m.procs[i].chan >= 0) {
				owner[nfds - NFIXED] = i;
				pfd[nfds++] =
				    (struct pollfd){m.procs[i].chan, POLLIN, 0};
			}
		now = now_ms();
		timeout = proc_respawn(&m, now);
		timeout = sooner(timeout, proc_stop_due(&m, now));
		timeout = sooner(timeout, daemon_start_due(&m, now));
		timeout = sooner(timeout, swap_due(&m, now));
		timeout = sooner(timeout, certs_due(&m, now));
		timeout = sooner(timeout, proc_retire_due(&m, now));
		if (m.check != NULL)
			pfd[3].fd = check_fd(m.check);
		if (m.certs.check != NULL)
			pfd[4].fd = check_fd(m.certs.check);
		if (m.stopping == RUNNING) {
			timeout = sooner(timeout, proc_replace_sick(&m));
			if (c->worker_timeout > 0)
				timeout =
				    sooner(timeout, proc_check_heartbeats(&m));
		}
		if (m.accept_paused_until > now) {
			pfd[2].fd = -1;
			timeout = sooner(timeout, m.accept_paused_until - now);
		}
		if (poll(pfd, nfds, (int)timeout) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		for (nfds_t k = NFIXED; k < nfds; k++)
			if (pfd[k].revents != 0)
				proc_read_channel(&m, owner[k - NFIXED]);
		if (pfd[1].revents & POLLIN)
			swap_read_inotify(&m);
		if ((pfd[2].revents & POLLIN) && m.listen_fd >= 0)
			listener_accept(&m);
		if (pfd[3].revents != 0 && m.check != NULL)
			swap_finish_check(&m, 0);
		if (pfd[4].revents != 0 && m.certs.check != NULL)
			certs_finish_check(&m, 0);
		while (read(m.sigfd, &si, sizeof(si)) == sizeof(si))
			handle_signal(&m, &si);
	}

	free(pfd);
	free(owner);
	pidfile_close(&m);
	listener_close(&m);
	swap_end(&m);
	certs_end(&m);
	reload_end(&m);
	proc_end(&m);
	log_info("stopped");
	return m.status;
}
