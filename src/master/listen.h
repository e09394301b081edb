/*
 * The TCP addresses the master binds before it forks anything, so that
 * an address that is bad or in use fails the start, with its reason,
 * instead of failing in every worker. One resolver for all of them.
 */
#ifndef QUOTERD_LISTEN_H
#define QUOTERD_LISTEN_H

#include "config.h"

/*
 * Each returns 0, an errno code, or a getaddrinfo() code (negative),
 * which is about a->host; listen_strerror() says what a code means.
 */

/* Binds a once and lets go: not listening, so it takes no connection. */
int listen_probe(const struct listen_addr *a);
/* A socket listening at a, with room for backlog connections, as *fd. */
int listen_tcp(const struct listen_addr *a, int backlog, int *fd);
const char *listen_strerror(int rc);

#endif
