/*
 * quoterd's entry point. Whatever can refuse a start is tried here,
 * before anything is forked, so that the reason reaches the terminal that
 * ran us rather than a worker's log: the flags and the config file, the
 * database and the TLS files (each read by a checker child), the listen
 * addresses. --test stops after them; --signal talks to a running master
 * instead.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "store.h"
#include "version.h"

/*
 * How much longer than two check_timeouts --signal reload waits for the
 * master's answer (a SIGHUP during a check waits for it, then checks
 * again): the workers' reports on the new database and TLS files (5 s
 * each at most), and slack.
 */
#define RELOAD_SLACK_S 15

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: quoterd [-c FILE] [--db PATH] [--listen ADDR] "
	    "[--workers N|auto]\n"
	    "               [--threads N|auto] [--worker-timeout SECONDS]\n"
	    "               [--pidfile PATH] [--daemon] [--test] "
	    "[--signal reload|stop|quit]\n"
	    "               [--tls-cert FILE --tls-key FILE "
	    "[--tls-client-ca FILE]]\n"
	    "               [--log stderr|syslog|FILE] [--metrics ADDR]\n"
	    "               [-v|-q] [--version] [--help]\n"
	    "  -c, --config FILE    settings file (key = value); flags "
	    "override it\n"
	    "      --db PATH        database written by quotes-import\n"
	    "      --listen ADDR    HOST:PORT, [IPV6]:PORT or unix:PATH to "
	    "serve on\n"
	    "                       (default 0.0.0.0:5050)\n"
	    "      --workers N|auto worker processes (default auto: one per "
	    "CPU)\n"
	    "      --threads N|auto call threads per worker (default auto: 2 "
	    "while there\n"
	    "                       are fewer workers than CPUs, else 1)\n"
	    "      --worker-timeout SECONDS  kill and replace a worker silent "
	    "this long\n"
	    "                       (default 10; 0: never)\n"
	    "      --pidfile PATH   write and lock the master's pid here\n"
	    "      --daemon         detach from the terminal\n"
	    "      --tls-cert FILE  serve TLS with this certificate chain "
	    "(PEM)\n"
	    "      --tls-key FILE   and this private key (PEM)\n"
	    "      --tls-client-ca FILE  require client certificates signed "
	    "by these CAs\n"
	    "      --log WHERE      stderr (default), syslog or a file "
	    "(reopened on SIGUSR1)\n"
	    "      --metrics ADDR   serve Prometheus metrics on "
	    "HOST:PORT/metrics\n"
	    "  -t, --test           check configuration and database, then "
	    "exit\n"
	    "  -s, --signal SIG     send reload, stop or quit to the running "
	    "master\n"
	    "                       (reload: wait for it to end; 1 if "
	    "refused)\n"
	    "  -v, --verbose        log debug messages\n"
	    "  -q, --quiet          log warnings and errors only\n"
	    "      --version        print the version and exit\n"
	    "  -h, --help           print this help and exit\n");
}

/* --signal's name for a signal; 0 for none. */
static int
signal_number(const char *name)
{
	if (strcmp(name, "stop") == 0)
		return SIGTERM;
	if (strcmp(name, "quit") == 0)
		return SIGQUIT;
	if (strcmp(name, "reload") == 0)
		return SIGHUP;
	return 0;
}

/* What a failed listen_probe() or listen_tcp() on text means. */
static void
cannot_listen(const char *text, const char *what, const struct listen_addr *a,
    int rc)
{
	fprintf(stderr, "quoterd: cannot listen on %s%s: %s%s%s\n", text, what,
	    rc < 0 ? a->host : "", rc < 0 ? ": " : "", listen_strerror(rc));
}

/*
 * Opens the database and has a checker child read all of it (check.h):
 * 0 with its descriptor in *fd and what the checker found in *info, or
 * -1 after saying why not. With test, says what it found.
 */
static int
open_database(const struct config *c, int test, int *fd,
    struct store_info *info)
{
	struct check_verdict v;
	struct stat st;
	struct check *ck;
	int rc;

	if ((*fd = check_open(c->database, &st, v.why, sizeof(v.why))) < 0) {
		fprintf(stderr, "quoterd: %s: %s\n", c->database, v.why);
		return -1;
	}
	if ((rc = check_start(*fd, &ck)) != 0) {
		v.ok = 0;
		snprintf(v.why, sizeof(v.why), "cannot start the checker: %s",
		    strerror(rc));
	} else
		check_wait(ck, c->check_timeout * 1000, &v, NULL);
	if (!v.ok) {
		fprintf(stderr, "quoterd: %s: %s\n", c->database, v.why);
		close(*fd);
		*fd = -1;
		return -1;
	}
	if (test)
		printf("quoterd: configuration ok: %s: %llu quotes, %llu "
		       "authors\n",
		    c->database, (unsigned long long)v.info.nquotes,
		    (unsigned long long)v.info.nauthors);
	*info = v.info;
	return 0;
}

/*
 * Has a checker child read the TLS files and match key to certificate
 * (check.h): 0 with the memory file it wrote them into at c->tls.fd, or
 * -1 after saying why not.
 */
static int
open_tls(struct config *c)
{
	struct check_verdict v;
	struct check *ck;
	int rc;

	if (c->tls.cert[0] == '\0')
		return 0;
	if ((rc = check_start_tls(&c->tls, &ck)) != 0) {
		fprintf(stderr, "quoterd: TLS: cannot start the checker: %s\n",
		    strerror(rc));
		return -1;
	}
	check_wait(ck, c->check_timeout * 1000, &v, &c->tls.fd);
	if (!v.ok) {
		fprintf(stderr, "quoterd: %s\n", v.why);
		return -1;
	}
	return 0;
}

/*
 * close_range() without the system call (before Linux 5.9, or filtered):
 * every descriptor /proc lists, whatever the limit; without /proc, every
 * number below the limit (the launcher may have left one up there).
 */
static void
close_from_3(void)
{
	struct rlimit rl;
	struct dirent *e;
	DIR *d;

	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((e = readdir(d)) != NULL) {
			int fd = atoi(e->d_name);

			if (fd > 2 && fd != dirfd(d))
				close(fd);
		}
		closedir(d);
		return;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur > INT_MAX)
		rl.rlim_cur = 1024 * 1024;
	for (rlim_t fd = 3; fd < rl.rlim_cur; fd++)
		close((int)fd);
}

int
main(int argc, char *argv[])
{
	enum {
		OPT_DB = 256,
		OPT_LISTEN,
		OPT_WORKERS,
		OPT_THREADS,
		OPT_WORKER_TIMEOUT,
		OPT_PIDFILE,
		OPT_DAEMON,
		OPT_VERSION,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_TLS_CA,
		OPT_LOG,
		OPT_METRICS
	};
	static const struct option longopts[] = {{"config", required_argument,
						     NULL, 'c'},
	    {"db", required_argument, NULL, OPT_DB},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"workers", required_argument, NULL, OPT_WORKERS},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"worker-timeout", required_argument, NULL, OPT_WORKER_TIMEOUT},
	    {"pidfile", required_argument, NULL, OPT_PIDFILE},
	    {"daemon", no_argument, NULL, OPT_DAEMON},
	    {"test", no_argument, NULL, 't'},
	    {"signal", required_argument, NULL, 's'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"tls-client-ca", required_argument, NULL, OPT_TLS_CA},
	    {"log", required_argument, NULL, OPT_LOG},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	/* Flags are applied after the file, whatever their order. */
	struct {
		const char *key, *value;
	} flags[64];
	struct config c;
	const char *config_path = NULL, *signame = NULL;
	int nflags = 0, test = 0, daemonize = 0, ch, rc;
	char err[CONFIG_PATH_MAX + 128];
	struct master_start start = {-1, {0, 0, 0, 0}, -1};

	/* Whatever the launcher left open would reach every worker. */
	if (close_range(3, ~0U, 0) != 0)
		close_from_3();
	log_init("master", LOG_LEVEL_INFO);
	while (
	    (ch = getopt_long(argc, argv, "c:ts:vqh", longopts, NULL)) != -1) {
		const char *key = NULL, *value = optarg;

		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case OPT_DB:
			key = "database";
			break;
		case OPT_LISTEN:
			key = "listen";
			break;
		case OPT_WORKERS:
			key = "workers";
			break;
		case OPT_THREADS:
			key = "threads";
			break;
		case OPT_WORKER_TIMEOUT:
			key = "worker_timeout";
			break;
		case OPT_PIDFILE:
			key = "pidfile";
			break;
		case OPT_DAEMON:
			daemonize = 1;
			break;
		case OPT_TLS_CERT:
			key = "tls_cert";
			break;
		case OPT_TLS_KEY:
			key = "tls_key";
			break;
		case OPT_TLS_CA:
			key = "tls_client_ca";
			break;
		case OPT_LOG:
			key = "log";
			break;
		case OPT_METRICS:
			key = "metrics_listen";
			break;
		case 't':
			test = 1;
			break;
		case 's':
			signame = optarg;
			break;
		case 'v':
			key = "log_level";
			value = "debug";
			break;
		case 'q':
			key = "log_level";
			value = "warn";
			break;
		case OPT_VERSION:
			printf("quoterd %s\n", QUOTERD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (key != NULL &&
		    nflags < (int)(sizeof(flags) / sizeof(flags[0]))) {
			flags[nflags].key = key;
			flags[nflags++].value = value;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "quoterd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}

	config_defaults(&c);
	if (config_path != NULL &&
	    config_load(&c, config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "quoterd: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nflags; i++) {
		if (config_set(&c, flags[i].key, flags[i].value, err,
			sizeof(err)) != 0) {
			fprintf(stderr, "quoterd: %s\n", err);
			usage(stderr);
			return 2;
		}
	}
	log_setlevel(c.log_level);
	if (signame != NULL) {
		int sig = signal_number(signame);

		if (sig == 0) {
			fprintf(stderr, "quoterd: unknown signal '%s'\n",
			    signame);
			usage(stderr);
			return 2;
		}
		if (c.pidfile[0] == '\0') {
			fprintf(stderr,
			    "quoterd: --signal needs a pidfile "
			    "(--pidfile or the config file)\n");
			return 1;
		}
		/* A reload is answered once it is over, so that the command
		 * (systemd's ExecReload) ends with it. */
		if (sig == SIGHUP)
			return reload_request(c.pidfile,
			    2 * c.check_timeout + RELOAD_SLACK_S);
		return pidfile_signal(c.pidfile, sig) == 0 ? 0 : 1;
	}
	if (config_absolute_log(&c, err, sizeof(err)) != 0) {
		fprintf(stderr, "quoterd: %s\n", err);
		return 1;
	}
	if (!test && log_open(c.log) != 0) {
		fprintf(stderr, "quoterd: log %s: %s\n", c.log,
		    strerror(errno));
		return 1;
	}

	/* Under the limit the master will raise itself to, as its workers
	 * will have it. */
	if (config_fit_connections(&c, daemon_nofile_limit(), err,
		sizeof(err)) != 0) {
		fprintf(stderr, "quoterd: %s\n", err);
		return 1;
	}
	if (config_check_tls(&c, err, sizeof(err)) != 0) {
		fprintf(stderr, "quoterd: %s\n", err);
		return 1;
	}
	/* Refuse bad TLS files or a bad database now rather than in every
	 * worker; the workers read the very files checked. */
	if (open_tls(&c) != 0)
		return 1;
	if (open_database(&c, test, &start.db_fd, &start.db) != 0)
		return 1;
	if (test) {
		close(start.db_fd);
		return 0;
	}
	/* A Unix socket needs no probe: handoff_listen() refuses a socket
	 * file someone answers on. */
	if (c.listen_addr.kind == LISTEN_TCP &&
	    (rc = listen_probe(&c.listen_addr)) != 0) {
		cannot_listen(c.listen, "", &c.listen_addr, rc);
		return 1;
	}
	/* The metrics process serves on this socket, made here so that a
	 * bad or busy address fails the start. */
	if (c.metrics_listen[0] != '\0' &&
	    (rc = listen_tcp(&c.metrics_addr, 64, &start.metrics_fd)) != 0) {
		cannot_listen(c.metrics_listen, " (metrics)", &c.metrics_addr,
		    rc);
		return 1;
	}
	if (daemonize && config_absolute_paths(&c, err, sizeof(err)) != 0) {
		fprintf(stderr, "quoterd: %s\n", err);
		return 1;
	}
	return master_run(&c, daemonize, &start);
}
