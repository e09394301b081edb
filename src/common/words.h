/*
 * Words as quoterd's filters see them, one definition for the importer
 * that builds the indexes, the verifier that checks them and the workers
 * that query them: a word is a maximal run of Unicode letters (L*) and
 * numbers (N*), compared after full Unicode case folding (utf8proc), so
 * "Straße" and "STRASSE" are one word. Nothing here allocates: workers
 * fold a request's words on the GetQuote path.
 */
#ifndef QUOTERD_WORDS_H
#define QUOTERD_WORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest query word, in bytes before folding; longer is refused. */
#define WORDS_MAX_WORD 64
/* Room for a folded word or name: folding can triple a character. */
#define WORDS_FOLD_ROOM(n) (3 * (n) + 4)
/* Tags: 1..32 bytes of [a-z0-9-]. */
#define WORDS_MAX_TAG 32

/*
 * Finds the next word of s[0..len) at or after *pos: returns true and
 * sets *start and *wlen, with *pos past it; false when none is left.
 * s must be valid UTF-8.
 */
bool
words_next(const char *s, size_t len, size_t *pos, size_t *start, size_t *wlen);
/*
 * Case-folds s[0..len) into out[0..cap): returns the folded length, or
 * 0 if it does not fit (cap = WORDS_FOLD_ROOM(len) always does).
 */
size_t words_fold(const char *s, size_t len, char *out, size_t cap);
/*
 * An author's name as matched loosely: folded, with every run of white
 * space made one space and none at either end ("  mark\tTWAIN " is
 * "mark twain"). Returns the length, 0 if it does not fit or is empty.
 */
size_t words_fold_name(const char *s, size_t len, char *out, size_t cap);
/* Code points in the valid UTF-8 s[0..len). */
uint32_t words_length(const char *s, size_t len);
/* Whether s[0..len) is a tag name: 1..32 bytes of a-z, 0-9 and '-'. */
bool words_tag_valid(const char *s, size_t len);

#endif
