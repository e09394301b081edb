/*
 * Checks a serialized protobuf message's string fields by their length
 * on the wire. protobuf-c hands strings over NUL-terminated, so a NUL
 * inside one hides whatever follows it from any check made after
 * decoding: "Mark Twain\0\xff" would look like "Mark Twain". This module
 * walks the encoded bytes instead, with the message's descriptor, and
 * sees every byte of every string, in nested messages too.
 */
#ifndef QUOTERD_WIRE_H
#define QUOTERD_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

enum wire_result {
	WIRE_OK = 0,
	WIRE_NUL,       /* a string field holds a NUL byte */
	WIRE_UTF8,      /* a string field is not valid UTF-8 */
	WIRE_MALFORMED, /* the bytes are not a protobuf message */
	WIRE_DEPTH      /* messages nested deeper than we follow */
};

/*
 * Checks every string field of the message desc encoded in
 * data[0..len): each must be UTF-8 without NUL (proto3 requires UTF-8;
 * NUL we refuse because the C code after decoding cannot see past it).
 * Unknown fields are skipped. A message that passes may still fail to
 * decode; one that fails would fail or mislead after decoding.
 */
enum wire_result wire_check_strings(const ProtobufCMessageDescriptor *desc,
    const uint8_t *data, size_t len);
const char *wire_strerror(enum wire_result r);

#endif
