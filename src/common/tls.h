/*
 * TLS certificates: read and checked by a checker child (check.c) before
 * any worker sees them, handed to workers through the memory file it
 * writes and the master keeps open, and picked up by each worker at its
 * next handshake after a reload.
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

/* The most bytes a certificate, key or CA file may hold. */
#define TLS_FILE_MAX (1024 * 1024)

/* The PEM files' contents, NUL-terminated; ca NULL when unset. */
struct tls_pems {
	char *cert, *key, *ca;
};

/*
 * Reads the files t names, each at most TLS_FILE_MAX bytes of PEM text
 * without a NUL byte, and checks that the key matches the certificate:
 * 0, or -1 with the reason in err. Untrusted input: only a checker child
 * calls it.
 */
int tls_read_pair(const struct tls_config *t, struct tls_pems *p, char *err,
    size_t errlen);
void tls_free_pems(struct tls_pems *p);
/*
 * Checks that key_pem holds a private key (not encrypted) matching the
 * first certificate of cert_pem.
 */
int tls_check_pair(const char *cert_pem, const char *key_pem);
/*
 * Writes p's PEMs into a new memory file. With *fd < 0 it becomes *fd;
 * otherwise it replaces the file at descriptor *fd, so that workers
 * forked from then on inherit the new one (running ones are sent it, and
 * pass it to tls_update()).
 */
int tls_publish(const struct tls_pems *p, int *fd);
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
