/*
 * UTF-8 validation. proto3 string fields must hold valid UTF-8, so the
 * importer refuses anything else and workers check request authors.
 */
#ifndef QUOTERD_UTF8_H
#define QUOTERD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF), as RFC 3629 defines it. */
bool utf8_valid(const char *s, size_t len);

#endif
