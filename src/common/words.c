/*
 * Word splitting and case folding with utf8proc's tables (no Unicode
 * tables of ours). ASCII, most of any real corpus, takes a path of its
 * own: its folding is tolower() and its classes are isalnum().
 */
#include "words.h"

#include <string.h>
#include <utf8proc.h>

static bool
is_word_cp(utf8proc_int32_t cp)
{
	utf8proc_category_t c = utf8proc_category(cp);

	return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
	    (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

static bool
is_space_cp(utf8proc_int32_t cp)
{
	utf8proc_category_t c;

	if (cp == ' ' || (cp >= '\t' && cp <= '\r'))
		return true;
	c = utf8proc_category(cp);
	return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL ||
	    c == UTF8PROC_CATEGORY_ZP;
}

/* ASCII's letters and digits, and every byte of a multi-byte sequence
 * marked for a closer look. */
static const unsigned char ascii_class[256] = {
    ['0' ... '9'] = 1,
    ['A' ... 'Z'] = 1,
    ['a' ... 'z'] = 1,
    [0x80 ... 0xff] = 2,
};

/* The code point at s[i], its length in *n; U+FFFD-like -1 on a bad
 * sequence, which valid input never has. */
static utf8proc_int32_t
cp_at(const char *s, size_t len, size_t i, size_t *n)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t r;

	r = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
	    (utf8proc_ssize_t)(len - i), &cp);
	*n = r > 0 ? (size_t)r : 1;
	return r > 0 ? cp : -1;
}

bool
words_next(const char *s, size_t len, size_t *pos, size_t *start, size_t *wlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = *pos, n, b;

	/* Past what is not a word. */
	for (;;) {
		while (i < len && ascii_class[u[i]] == 0)
			i++;
		if (i >= len) {
			*pos = i;
			return false;
		}
		if (ascii_class[u[i]] == 1 || is_word_cp(cp_at(s, len, i, &n)))
			break;
		i += n;
	}
	b = i;
	for (;;) {
		while (i < len && ascii_class[u[i]] == 1)
			i++;
		if (i >= len || ascii_class[u[i]] == 0 ||
		    !is_word_cp(cp_at(s, len, i, &n)))
			break;
		i += n;
	}
	*pos = i;
	*start = b;
	*wlen = i - b;
	return true;
}

/* Appends the folding of cp to out[*o..cap); false if it does not fit. */
static bool
fold_cp(utf8proc_int32_t cp, char *out, size_t cap, size_t *o)
{
	utf8proc_int32_t buf[8];
	utf8proc_ssize_t n;
	int boundclass = 0;

	n = utf8proc_decompose_char(cp, buf, 8, UTF8PROC_CASEFOLD, &boundclass);
	if (n < 0 || n > 8)
		return false;
	for (utf8proc_ssize_t k = 0; k < n; k++) {
		utf8proc_uint8_t enc[4];
		size_t len = (size_t)utf8proc_encode_char(buf[k], enc);

		if (len == 0 || cap - *o < len)
			return false;
		memcpy(out + *o, enc, len);
		*o += len;
	}
	return true;
}

size_t
words_fold(const char *s, size_t len, char *out, size_t cap)
{
	size_t i = 0, o = 0, n;

	/* The usual word: ASCII, folded by tolower(). */
	if (len <= cap) {
		for (; i < len && (unsigned char)s[i] < 0x80; i++)
			out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32
								   : s[i]);
		if (i == len)
			return len;
		o = i;
	}

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80) {
			if (o == cap)
				return 0;
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			i++;
			continue;
		}
		if (!fold_cp(cp_at(s, len, i, &n), out, cap, &o))
			return 0;
		i += n;
	}
	return o;
}

size_t
words_fold_name(const char *s, size_t len, char *out, size_t cap)
{
	size_t i = 0, o = 0, n;
	bool space = false;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		utf8proc_int32_t cp;

		/* ASCII without utf8proc. */
		if (c < 0x80 && c != ' ' && (c < '\t' || c > '\r')) {
			if (space) {
				if (o == cap)
					return 0;
				out[o++] = ' ';
				space = false;
			}
			if (o == cap)
				return 0;
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			i++;
			continue;
		}
		cp = cp_at(s, len, i, &n);
		i += n;
		if (is_space_cp(cp)) {
			space = o > 0;
			continue;
		}
		if (space) {
			if (o == cap)
				return 0;
			out[o++] = ' ';
			space = false;
		}
		if (!fold_cp(cp, out, cap, &o))
			return 0;
	}
	return o;
}

uint32_t
words_length(const char *s, size_t len)
{
	const uint64_t high = 0x8080808080808080ULL;
	size_t i = 0, cont = 0;

	/* Code points are the bytes that are not continuation bytes
	 * (10xxxxxx): counted eight at a time. */
	for (; len - i >= 8; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, sizeof(x));
		cont += (size_t)__builtin_popcountll(x & ~(x << 1) & high);
	}
	for (; i < len; i++)
		cont += ((unsigned char)s[i] & 0xc0) == 0x80;
	return (uint32_t)(len - cont);
}

bool
words_tag_valid(const char *s, size_t len)
{
	if (len == 0 || len > WORDS_MAX_TAG)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}
