/*
 * A table-free UTF-8 validator following RFC 3629's byte-sequence
 * grammar; ASCII runs, the common case, take the first branch.
 */
#include "utf8.h"

#include <stdint.h>

bool
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	const unsigned char *end = s + len;

	while (s < end) {
		unsigned char c = *s;
		unsigned char lo = 0x80, hi = 0xbf;
		int more;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return false;
		}
		if (end - s <= more)
			return false;
		if (s[1] < lo || s[1] > hi)
			return false;
		for (int i = 2; i <= more; i++)
			if ((s[i] & 0xc0) != 0x80)
				return false;
		s += more + 1;
	}
	return true;
}
