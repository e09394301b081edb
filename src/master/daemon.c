/*
 * What makes the master a well-behaved daemon rather than a loop: the
 * pidfile and its lock, which --signal and a second quoterd read;
 * --daemon, whose parent waits to exit until the daemon serves, so that
 * its exit status means something; and the descriptor limit.
 */
#include "master_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

/*
 * --daemon: the workers get start_timeout to start before the master
 * gives up (and stops) and the waiting parent exits 1 with the reason;
 * the parent itself waits this much longer in case the master cannot
 * even say so.
 */
#define DAEMON_PARENT_GRACE_MS 10000

/*
 * --daemon: gives the waiting parent its one message, an empty one once
 * the daemon serves or the reason it will not, so that whoever ran it
 * reads why on the terminal instead of digging in a log.
 */
void
daemon_tell_parent(struct master *m, const char *why)
{
	if (m->notify_fd < 0)
		return;
	if (write(m->notify_fd, why, strlen(why) + (why[0] == '\0')) < 0)
		log_warn("daemon parent");
	close(m->notify_fd);
	m->notify_fd = -1;
}

int
pidfile_open(struct master *m)
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
			   "(pid %s)",
		    path, buf);
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
static void daemon_parent(int fd, long wait_ms) __attribute__((noreturn));

static void
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
			fprintf(stderr,
			    "quoterd: the daemon did not report "
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
	fprintf(stderr, "quoterd: %s\n",
	    n > 0 ? why : "the daemon stopped before serving (see its log)");
	_exit(1);
}

/*
 * Detaches from the terminal. The parent waits until the daemon serves
 * (or fails) so that its exit status means something to whoever ran it.
 */
void
daemon_detach(struct master *m)
{
	int fds[2], null;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		close(fds[1]);
		daemon_parent(fds[0],
		    (long)m->config->start_timeout * 1000 +
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
}

/*
 * --daemon: workers that have not all started by start_timeout stop
 * quoterd, and the waiting parent hears why. Returns ms until that
 * deadline, or -1.
 */
long
daemon_start_due(struct master *m, long now)
{
	char why[128];

	if (m->notify_fd < 0 || m->stopping != RUNNING)
		return -1;
	if (now < m->start_deadline)
		return m->start_deadline - now;
	snprintf(why, sizeof(why),
	    "workers did not start within %d s (see "
	    "the log): stopping",
	    m->config->start_timeout);
	log_warnx("%s", why);
	daemon_tell_parent(m, why);
	proc_stop(m, STOP_NOW, 1);
	return -1;
}

void
pidfile_close(struct master *m)
{
	if (m->pidfile_fd < 0)
		return;
	unlink(m->config->pidfile);
	close(m->pidfile_fd);
	m->pidfile_fd = -1;
}

/* --signal: the pid of the master that holds the pidfile at path. */
int
pidfile_read(const char *path, pid_t *pid)
{
	char buf[32];
	ssize_t n;
	long v;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "quoterd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* The running master holds an exclusive lock on its pidfile. */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		fprintf(stderr, "quoterd: %s: no quoterd is running\n", path);
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	v = strtol(buf, NULL, 10);
	if (v <= 1) {
		fprintf(stderr, "quoterd: %s: no pid in file\n", path);
		return -1;
	}
	*pid = (pid_t)v;
	return 0;
}

/* --signal: sends sig to the master whose pid is in the pidfile at path. */
int
pidfile_signal(const char *path, int sig)
{
	pid_t pid;

	if (pidfile_read(path, &pid) != 0)
		return -1;
	if (kill(pid, sig) != 0) {
		fprintf(stderr, "quoterd: pid %ld: %s\n", (long)pid,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* What an unlimited hard limit comes to: fs.nr_open caps it. */
static rlim_t
hard_nofile(rlim_t max, rlim_t cur)
{
	FILE *f;
	unsigned long long nr = 0;

	if (max != RLIM_INFINITY)
		return max;
	if ((f = fopen("/proc/sys/fs/nr_open", "re")) != NULL) {
		if (fscanf(f, "%llu", &nr) != 1)
			nr = 0;
		fclose(f);
	}
	return nr > cur ? (rlim_t)nr : cur;
}

unsigned long long
daemon_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur >= rl.rlim_max)
		return rl.rlim_cur;
	return hard_nofile(rl.rlim_max, rl.rlim_cur);
}

/*
 * Each connection is a descriptor in some worker, and the usual soft
 * limit (1024) is a few hundred clients a worker away: take what the
 * hard limit allows, for the master and the workers it forks.
 */
void
daemon_raise_nofile(void)
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
	rl.rlim_cur = hard_nofile(rl.rlim_max, was);
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("descriptors: cannot raise %llu to %llu",
		    (unsigned long long)was, (unsigned long long)rl.rlim_max);
		return;
	}
	log_info("descriptors: %llu a process (raised from %llu)",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)was);
}
