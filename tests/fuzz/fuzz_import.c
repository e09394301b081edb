/*
 * The importer's parsers over arbitrary bytes: the first byte picks the
 * format (even: text, odd: fortune), the rest is one input file. Besides
 * memory errors, every quote the parser accepts must meet its promise
 * (import_parse.h): non-empty, trimmed, valid UTF-8, within the limits,
 * no control character but tab (and line feed in fortune text), no
 * byte-order mark, NUL-terminated inside the buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import_parse.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	enum parse_format format;
	const char *buf;
	size_t len;
	size_t lines; /* an upper bound on the line numbers: line ends + 1 */
};

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: broken: %s\n", __FILE__,       \
			    __LINE__, #cond);                                  \
			abort();                                               \
		}                                                              \
	} while (0)

static void
check_field(const struct run *r, const char *s, size_t len, size_t max,
    int newline_ok)
{
	const unsigned char *u = (const unsigned char *)s;

	CHECK(len > 0 && len <= max);
	CHECK(s >= r->buf && s + len <= r->buf + r->len);
	CHECK(s[len] == '\0');
	CHECK(utf8_valid(s, len));
	for (size_t i = 0; i < len; i++) {
		CHECK(u[i] >= 0x20 || u[i] == '\t' ||
		    (u[i] == '\n' && newline_ok));
		CHECK(u[i] != 0x7f);
		CHECK(!(u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f));
		CHECK(!(u[i] == 0xef && u[i + 1] == 0xbb && u[i + 2] == 0xbf));
	}
	/* Trimmed: no ASCII white space and no U+00A0 at either end. */
	CHECK(u[0] != ' ' && u[0] != '\t' && u[0] != '\n');
	CHECK(u[len - 1] != ' ' && u[len - 1] != '\t' && u[len - 1] != '\n');
	CHECK(!(len >= 2 && u[0] == 0xc2 && u[1] == 0xa0));
	CHECK(!(len >= 2 && u[len - 2] == 0xc2 && u[len - 1] == 0xa0));
}

static int
on_quote(void *arg, char *text, size_t textlen, char *author, size_t authorlen)
{
	const struct run *r = arg;

	check_field(r, text, textlen, PARSE_MAX_TEXT,
	    r->format == PARSE_FORTUNE);
	check_field(r, author, authorlen, PARSE_MAX_AUTHOR, 0);
	/* The text format splits at the last '~'. */
	if (r->format == PARSE_TEXT)
		CHECK(memchr(author, '~', authorlen) == NULL);
	return 0;
}

static void
on_invalid(void *arg, size_t line, const char *why)
{
	const struct run *r = arg;

	CHECK(line >= 1 && line <= r->lines);
	CHECK(why != NULL && *why != '\0');
}

static void
on_unattributed(void *arg, size_t line)
{
	const struct run *r = arg;

	CHECK(r->format == PARSE_FORTUNE);
	CHECK(line >= 1 && line <= r->lines);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r;
	struct parse_cb cb = {on_quote, on_invalid, on_unattributed, NULL, &r};
	char *buf;

	if (size == 0)
		return 0;
	r.format = data[0] & 1 ? PARSE_FORTUNE : PARSE_TEXT;
	r.len = size - 1;
	/* An exact-size copy, so ASan sees any read past buf[len]. */
	if ((buf = malloc(r.len + 1)) == NULL)
		return 0;
	memcpy(buf, data + 1, r.len);
	buf[r.len] = '\0';
	r.buf = buf;
	r.lines = 1;
	for (size_t i = 0; i < r.len; i++)
		r.lines += buf[i] == '\n' || buf[i] == '\r';
	CHECK(parse_input(r.format, buf, r.len, &cb) == 0);
	free(buf);
	return 0;
}
