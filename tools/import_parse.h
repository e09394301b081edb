/*
 * The importer's input formats, parsed and checked apart from any I/O so
 * that the fuzz target (tests/fuzz/fuzz_import.c) can drive them with
 * arbitrary bytes. quotes-import.c reads the files and writes the
 * database; everything that decides what a quote is lives here.
 */
#ifndef QUOTERD_IMPORT_PARSE_H
#define QUOTERD_IMPORT_PARSE_H

#include <stddef.h>

/* The longest text-format line, and the longest quote in either format:
 * far below gRPC's default 4 MiB message limit, which every client has. */
#define PARSE_MAX_TEXT 65536
/* The longest author name: LMDB's largest key, with its default build. */
#define PARSE_MAX_AUTHOR 511

enum parse_format { PARSE_TEXT, PARSE_FORTUNE };

struct parse_cb {
	/*
	 * A quote that passed every check: both strings are non-empty,
	 * trimmed, valid UTF-8 without control characters (but tab, and
	 * line feeds in fortune text), within the limits above, and
	 * NUL-terminated inside the buffer. A nonzero return (with errno
	 * set) ends the parse, which then returns it.
	 */
	int (*quote)(void *arg, char *text, size_t textlen, char *author,
	    size_t authorlen);
	/* A line (text) or entry (fortune, its first line) refused. */
	void (*invalid)(void *arg, size_t line, const char *why);
	/* A fortune entry without an attribution, skipped; may be NULL. */
	void (*unattributed)(void *arg, size_t line);
	/* Now and then, how many bytes are parsed; may be NULL. */
	void (*progress)(void *arg, size_t done);
	void *arg;
};

/*
 * Parses one whole input file, buf[0..len), with buf[len] == '\0'. The
 * buffer is changed: quotes are cleaned and NUL-terminated in place and
 * the callbacks get pointers into it. Returns 0, or the first nonzero
 * value cb->quote returned.
 */
int parse_input(enum parse_format format, char *buf, size_t len,
    const struct parse_cb *cb);

#endif
