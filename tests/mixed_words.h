/*
 * Words, and what separates them, that the importer's ASCII shortcuts
 * must split and fold exactly as words.c does: ASCII words around the
 * 8-byte steps and the 64-byte limit, the same word in ASCII and not,
 * and words that fold to others.
 * Shared by test_import_index.c and test_quotes_import.c.
 */
#ifndef QUOTERD_TEST_MIXED_WORDS_H
#define QUOTERD_TEST_MIXED_WORDS_H

static const char *const mixed_words[] = {
    "a",
    "I",
    "to",
    "The",
    "LOVE",
    "Quote",
    "strasse",
    "STRASSE",
    "Straße",
    "ǅemal",
    "Ǆ",
    "İstanbul",
    "ΣΊΣΥΦΟΣ",
    "ﬁnal",
    "FINAL",
    "naïve",
    "NAIVE",
    "Ａｂｃ",
    "abc",
    "١٢٣",
    "123",
    "四十二",
    "Ⅻ",
    "x²",
    "café",
    "CAFE",
    "e\xcc\x81",
    "don’t",
    "don't",
    "abcdefg",
    "ABCDEFGH",
    "abcdefghi",
    "0123456789abcdef",
    "0123456789ABCDEFG",
    "_under_score_",
    "x-y",
    "007",
    "7",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "abcdefghijklmnopqrstuvwxyz",
    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "@Z[`z{",
    "ÆØÅ",
    "ſ",
    "straße",
    "Mixed123Case",
    "a1b2c3d4e5f6g7h8",
    "0123456789",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ\xc3\xa9",
    "Z",
    "z",
};

#define NMIXED_WORDS (sizeof(mixed_words) / sizeof(mixed_words[0]))

/* What may stand between them: spaces, punctuation, symbols, non-ASCII
 * dashes and spaces, none of them part of a word. No line break: a line
 * of the text format is one quote. */
static const char *const mixed_seps[] = {
    " ",
    ", ",
    "; ",
    ".",
    "!? ",
    "/",
    "(",
    ") ",
    "\"",
    "'",
    "`",
    "@",
    "[",
    "]",
    "{",
    "}",
    "^",
    "|",
    "\\",
    "#",
    "$",
    "%",
    "&",
    "*",
    "+",
    "=",
    "<",
    ">",
    ":",
    "~",
    "—",
    " … ",
    "\t",
};

#define NMIXED_SEPS (sizeof(mixed_seps) / sizeof(mixed_seps[0]))

#endif
