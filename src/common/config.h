/*
 * quoterd's configuration: built-in defaults, then the `key = value`
 * file, then command-line flags, each overriding the one before.
 */
#ifndef QUOTERD_CONFIG_H
#define QUOTERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

#define CONFIG_PATH_MAX 4096

/* A listening address, parsed once, by config_set(). */
#define LISTEN_MAX 256 /* its text's bytes, the NUL included */

enum listen_kind { LISTEN_TCP, LISTEN_UNIX };

struct listen_addr {
	enum listen_kind kind;
	char host[LISTEN_MAX];     /* TCP: a name or an address, without [] */
	unsigned port;             /* TCP: 1..65535 */
	char path[LISTEN_MAX - 5]; /* Unix: the socket file, after "unix:" */
};

/*
 * TLS: PEM files; the listener speaks TLS only when both cert and key
 * are set, and requires verified client certificates when client_ca is
 * set too.
 */
struct tls_config {
	char cert[CONFIG_PATH_MAX];
	char key[CONFIG_PATH_MAX];
	char client_ca[CONFIG_PATH_MAX];
	/* The master's memory file of the checked PEMs that workers read
	 * (tls.h), written by a checker child (check.h); -1 without TLS. */
	int fd;
};

struct config {
	/* HOST:PORT, [IPV6]:PORT or unix:PATH as written, for logs and for
	 * gRPC's address string; and what it says. */
	char listen[LISTEN_MAX];
	struct listen_addr listen_addr;
	char database[CONFIG_PATH_MAX];
	char pidfile[CONFIG_PATH_MAX]; /* empty: none */
	int workers;                   /* 0: one per online CPU */
	int threads;                   /* call threads a worker; 0: auto */
	enum log_level log_level;
	char log[CONFIG_PATH_MAX];       /* stderr, syslog or a file */
	char metrics_listen[LISTEN_MAX]; /* HOST:PORT of /metrics; empty: off */
	struct listen_addr metrics_addr; /* what it says: always TCP */
	int drain_time;                  /* seconds NOT_SERVING before a stop */
	int shutdown_timeout;            /* seconds a graceful stop may take */
	int max_request_size;            /* bytes of a request message */
	int requested_calls;             /* calls each worker keeps requested */
	bool watch_database;             /* reload when the file is replaced */
	int check_timeout; /* seconds the database checker may take */
	/* A unix:PATH listener's socket file: its mode and group (-1:
	 * the process's own). */
	int unix_mode;
	long unix_gid;
	int worker_timeout; /* seconds without a heartbeat; 0: never */
	/* Connections a worker holds before it is full; 0: derived from
	 * the descriptor limit (config_fit_connections()). */
	int max_connections;
	/* The cap in effect, once fitted; 0: none (a limit too small). */
	int conn_cap;
	int start_timeout; /* --daemon: seconds for workers to start */
	int reflection_idle_timeout; /* seconds; 0: never */
	bool accept_compressed; /* gzip/deflate requests, bounded inflation */
	/* gRPC server limits, in seconds unless named otherwise; 0 leaves
	 * gRPC's own default (or, for ages and idle, no limit). */
	int max_concurrent_streams;
	int max_connection_age;
	int max_connection_age_grace;
	int max_connection_idle;
	int keepalive_time;
	int keepalive_timeout;
	int keepalive_min_ping_interval;
	struct tls_config tls;
};

void config_defaults(struct config *c);
/*
 * Applies one setting. On error returns -1 with a reason in err; the
 * same keys serve the file and the flags.
 */
int config_set(struct config *c, const char *key, const char *value, char *err,
    size_t errlen);
/* Reads a config file; on error returns -1 with "FILE:LINE: reason". */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/*
 * Makes the log file's path absolute, so that a reopen finds it wherever
 * the process then is; -1 with the reason if it no longer fits.
 */
int config_absolute_log(struct config *c, char *err, size_t errlen);
/*
 * A daemon works from /: makes the database's, the pidfile's and a Unix
 * listener's paths absolute; -1 with the reason if one no longer fits.
 */
int config_absolute_paths(struct config *c, char *err, size_t errlen);
/*
 * Checks the TLS settings (both files, a TCP listener); -1 with the
 * reason. The files themselves are read by a checker child (check.h).
 */
int config_check_tls(const struct config *c, char *err, size_t errlen);
/*
 * Descriptors each worker keeps for itself beyond max_connections: gRPC's
 * own, the database's, the log's, its channel, a swap's or a TLS
 * reload's, and the connections that arrive before a full worker's
 * replacement takes over.
 */
#define CONFIG_FD_RESERVE 64
/*
 * Fits max_connections under nofile, the descriptor limit each process
 * will have: sets conn_cap to max_connections, or when that is 0 to
 * nofile - CONFIG_FD_RESERVE (0, no cap, if nothing is left). -1 with the
 * reason if an explicit max_connections leaves less than the reserve.
 */
int config_fit_connections(struct config *c, unsigned long long nofile,
    char *err, size_t errlen);
/* Number of workers to start: the setting, or the online CPU count. */
int config_workers(const struct config *c);
/*
 * Call threads in each worker: the setting, or for auto 2 when there are
 * fewer workers than CPUs (a second thread lets gRPC send several
 * replies in one write), else 1.
 */
int config_threads(const struct config *c);

#endif
