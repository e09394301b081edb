/*
 * UTF-8 validation over arbitrary bytes: it must never read past the
 * buffer, whatever a truncated sequence claims.
 */
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)utf8_valid((const char *)data, size);
	return 0;
}
