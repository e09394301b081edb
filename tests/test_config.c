/*
 * Tests for src/common/config.c: defaults, every key's validation, the
 * file syntax and its FILE:LINE errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char err[512];

/* Writes text to a temporary file; returns its malloc'd path. */
static char *
write_file(const char *text)
{
	char *path = strdup("/tmp/quoterd-config-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int
load(struct config *c, const char *text)
{
	char *path = write_file(text);
	int rc;

	config_defaults(c);
	rc = config_load(c, path, err, sizeof(err));
	unlink(path);
	free(path);
	return rc;
}

static void
test_defaults(void **state)
{
	struct config c;

	(void)state;
	config_defaults(&c);
	assert_string_equal(c.listen, "0.0.0.0:5050");
	assert_int_equal(c.workers, 0);
	assert_true(config_workers(&c) >= 1);
	assert_int_equal(c.threads, 0);
	assert_true(config_threads(&c) == 1 || config_threads(&c) == 2);
	assert_int_equal(c.max_request_size, 4096);
	assert_string_equal(c.pidfile, "");
	assert_int_equal(c.check_timeout, 60);
	assert_string_equal(c.log, "stderr");
	assert_string_equal(c.metrics_listen, "");
	assert_int_equal(c.unix_mode, 0660);
	assert_int_equal(c.unix_gid, -1);
}

static void
test_file_sets_every_key(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(load(&c,
			     "# comment\n\n"
			     "listen = 127.0.0.1:7000  # trailing\n"
			     "workers=3\n"
			     "threads = 4\n"
			     "\tdatabase = /tmp/x#y.mdb\n"
			     "pidfile = /run/q.pid\n"
			     "log_level = debug\n"
			     "shutdown_timeout = 0\n"
			     "max_request_size = 1024\n"
			     "requested_calls = 16\n"
			     "check_timeout = 5\n"
			     "watch_database = yes\n"
			     "log = /var/log/q.log\n"
			     "metrics_listen = 127.0.0.1:9150\n"
			     "watch_database = no\n"
			     "max_connection_age = 30\n"
			     "keepalive_min_ping_interval = 5\n"),
	    0);
	assert_string_equal(c.listen, "127.0.0.1:7000");
	assert_int_equal(c.workers, 3);
	assert_int_equal(config_workers(&c), 3);
	assert_int_equal(config_threads(&c), 4);
	/* '#' inside a value is not a comment. */
	assert_string_equal(c.database, "/tmp/x#y.mdb");
	assert_string_equal(c.pidfile, "/run/q.pid");
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(c.shutdown_timeout, 0);
	assert_int_equal(c.max_request_size, 1024);
	assert_int_equal(c.requested_calls, 16);
	assert_false(c.watch_database);
	/* A later key never resets an earlier one's value. */
	assert_int_equal(c.check_timeout, 5);
	assert_string_equal(c.log, "/var/log/q.log");
	assert_string_equal(c.metrics_listen, "127.0.0.1:9150");
	assert_int_equal(c.max_connection_age, 30);
	assert_int_equal(c.max_connection_age_grace, 10);
	assert_int_equal(c.keepalive_min_ping_interval, 5);
}

static void
test_file_errors_name_line(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(load(&c, "workers = 2\nbogus = 1\n"), -1);
	assert_non_null(strstr(err, ":2: unknown key 'bogus'"));
	assert_int_equal(load(&c, "\n\nlisten\n"), -1);
	assert_non_null(strstr(err, ":3: expected key = value"));
	assert_int_equal(load(&c, "workers = many\n"), -1);
	assert_non_null(strstr(err, ":1: workers: 'many'"));
}

static void
test_missing_file(void **state)
{
	struct config c;

	(void)state;
	config_defaults(&c);
	assert_int_equal(config_load(&c, "/nonexistent/quoterd.conf", err,
			     sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "No such file or directory"));
}

static void
test_values_validated(void **state)
{
	static const char *const bad[][2] = {
	    {"listen", "nocolon"},
	    {"listen", "host:0"},
	    {"listen", "host:65536"},
	    {"listen", ":5050"},
	    {"listen", "host:12x"},
	    {"listen", "unix:"},
	    {"listen", "[::1:5050"},
	    {"workers", "0"},
	    {"workers", "-1"},
	    {"workers", "1025"},
	    {"workers", ""},
	    {"log_level", "loud"},
	    {"shutdown_timeout", "-1"},
	    {"shutdown_timeout", "3601"},
	    {"max_request_size", "63"},
	    {"max_request_size", "4194305"},
	    {"requested_calls", "0"},
	    {"database", ""},
	    {"pidfile", ""},
	    {"watch_database", "maybe"},
	    {"max_connection_age", "-1"},
	    {"threads", "0"},
	    {"threads", "65"},
	    {"threads", "two"},
	    {"max_concurrent_streams", "x"},
	    {"keepalive_time", "2147484"},
	    {"check_timeout", "0"},
	    {"check_timeout", "3601"},
	    {"log", ""},
	    {"metrics_listen", "unix:/x"},
	    {"metrics_listen", "nocolon"},
	    {"metrics_listen", "host:0"},
	    {"unix_mode", "0778"},
	    {"unix_mode", "01000"},
	    {"unix_mode", ""},
	    {"unix_mode", "rw"},
	    {"unix_group", "no-such-group-quoterd"},
	};
	static const char *const good[][2] = {
	    {"listen", "[::1]:5050"},
	    {"listen", "unix:/tmp/q.sock"},
	    {"listen", "localhost:1"},
	    {"workers", "auto"},
	    {"workers", "1024"},
	    {"pidfile", "none"},
	    {"threads", "64"},
	    {"threads", "auto"},
	    {"log_level", "error"},
	    {"check_timeout", "1"},
	    {"log", "syslog"},
	    {"metrics_listen", "[::1]:9150"},
	    {"metrics_listen", "none"},
	    {"log_level", "error"},
	    {"unix_mode", "0600"},
	    {"unix_mode", "666"},
	    {"unix_group", "root"},
	    {"unix_group", "4242"},
	};
	struct config c;

	(void)state;
	config_defaults(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(config_set(&c, bad[i][0], bad[i][1], err,
				     sizeof(err)),
		    -1);
		assert_non_null(strstr(err, bad[i][0]));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(config_set(&c, good[i][0], good[i][1], err,
				     sizeof(err)),
		    0);
	assert_string_equal(c.pidfile, "");
	assert_int_equal(c.unix_mode, 0666);
	assert_int_equal(c.unix_gid, 4242);
}

/* auto: a second call thread only while workers leave CPUs idle. */
static void
test_threads_auto(void **state)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct config c;

	(void)state;
	config_defaults(&c);
	c.workers = 1024; /* more than the CPUs */
	assert_int_equal(config_threads(&c), 1);
	c.workers = 1;
	assert_int_equal(config_threads(&c), cpus > 1 ? 2 : 1);
	c.threads = 3; /* a setting wins */
	assert_int_equal(config_threads(&c), 3);
	c.workers = 1024;
	assert_int_equal(config_threads(&c), 3);
}

/* max_connections is fitted under the descriptor limit, or refused. */
static void
test_fit_connections(void **state)
{
	struct config c;

	(void)state;
	config_defaults(&c);
	assert_int_equal(c.max_connections, 0);
	assert_int_equal(config_fit_connections(&c, 1024, err, sizeof(err)), 0);
	assert_int_equal(c.conn_cap, 1024 - CONFIG_FD_RESERVE);
	/* Nothing left under a tiny limit: no cap, only the EMFILE path. */
	assert_int_equal(config_fit_connections(&c, 40, err, sizeof(err)), 0);
	assert_int_equal(c.conn_cap, 0);
	assert_int_equal(config_set(&c, "max_connections", "960", err,
			     sizeof(err)),
	    0);
	assert_int_equal(config_fit_connections(&c, 1024, err, sizeof(err)), 0);
	assert_int_equal(c.conn_cap, 960);
	assert_int_equal(config_fit_connections(&c, 1023, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "max_connections: 960 does not fit"));
	assert_non_null(strstr(err, "at most 959"));
	assert_int_equal(config_set(&c, "max_connections", "-1", err,
			     sizeof(err)),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_file_sets_every_key),
	    cmocka_unit_test(test_file_errors_name_line),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_values_validated),
	    cmocka_unit_test(test_threads_auto),
	    cmocka_unit_test(test_fit_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
