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
 * What tls_check_pair() finds wrong. The functions here return 0, one of
 * these, or an errno code; tls_strerror() says what a code means.
 */
#define TLS_ENOCERT   (-30800) /* no certificate in tls_cert */
#define TLS_ENOKEY    (-30801) /* no key in tls_key, or an encrypted one */
#define TLS_EMISMATCH (-30802) /* the key is not the certificate's */

/*
 * Checks that key_pem holds a private key (not encrypted) matching the
 * first certificate of cert_pem.
 */
int tls_check_pair(const char *cert_pem, const char *key_pem);
/*
 * Writes t's PEMs into a new memory file. With *fd < 0 it becomes *fd;
 * otherwise it replaces the file at descriptor *fd, so that workers
 * forked from then on inherit the new one (running ones are sent it, and
 * pass it to tls_update()).
 */
int tls_publish(const struct tls_config *t, int *fd);
const char *tls_strerror(int rc);
/*
 * A worker's server credentials: gRPC fetches the certificate from the
 * worker's copy of the master's memory file at start, and checks it for
 * a newer one (tls_update()) at every handshake. NULL if it cannot be set
 * up.
 */
grpc_server_credentials *tls_server_credentials(const struct config *c);
/*
 * In a worker: the memory file the master sent after a reload (fd, which
 * this takes over) is the one every handshake from now on reads. 0 or an
 * errno code.
 */
int tls_update(int fd);

#endif
