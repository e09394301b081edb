/*
 * A walk over protobuf's wire format (tag, then a varint, a fixed 4 or 8
 * bytes, or a length and that many bytes), just enough to find the
 * string fields and the embedded messages that may hold more of them.
 */
#include "wire.h"

#include <string.h>

#include "utf8.h"

/* Our requests nest two deep; anything far deeper is not one of them. */
#define WIRE_MAX_DEPTH 32

static const char *const wire_messages[] = {
    [WIRE_OK] = "ok",
    [WIRE_NUL] = "a string field holds a NUL byte",
    [WIRE_UTF8] = "a string field is not valid UTF-8",
    [WIRE_MALFORMED] = "request does not decode",
    [WIRE_DEPTH] = "request nests messages too deeply",
};

const char *
wire_strerror(enum wire_result r)
{
	if ((unsigned)r >= sizeof(wire_messages) / sizeof(wire_messages[0]))
		return "unknown wire check result";
	return wire_messages[r];
}

/* Reads a varint at *p (before end); -1 if it is cut short or too long. */
static int
varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		v |= (uint64_t)(**p & 0x7f) << shift;
		if ((*(*p)++ & 0x80) == 0) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

static enum wire_result
check(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
    const uint8_t *end, int depth)
{
	const ProtobufCFieldDescriptor *field;
	enum wire_result r;
	uint64_t key, n;

	if (depth > WIRE_MAX_DEPTH)
		return WIRE_DEPTH;
	while (p < end) {
		if (varint(&p, end, &key) != 0 || (key >> 3) == 0 ||
		    (key >> 3) > UINT32_MAX)
			return WIRE_MALFORMED;
		switch (key & 7) {
		case 0: /* varint */
			if (varint(&p, end, &n) != 0)
				return WIRE_MALFORMED;
			break;
		case 1: /* 64-bit */
			if (end - p < 8)
				return WIRE_MALFORMED;
			p += 8;
			break;
		case 5: /* 32-bit */
			if (end - p < 4)
				return WIRE_MALFORMED;
			p += 4;
			break;
		case 2: /* length-delimited */
			if (varint(&p, end, &n) != 0 || n > (uint64_t)(end - p))
				return WIRE_MALFORMED;
			field = desc == NULL
			    ? NULL
			    : protobuf_c_message_descriptor_get_field(desc,
				  (unsigned)(key >> 3));
			if (field != NULL &&
			    field->type == PROTOBUF_C_TYPE_STRING) {
				if (memchr(p, '\0', (size_t)n) != NULL)
					return WIRE_NUL;
				if (!utf8_valid((const char *)p, (size_t)n))
					return WIRE_UTF8;
			} else if (field != NULL &&
			    field->type == PROTOBUF_C_TYPE_MESSAGE &&
			    (r = check(field->descriptor, p, p + n,
				 depth + 1)) != WIRE_OK) {
				return r;
			}
			p += n;
			break;
		default: /* groups, long gone from proto3, and nonsense */
			return WIRE_MALFORMED;
		}
	}
	return WIRE_OK;
}

enum wire_result
wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
    size_t len)
{
	return check(desc, data, data + len, 0);
}
