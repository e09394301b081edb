/*
 * Parsing and validation of quoterd.conf. Every value is checked here, so
 * a bad setting fails before anything is forked, with the file and line.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_listen(const char *v, struct listen_addr *a);

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "0.0.0.0:5050");
	parse_listen(c->listen, &c->listen_addr);
	snprintf(c->database, sizeof(c->database),
	    "/var/lib/quoterd/quotes.mdb");
	c->workers = 0;
	c->log_level = LOG_LEVEL_INFO;
	snprintf(c->log, sizeof(c->log), "stderr");
	c->shutdown_timeout = 10;
	c->max_request_size = 4096;
	c->requested_calls = 128;
	c->watch_database = true;
	c->check_timeout = 60;
	c->max_connection_age_grace = 10;
	c->unix_mode = 0660;
	c->unix_gid = -1;
	c->tls.fd = -1;
	c->worker_timeout = 10;
	c->start_timeout = 30;
	c->reflection_idle_timeout = 60;
	c->max_concurrent_streams = 100;
}

static int
parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A count of 1..max, or "auto" (stored as 0). */
static int
set_count(int *out, long max, const char *value, const char *key, char *err,
    size_t errlen)
{
	long v = 0;

	if (strcmp(value, "auto") != 0 && parse_int(value, 1, max, &v) != 0) {
		snprintf(err, errlen, "%s: '%s' is not auto or 1..%ld", key,
		    value, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int
set_bool(bool *out, const char *value, const char *key, char *err,
    size_t errlen)
{
	if (strcmp(value, "yes") == 0)
		*out = true;
	else if (strcmp(value, "no") == 0)
		*out = false;
	else {
		snprintf(err, errlen, "%s: '%s' is not yes or no", key, value);
		return -1;
	}
	return 0;
}

static int
set_string(char *dst, size_t size, const char *value, const char *key,
    char *err, size_t errlen)
{
	if (*value == '\0' || strlen(value) >= size) {
		snprintf(err, errlen, "%s: %s", key,
		    *value ? "too long" : "empty value");
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

/*
 * Parses HOST:PORT, [IPV6]:PORT or unix:PATH; -1 if v is none of them. A
 * value too long for a's buffers is cut short here and refused by
 * set_string(), which allows no longer a text.
 */
static int
parse_listen(const char *v, struct listen_addr *a)
{
	const char *colon, *host = v;
	int hostlen;
	long port;

	memset(a, 0, sizeof(*a));
	if (strncmp(v, "unix:", 5) == 0) {
		if (v[5] == '\0')
			return -1;
		a->kind = LISTEN_UNIX;
		snprintf(a->path, sizeof(a->path), "%s", v + 5);
		return 0;
	}
	colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return -1;
	if (v[0] == '[' && colon[-1] != ']')
		return -1;
	if (parse_int(colon + 1, 1, 65535, &port) != 0)
		return -1;
	hostlen = (int)(colon - v);
	if (v[0] == '[') {
		host++;
		hostlen -= 2;
	}
	a->kind = LISTEN_TCP;
	snprintf(a->host, sizeof(a->host), "%.*s", hostlen, host);
	a->port = (unsigned)port;
	return 0;
}

/* The integer settings: name, field, bounds and what the bounds mean. */
static const struct int_key {
	const char *key;
	size_t offset;
	long min, max;
	const char *unit;
} int_keys[] = {
    {"shutdown_timeout", offsetof(struct config, shutdown_timeout), 0, 3600,
	"seconds"},
    {"drain_time", offsetof(struct config, drain_time), 0, 3600, "seconds"},
    {"check_timeout", offsetof(struct config, check_timeout), 1, 3600,
	"seconds"},
    {"worker_timeout", offsetof(struct config, worker_timeout), 0, 3600,
	"seconds"},
    {"max_connections", offsetof(struct config, max_connections), 0,
	INT32_MAX - CONFIG_FD_RESERVE, "connections"},
    {"start_timeout", offsetof(struct config, start_timeout), 1, 3600,
	"seconds"},
    {"reflection_idle_timeout",
	offsetof(struct config, reflection_idle_timeout), 0, 86400, "seconds"},
    {"max_request_size", offsetof(struct config, max_request_size), 64, 4 << 20,
	"bytes"},
    {"requested_calls", offsetof(struct config, requested_calls), 1, 65536,
	"calls"},
    {"max_concurrent_streams", offsetof(struct config, max_concurrent_streams),
	0, INT32_MAX, "streams"},
    {"max_connection_age", offsetof(struct config, max_connection_age), 0,
	INT32_MAX / 1000, "seconds"},
    {"max_connection_age_grace",
	offsetof(struct config, max_connection_age_grace), 0, INT32_MAX / 1000,
	"seconds"},
    {"max_connection_idle", offsetof(struct config, max_connection_idle), 0,
	INT32_MAX / 1000, "seconds"},
    {"keepalive_time", offsetof(struct config, keepalive_time), 0,
	INT32_MAX / 1000, "seconds"},
    {"keepalive_timeout", offsetof(struct config, keepalive_timeout), 0,
	INT32_MAX / 1000, "seconds"},
    {"keepalive_min_ping_interval",
	offsetof(struct config, keepalive_min_ping_interval), 0,
	INT32_MAX / 1000, "seconds"},
};

int
config_set(struct config *c, const char *key, const char *value, char *err,
    size_t errlen)
{
	long v;

	for (size_t i = 0; i < sizeof(int_keys) / sizeof(int_keys[0]); i++) {
		const struct int_key *k = &int_keys[i];

		if (strcmp(key, k->key) != 0)
			continue;
		if (parse_int(value, k->min, k->max, &v) != 0) {
			snprintf(err, errlen, "%s: '%s' is not %ld..%ld %s",
			    key, value, k->min, k->max, k->unit);
			return -1;
		}
		*(int *)((char *)c + k->offset) = (int)v;
		return 0;
	}
	if (strcmp(key, "listen") == 0) {
		struct listen_addr a;

		if (parse_listen(value, &a) != 0) {
			snprintf(err, errlen,
			    "listen: '%s' is not HOST:PORT, "
			    "[IPV6]:PORT or unix:PATH",
			    value);
			return -1;
		}
		if (set_string(c->listen, sizeof(c->listen), value, key, err,
			errlen) != 0)
			return -1;
		c->listen_addr = a;
		return 0;
	}
	if (strcmp(key, "metrics_listen") == 0) {
		struct listen_addr a;

		/* "none" turns metrics from the config file off. */
		if (strcmp(value, "none") == 0) {
			c->metrics_listen[0] = '\0';
			return 0;
		}
		if (parse_listen(value, &a) != 0 || a.kind != LISTEN_TCP) {
			snprintf(err, errlen,
			    "metrics_listen: '%s' is not "
			    "HOST:PORT or [IPV6]:PORT",
			    value);
			return -1;
		}
		if (set_string(c->metrics_listen, sizeof(c->metrics_listen),
			value, key, err, errlen) != 0)
			return -1;
		c->metrics_addr = a;
		return 0;
	}
	if (strcmp(key, "log") == 0)
		return set_string(c->log, sizeof(c->log), value, key, err,
		    errlen);
	if (strcmp(key, "tls_cert") == 0)
		return set_string(c->tls.cert, sizeof(c->tls.cert), value, key,
		    err, errlen);
	if (strcmp(key, "tls_key") == 0)
		return set_string(c->tls.key, sizeof(c->tls.key), value, key,
		    err, errlen);
	if (strcmp(key, "tls_client_ca") == 0)
		return set_string(c->tls.client_ca, sizeof(c->tls.client_ca),
		    value, key, err, errlen);
	if (strcmp(key, "database") == 0)
		return set_string(c->database, sizeof(c->database), value, key,
		    err, errlen);
	if (strcmp(key, "pidfile") == 0) {
		/* "none" turns a pidfile from the config file off. */
		if (strcmp(value, "none") == 0) {
			c->pidfile[0] = '\0';
			return 0;
		}
		return set_string(c->pidfile, sizeof(c->pidfile), value, key,
		    err, errlen);
	}
	if (strcmp(key, "workers") == 0)
		return set_count(&c->workers, 1024, value, key, err, errlen);
	if (strcmp(key, "threads") == 0)
		return set_count(&c->threads, 64, value, key, err, errlen);
	if (strcmp(key, "log_level") == 0) {
		if (log_parselevel(value, &c->log_level) != 0) {
			snprintf(err, errlen,
			    "log_level: '%s' is not error, warn, info or debug",
			    value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "unix_mode") == 0) {
		char *end;

		errno = 0;
		v = strtol(value, &end, 8);
		if (errno != 0 || end == value || *end != '\0' || v < 0 ||
		    v > 0777) {
			snprintf(err, errlen,
			    "unix_mode: '%s' is not an octal mode 0..0777",
			    value);
			return -1;
		}
		c->unix_mode = (int)v;
		return 0;
	}
	if (strcmp(key, "unix_group") == 0) {
		struct group *gr;

		/* Resolved now, so --test finds a group that does not
		 * exist. */
		if (parse_int(value, 0, INT32_MAX, &v) == 0) {
			c->unix_gid = v;
		} else if ((gr = getgrnam(value)) != NULL) {
			c->unix_gid = (long)gr->gr_gid;
		} else {
			snprintf(err, errlen, "unix_group: no group '%s'",
			    value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "accept_compressed") == 0)
		return set_bool(&c->accept_compressed, value, key, err, errlen);
	if (strcmp(key, "watch_database") == 0)
		return set_bool(&c->watch_database, value, key, err, errlen);
	snprintf(err, errlen, "unknown key '%s'", key);
	return -1;
}

static char *
strip(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s &&
	    (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
		end[-1] == '\r'))
		*--end = '\0';
	return s;
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	char line[CONFIG_PATH_MAX + 64], why[256];
	char *key, *value, *eq, *hash;
	unsigned lineno = 0;
	FILE *f;
	int rc = 0;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path,
			    lineno);
			rc = -1;
			break;
		}
		/* Values are paths and addresses: '#' starts a comment
		 * only at the start of a line or after white space. */
		for (hash = line; (hash = strchr(hash, '#')) != NULL; hash++)
			if (hash == line || hash[-1] == ' ' ||
			    hash[-1] == '\t') {
				*hash = '\0';
				break;
			}
		key = strip(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			snprintf(err, errlen, "%s:%u: expected key = value",
			    path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = strip(key);
		value = strip(eq + 1);
		if (config_set(c, key, value, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(f);
	return rc;
}

/* Makes a relative path (not an empty one) absolute, in place. */
static int
absolute(char *path, size_t size)
{
	char cwd[CONFIG_PATH_MAX], copy[CONFIG_PATH_MAX];

	if (path[0] == '\0' || path[0] == '/')
		return 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	snprintf(copy, sizeof(copy), "%s", path);
	if ((size_t)snprintf(path, size, "%s/%s", cwd, copy) >= size)
		return -1;
	return 0;
}

int
config_absolute_log(struct config *c, char *err, size_t errlen)
{
	if (strcmp(c->log, "stderr") == 0 || strcmp(c->log, "syslog") == 0 ||
	    absolute(c->log, sizeof(c->log)) == 0)
		return 0;
	snprintf(err, errlen, "log: path too long");
	return -1;
}

int
config_absolute_paths(struct config *c, char *err, size_t errlen)
{
	struct listen_addr *a = &c->listen_addr;

	if (absolute(c->database, sizeof(c->database)) != 0 ||
	    absolute(c->pidfile, sizeof(c->pidfile)) != 0 ||
	    absolute(c->tls.cert, sizeof(c->tls.cert)) != 0 ||
	    absolute(c->tls.key, sizeof(c->tls.key)) != 0 ||
	    absolute(c->tls.client_ca, sizeof(c->tls.client_ca)) != 0 ||
	    (a->kind == LISTEN_UNIX &&
		absolute(a->path, sizeof(a->path)) != 0)) {
		snprintf(err, errlen, "a path is too long once made absolute");
		return -1;
	}
	/* Logs name the socket file as it now is. */
	if (a->kind == LISTEN_UNIX)
		snprintf(c->listen, sizeof(c->listen), "unix:%s", a->path);
	return 0;
}

int
config_check_tls(const struct config *c, char *err, size_t errlen)
{
	const struct tls_config *t = &c->tls;

	if (t->cert[0] == '\0' && t->key[0] == '\0' && t->client_ca[0] == '\0')
		return 0;
	if (t->cert[0] == '\0' || t->key[0] == '\0') {
		snprintf(err, errlen, "TLS needs both tls_cert and tls_key");
		return -1;
	}
	if (c->listen_addr.kind == LISTEN_UNIX) {
		snprintf(err, errlen, "TLS is for TCP listeners, not %s",
		    c->listen);
		return -1;
	}
	return 0;
}

int
config_fit_connections(struct config *c, unsigned long long nofile, char *err,
    size_t errlen)
{
	unsigned long long room =
	    nofile > CONFIG_FD_RESERVE ? nofile - CONFIG_FD_RESERVE : 0;

	if (room > INT32_MAX)
		room = INT32_MAX;
	if (c->max_connections == 0) {
		c->conn_cap = (int)room;
		return 0;
	}
	if ((unsigned long long)c->max_connections > room) {
		snprintf(err, errlen,
		    "max_connections: %d does not fit under the descriptor "
		    "limit of %llu with the %d each worker keeps for itself "
		    "(at most %llu; raise the limit or lower the setting)",
		    c->max_connections, nofile, CONFIG_FD_RESERVE, room);
		return -1;
	}
	c->conn_cap = c->max_connections;
	return 0;
}

static int
online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}

int
config_workers(const struct config *c)
{
	return c->workers > 0 ? c->workers : online_cpus();
}

int
config_threads(const struct config *c)
{
	if (c->threads > 0)
		return c->threads;
	return config_workers(c) < online_cpus() ? 2 : 1;
}
