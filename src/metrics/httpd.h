/*
 * The metrics process: forked by the master when metrics_listen is set,
 * it serves GET /metrics on the listening socket the master opened, from
 * the shared counters, and nothing else. It is a process of its own so
 * that neither a scrape nor a hostile HTTP client can slow down or crash
 * the gRPC path, and so that the master stays single-threaded.
 */
#ifndef QUOTERD_HTTPD_H
#define QUOTERD_HTTPD_H

#include "metrics.h"

/* Serves on the listening socket fd until SIGTERM; never returns. */
void httpd_main(int fd, struct metrics *m) __attribute__((noreturn));

#endif
