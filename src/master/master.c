/*
 * The master loop, after nginx's ngx_process_cycle.c: fork the workers,
 * then wait on a signalfd and the workers' readiness pipe, restarting
 * workers that die (with backoff when they crash-loop) until told to
 * stop. Signals stay blocked in the master; nothing runs in a handler.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

/* A worker that dies sooner than this after its start is crash-looping. */
#define STABLE_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* Beyond shutdown_timeout, how long workers get before SIGKILL. */
#define STOP_GRACE_MS 5000

struct proc {
	pid_t pid;      /* 0: not running */
	int ready;
	long started;   /* ms, monotonic */
	long respawn_at; /* ms, monotonic; 0: none due */
	int backoff_ms;
};

enum stop_mode { RUNNING, STOP_GRACEFUL, STOP_NOW };

struct master {
	const struct config *config;
	struct proc *procs;
	int nprocs;
	int sigfd;
	int ready_rd, ready_wr;
	int pidfile_fd;
	int notify_fd; /* --daemon: tells the waiting parent we serve */
	enum stop_mode stopping;
	long stop_deadline;
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

static void
spawn(struct master *m, int index)
{
	struct proc *p = &m->procs[index];
	pid_t pid, master_pid = getpid();

	p->respawn_at = 0;
	p->ready = 0;
	if ((pid = fork()) < 0) {
		log_warn("fork worker %d", index);
		p->respawn_at = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
		close(m->sigfd);
		close(m->ready_rd);
		if (m->pidfile_fd >= 0)
			close(m->pidfile_fd);
		if (m->notify_fd >= 0)
			close(m->notify_fd);
		worker_main(m->config, index, master_pid, m->ready_wr);
	}
	p->pid = pid;
	p->started = now_ms();
	log_info("worker %d started, pid %ld", index, (long)pid);
}

static void
signal_all(struct master *m, int sig)
{
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].pid != 0)
			kill(m->procs[i].pid, sig);
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
		    (long)m->config->shutdown_timeout * 1000 + STOP_GRACE_MS;
	}
	m->stopping = mode;
	if (status > m->status)
		m->status = status;
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
		if (p == NULL)
			continue;
		p->pid = 0;
		describe_exit(status, how, sizeof(how));
		if (m->stopping != RUNNING) {
			log_debug("worker %d (pid %ld) %s", index, (long)pid,
			    how);
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FATAL) {
			log_warnx("worker %d (pid %ld) %s: it cannot serve, "
				  "so quoterd stops", index, (long)pid, how);
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
		p->respawn_at = now_ms() + p->backoff_ms;
	}
}

/* Each worker writes its index to the pipe once it serves. */
static void
read_ready(struct master *m)
{
	int index, ready = 0;

	while (read(m->ready_rd, &index, sizeof(index)) == sizeof(index))
		if (index >= 0 && index < m->nprocs)
			m->procs[index].ready = 1;
	for (int i = 0; i < m->nprocs; i++)
		ready += m->procs[i].pid != 0 && m->procs[i].ready;
	if (m->announced || m->stopping != RUNNING || ready < m->nprocs)
		return;
	m->announced = 1;
	log_info("serving %s with %d workers", m->config->listen, ready);
	if (m->notify_fd >= 0) {
		if (write(m->notify_fd, "", 1) < 0)
			log_warn("daemon parent");
		close(m->notify_fd);
		m->notify_fd = -1;
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
		log_warnx("SIGHUP: reload is not supported yet");
		break;
	case SIGTTIN:
	case SIGTTOU:
		log_warnx("%s: scaling is not supported yet", strsignal(sig));
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
		log_warn("pidfile %s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = (int)read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_warnx("pidfile %s is locked: quoterd is already running "
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
 * Detaches from the terminal. The parent waits until the daemon serves
 * (or fails) so that its exit status means something to whoever ran it.
 */
static int
daemonize(struct master *m)
{
	int fds[2], null;
	char c;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		close(fds[1]);
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
	}
	close(fds[0]);
	if (setsid() < 0)
		fatal("setsid");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if ((null = open("/dev/null", O_RDWR)) >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (chdir("/") != 0)
		log_warn("chdir /");
	m->notify_fd = fds[1];
	return 0;
}

int
master_run(const struct config *c, int detach)
{
	struct master m;
	sigset_t set;
	int fds[2];
	long now, timeout;

	memset(&m, 0, sizeof(m));
	m.config = c;
	m.notify_fd = -1;
	if (detach)
		daemonize(&m);
	if (open_pidfile(&m) != 0)
		return 1;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTTIN);
	sigaddset(&set, SIGTTOU);
	/* Workers inherit this mask: their signal thread waits for it. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		fatal("sigprocmask");
	if ((m.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd");
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		fatal("pipe");
	m.ready_rd = fds[0];
	m.ready_wr = fds[1];

	m.nprocs = config_workers(c);
	if ((m.procs = calloc((size_t)m.nprocs, sizeof(*m.procs))) == NULL)
		fatal("calloc");
	log_info("starting %d workers on %s, database %s", m.nprocs,
	    c->listen, c->database);
	for (int i = 0; i < m.nprocs; i++)
		spawn(&m, i);

	for (;;) {
		struct pollfd pfd[2] = {{m.sigfd, POLLIN, 0},
		    {m.ready_rd, POLLIN, 0}};
		struct signalfd_siginfo si;

		if (m.stopping != RUNNING && running(&m) == 0)
			break;
		now = now_ms();
		timeout = -1;
		for (int i = 0; i < m.nprocs; i++) {
			struct proc *p = &m.procs[i];

			if (p->pid == 0 && p->respawn_at != 0 &&
			    m.stopping == RUNNING) {
				if (p->respawn_at <= now)
					spawn(&m, i);
				else if (timeout < 0 ||
				    p->respawn_at - now < timeout)
					timeout = p->respawn_at - now;
			}
		}
		if (m.stopping != RUNNING) {
			if (now >= m.stop_deadline) {
				log_warnx("workers still running %d s after "
					  "stop: killing them",
				    c->shutdown_timeout + STOP_GRACE_MS / 1000);
				signal_all(&m, SIGKILL);
				m.stop_deadline = now + BACKOFF_MAX_MS;
				m.status = 1;
			}
			timeout = m.stop_deadline - now;
		}
		if (poll(pfd, 2, (int)timeout) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (pfd[1].revents & POLLIN)
			read_ready(&m);
		while (read(m.sigfd, &si, sizeof(si)) == sizeof(si))
			handle_signal(&m, (int)si.ssi_signo);
	}

	if (m.pidfile_fd >= 0) {
		unlink(c->pidfile);
		close(m.pidfile_fd);
	}
	free(m.procs);
	log_info("stopped");
	return m.status;
}
