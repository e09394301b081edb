/*
 * Unit tests for src/common/log.c: whatever a message holds, it is one
 * line (control characters, backslashes and bytes that are not UTF-8 are
 * escaped, valid UTF-8 is kept), and a limited kind of message stops
 * after its burst, then reports how many it dropped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* Runs the logging in fn with stderr going to a temporary file; returns
 * what was written, NUL-terminated, in buf. */
static void
capture(void (*fn)(void), char *buf, size_t size)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(f);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
	fn();
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void
log_hostile(void)
{
	log_warnx("value=%s", "a\nb\r\\c\x01\xff\xc3\xa9\xe6\x9d\x8e\xe6\x9d");
}

static void
test_escaped(void **state)
{
	char buf[4096], *msg;

	(void)state;
	capture(log_hostile, buf, sizeof(buf));
	/* One line, and only one newline: its end. */
	assert_non_null(strchr(buf, '\n'));
	assert_int_equal(strchr(buf, '\n') - buf, (long)strlen(buf) - 1);
	assert_non_null(msg = strstr(buf, "value="));
	assert_string_equal(msg,
	    "value=a\\nb\\r\\\\c\\x01\\xff\xc3\xa9\xe6\x9d\x8e\\xe6\\x9d\n");
}

static void
log_long(void)
{
	char big[3000];

	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_warnx("%s", big);
}

static void
test_long_line_cut(void **state)
{
	char buf[8192];

	(void)state;
	capture(log_long, buf, sizeof(buf));
	assert_true(strlen(buf) <= 1024);
	assert_int_equal(strchr(buf, '\n') - buf, (long)strlen(buf) - 1);
}

static void
log_flood(void)
{
	static struct log_limit l = LOG_LIMIT_INIT("floods");

	for (int i = 0; i < 1000; i++)
		log_limited(&l, LOG_LEVEL_WARN, "flood %d", i);
	log_limit_flush(&l);
	log_limit_flush(&l);
}

static void
test_limited(void **state)
{
	char buf[65536];
	int lines = 0;

	(void)state;
	capture(log_flood, buf, sizeof(buf));
	for (char *p = buf; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	/* The burst, maybe a few more if the clock moved, and one count. */
	assert_true(lines >= 2 && lines < 50);
	assert_non_null(strstr(buf, "flood 0\n"));
	assert_null(strstr(buf, "flood 999\n"));
	assert_non_null(strstr(buf, " similar messages (floods)\n"));
	/* A second flush with nothing dropped says nothing. */
	assert_null(strstr(strstr(buf, "similar") + 1, "similar"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escaped),
	    cmocka_unit_test(test_long_line_cut),
	    cmocka_unit_test(test_limited),
	};

	log_init("test", LOG_LEVEL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
