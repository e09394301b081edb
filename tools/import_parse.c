/*
 * The text and fortune formats (see import_parse.h and README.md,
 * "Importing quotes"). Each line or entry is checked whole before any of
 * it is accepted; the reason for a refusal is the message the user sees.
 */
#include "import_parse.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

#define BOM "\xef\xbb\xbf"
/* How far back backspaces may reach, in characters: further than a
 * terminal line is no overstrike, and the bound keeps striking over a
 * character of another length (the rest of the line moves) cheap. */
#define MAX_BACK 256

/* Lines end in "\n", "\r\n" or a lone "\r" (old Mac files), as Python's
 * universal newlines have it; anything else would import a CR-only file
 * as one line, and so as one wrong quote. */
struct lines {
	char *p, *end;
	char *nl, *cr; /* the next '\n', '\r' from p, or end; NULL: unknown */
	size_t lineno;
};

struct why {
	char buf[64];
};

static bool
next_line(struct lines *l, char **line, size_t *len)
{
	char *eol;

	if (l->p >= l->end)
		return false;
	/* Each search runs once per character found, not once per line:
	 * a CR-only file has no '\n' to find, ever. */
	if (l->nl == NULL || l->nl < l->p)
		if ((l->nl = memchr(l->p, '\n', (size_t)(l->end - l->p))) ==
		    NULL)
			l->nl = l->end;
	if (l->cr == NULL || l->cr < l->p)
		if ((l->cr = memchr(l->p, '\r', (size_t)(l->end - l->p))) ==
		    NULL)
			l->cr = l->end;
	eol = l->nl < l->cr ? l->nl : l->cr;
	*line = l->p;
	*len = (size_t)(eol - l->p);
	if (eol == l->end)
		l->p = l->end;
	else if (*eol == '\r' && eol + 1 < l->end && eol[1] == '\n')
		l->p = eol + 2;
	else
		l->p = eol + 1;
	l->lineno++;
	return true;
}

/*
 * Unicode's White_Space characters beyond ASCII, but U+0085, a control
 * and refused as one (so are \v and \f; space, tab and line ends are
 * space_len()'s). The property has 25 code points and has changed once
 * since Unicode 4.0 (U+180E left it in 6.3), so naming them here costs
 * less than a Unicode library in the importer and its fuzz target.
 */
static bool
is_space_cp(uint32_t cp)
{
	return cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
	    cp == 0x3000;
}

static bool
is_cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/*
 * The length of the white space character s[0..n) if it is one, else 0;
 * s need not be valid UTF-8 (fortune entries are trimmed before they are
 * checked), only bytes that encode a space exactly match.
 */
static size_t
space_len(const unsigned char *s, size_t n)
{
	if (n == 1)
		return s[0] == ' ' || s[0] == '\t' || s[0] == '\n' ||
		    s[0] == '\r';
	if (n == 2 && s[0] == 0xc2 && is_cont(s[1]))
		return is_space_cp(
			   ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f))
		    ? 2
		    : 0;
	if (n == 3 && s[0] >= 0xe1 && s[0] <= 0xe3 && is_cont(s[1]) &&
	    is_cont(s[2]))
		return is_space_cp(((uint32_t)(s[0] & 0x0f) << 12) |
			   ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f))
		    ? 3
		    : 0;
	return 0;
}

static void
trim(char **str, size_t *len)
{
	const unsigned char *s = (const unsigned char *)*str;
	size_t n = *len, k = 0;

	while (n > 0) {
		/* An ASCII byte that is not a space: no space starts here
		 * (the longer ones start at 0xc2 or above). */
		if (s[0] < 0x80 && !space_len(s, 1))
			break;
		for (k = 1; k <= 3 && k <= n; k++)
			if (space_len(s, k))
				break;
		if (k > 3 || k > n)
			break;
		s += k;
		n -= k;
	}
	while (n > 0) {
		/* Nor ends here: the longer ones end in 0x80 or above. */
		if (s[n - 1] < 0x80 && !space_len(s + n - 1, 1))
			break;
		for (k = 1; k <= 3 && k <= n; k++)
			if (space_len(s + n - k, k))
				break;
		if (k > 3 || k > n)
			break;
		n -= k;
	}
	*str = (char *)s;
	*len = n;
}

/*
 * If s[i..) starts a character no quote may hold, says why. s is valid
 * UTF-8, so a lead byte's continuation bytes are there to look at.
 */
static const char *
refused_char(const unsigned char *s, size_t i, struct why *w)
{
	unsigned char c = s[i];

	if (c == '\0')
		return "NUL byte in line";
	if ((c < 0x20 && c != '\t') || c == 0x7f) {
		snprintf(w->buf, sizeof(w->buf), "control character U+%04X", c);
		return w->buf;
	}
	if (c == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
		snprintf(w->buf, sizeof(w->buf), "control character U+%04X",
		    s[i + 1]);
		return w->buf;
	}
	if (c == 0xef && s[i + 1] == 0xbb && s[i + 2] == 0xbf)
		return "byte-order mark (U+FEFF) not at the start of the file";
	return NULL;
}

/*
 * Whether s[0..len) is all printable ASCII (0x20..0x7e), as nearly every
 * line is: then it is valid UTF-8 with no control character, and one
 * pass, eight bytes a step, says so.
 */
static bool
printable_ascii(const unsigned char *s, size_t len)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
	uint64_t bad = 0;
	size_t i = 0;

	for (; len - i >= 8; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, sizeof(x));
		/* Some byte below 0x20 (exact, for "some"), or above 0x7e
		 * (0x7f becomes 0x80 once one is added; 0x80 and above have
		 * the high bit already). */
		bad |= ((x - ones * 0x20) & ~x) | (x + ones) | x;
	}
	for (; i < len; i++)
		bad |= (uint64_t)(s[i] < 0x20 || s[i] > 0x7e) << 7;
	return (bad & high) == 0;
}

/* Text-format lines are taken as they are: valid UTF-8, no controls. */
static const char *
check_line(const char *str, size_t len, struct why *w)
{
	const unsigned char *s = (const unsigned char *)str;
	const char *why;

	if (printable_ascii(s, len))
		return NULL;
	if (!utf8_valid(str, len))
		return "invalid UTF-8";
	if (memchr(str, '\0', len))
		return "NUL byte in line";
	for (size_t i = 0; i < len; i++) {
		/* Printable ASCII, nearly every byte, in one comparison. */
		if ((unsigned char)(s[i] - 0x20) < 0x5f)
			continue;
		if ((why = refused_char(s, i, w)) != NULL)
			return why;
	}
	return NULL;
}

static size_t
char_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/*
 * Cleans fortune text in place as `col -b` shows it: a character struck
 * over another after a backspace replaces it ("_\bX" and "X\bX", nroff's
 * underline and bold, become X), bells go, and line ends become "\n".
 * Any other control character is refused. s[0..*len) is valid UTF-8 and
 * stays so; it only shrinks, so the writes never pass the reads.
 */
static const char *
clean_fortune(char *str, size_t *len, struct why *w)
{
	unsigned char *s = (unsigned char *)str;
	size_t r = 0, wr = 0, line = 0, cur = 0, back = 0, n = *len;
	const char *why;

	while (r < n) {
		unsigned char ch[4];
		size_t k, old;

		if (s[r] == '\r' || s[r] == '\n') {
			r += s[r] == '\r' && r + 1 < n && s[r + 1] == '\n' ? 2
									   : 1;
			s[wr++] = '\n';
			line = cur = wr;
			back = 0;
			continue;
		}
		if (s[r] == '\a') {
			r++;
			continue;
		}
		if (s[r] == '\b') {
			if (cur == line)
				return "backspace at the start of a line";
			if (++back > MAX_BACK) {
				snprintf(w->buf, sizeof(w->buf),
				    "backspace over more than %d characters",
				    MAX_BACK);
				return w->buf;
			}
			do
				cur--;
			while (cur > line && is_cont(s[cur]));
			r++;
			continue;
		}
		if ((why = refused_char(s, r, w)) != NULL)
			return why;
		k = char_len(s[r]);
		memcpy(ch, s + r, k);
		r += k;
		if (cur == wr) {
			memmove(s + wr, ch, k);
			wr += k;
			cur = wr;
			continue;
		}
		/* Struck over the character at cur: the last one wins. The
		 * line so far holds only characters already read, so moving
		 * its tail for a longer one cannot reach s[r]. */
		old = char_len(s[cur]);
		if (old != k) {
			memmove(s + cur + k, s + cur + old, wr - cur - old);
			wr = wr + k - old;
		}
		memcpy(s + cur, ch, k);
		cur += k;
		back--;
	}
	*len = wr;
	return NULL;
}

/* The checks both formats make once a quote is split and trimmed. */
static const char *
check_parts(size_t textlen, size_t authorlen, struct why *w)
{
	if (textlen == 0)
		return "empty quote";
	if (authorlen == 0)
		return "empty author";
	if (textlen > PARSE_MAX_TEXT) {
		snprintf(w->buf, sizeof(w->buf), "quote longer than %d bytes",
		    PARSE_MAX_TEXT);
		return w->buf;
	}
	if (authorlen > PARSE_MAX_AUTHOR) {
		snprintf(w->buf, sizeof(w->buf),
		    "author name longer than %d bytes", PARSE_MAX_AUTHOR);
		return w->buf;
	}
	return NULL;
}

static int
accept(const struct parse_cb *cb, char *text, size_t textlen, char *author,
    size_t authorlen)
{
	/* protobuf-c wants C strings. The byte after each is white space,
	 * the '~', a line end or the NUL after the input: all passed. */
	text[textlen] = '\0';
	author[authorlen] = '\0';
	return cb->quote(cb->arg, text, textlen, author, authorlen);
}

static void
progress(const struct parse_cb *cb, const struct lines *l, const char *buf)
{
	if (cb->progress != NULL && (l->lineno & 0xffff) == 0)
		cb->progress(cb->arg, (size_t)(l->p - buf));
}

static int
parse_text(char *buf, size_t len, const struct parse_cb *cb)
{
	struct lines l = {buf, buf + len, NULL, NULL, 0};
	char *line, *text, *author, *tilde;
	size_t linelen, textlen, authorlen;
	const char *why;
	struct why w;
	int rc;

	while (next_line(&l, &line, &linelen)) {
		progress(cb, &l, buf);
		if (linelen > PARSE_MAX_TEXT) {
			snprintf(w.buf, sizeof(w.buf),
			    "line longer than %d bytes", PARSE_MAX_TEXT);
			cb->invalid(cb->arg, l.lineno, w.buf);
			continue;
		}
		if ((why = check_line(line, linelen, &w)) != NULL) {
			cb->invalid(cb->arg, l.lineno, why);
			continue;
		}
		trim(&line, &linelen);
		if (linelen == 0)
			continue;
		/* Split at the last '~': quotes may contain one, names not. */
		tilde = NULL;
		for (char *c = line + linelen; c > line; c--)
			if (c[-1] == '~') {
				tilde = c - 1;
				break;
			}
		if (tilde == NULL) {
			cb->invalid(cb->arg, l.lineno,
			    "no '~' between quote and author");
			continue;
		}
		text = line;
		textlen = (size_t)(tilde - text);
		author = tilde + 1;
		authorlen = (size_t)(line + linelen - author);
		trim(&text, &textlen);
		trim(&author, &authorlen);
		if ((why = check_parts(textlen, authorlen, &w)) != NULL) {
			cb->invalid(cb->arg, l.lineno, why);
			continue;
		}
		if ((rc = accept(cb, text, textlen, author, authorlen)) != 0)
			return rc;
	}
	return 0;
}

/*
 * One fortune entry, start[0..end): its lines with their line ends. The
 * attribution is the last non-blank line if it starts with "--"; the
 * quote is the lines before it. Errors name the entry's first line.
 */
static int
fortune_entry(const struct parse_cb *cb, size_t lineno, char *start, char *end)
{
	char *text = start, *author, *last;
	size_t textlen = (size_t)(end - start), authorlen;
	const char *why;
	struct why w;

	trim(&text, &textlen);
	if (textlen == 0)
		return 0;
	for (last = text + textlen;
	     last > text && last[-1] != '\n' && last[-1] != '\r'; last--)
		;
	author = last;
	authorlen = (size_t)(text + textlen - last);
	trim(&author, &authorlen);
	if (last == text || authorlen < 2 || author[0] != '-' ||
	    author[1] != '-') {
		if (cb->unattributed != NULL)
			cb->unattributed(cb->arg, lineno);
		return 0;
	}
	author += 2;
	authorlen -= 2;
	trim(&author, &authorlen);
	textlen = (size_t)(last - text);
	trim(&text, &textlen);
	if (!utf8_valid(text, textlen) || !utf8_valid(author, authorlen))
		why = "invalid UTF-8";
	else if (memchr(text, '\0', textlen) || memchr(author, '\0', authorlen))
		why = "NUL byte in line";
	else if ((why = clean_fortune(text, &textlen, &w)) == NULL &&
	    (why = clean_fortune(author, &authorlen, &w)) == NULL) {
		/* Bells and overstrikes may have hidden white space. */
		trim(&text, &textlen);
		trim(&author, &authorlen);
		why = check_parts(textlen, authorlen, &w);
	}
	if (why != NULL) {
		cb->invalid(cb->arg, lineno, why);
		return 0;
	}
	return accept(cb, text, textlen, author, authorlen);
}

static int
parse_fortune(char *buf, size_t len, const struct parse_cb *cb)
{
	struct lines l = {buf, buf + len, NULL, NULL, 0};
	char *entry = buf, *line;
	size_t linelen, entryline = 1;
	int rc;

	while (next_line(&l, &line, &linelen)) {
		progress(cb, &l, buf);
		if (linelen == 1 && line[0] == '%') {
			if ((rc = fortune_entry(cb, entryline, entry, line)) !=
			    0)
				return rc;
			entry = l.p;
			entryline = l.lineno + 1;
		}
	}
	return fortune_entry(cb, entryline, entry, buf + len);
}

int
parse_input(enum parse_format format, char *buf, size_t len,
    const struct parse_cb *cb)
{
	/* A byte-order mark starts the file; anywhere else it is refused. */
	if (len >= 3 && memcmp(buf, BOM, 3) == 0) {
		buf += 3;
		len -= 3;
	}
	if (format == PARSE_FORTUNE)
		return parse_fortune(buf, len, cb);
	return parse_text(buf, len, cb);
}
