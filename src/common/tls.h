/*
 * TLS certificates: checked by the master before any worker sees them,
 * handed to workers through a memory file the master keeps open, and
 * picked up by each worker at its next handshake after a reload.
 */
#ifndef QUOTERD_TLS_H
#define QUOTERD_TLS_H

#include <stddef.h>

#include <grpc/grpc_security.h>

#include "config.h"

/*
 * Checks that key_pem holds a private key (not encrypted) matching the
 * first certificate of cert_pem; -1 with the reason in err.
 */
int tls_check_pair(const char *cert_pem, const char *key_pem, char *err,
    size_t errlen);
/*
 * Writes c's PEMs into a new memory file. With *fd < 0 it becomes *fd;
 * otherwise it replaces the file at descriptor *fd, so that
 * /proc/MASTER/fd/N names the new one from then on. -1 on error.
 */
int tls_publish(const struct config *c, int *fd, char *err, size_t errlen);
/*
 * SIGHUP in the master: reads c's TLS files again, checks them, and
 * publishes them at c->tls_fd; a bad pair is refused and logged and the
 * old one stays. Nothing without TLS.
 */
void tls_reload(const struct config *c);
/*
 * A worker's server credentials: gRPC fetches the certificate from the
 * master's memory file at start and checks it for a newer one at every
 * handshake. NULL if it cannot be set up.
 */
grpc_server_credentials *tls_server_credentials(const struct config *c);

#endif
