/*
 * TLS certificates and their reload (see tls.h). Only a checker child
 * (check.c) reads the certificate files, and the master only passes on
 * the memory file it wrote; workers read what it checked, so a
 * half-written or mismatched pair never reaches gRPC.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* An encrypted key is refused instead of prompting on the terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

/*
 * One PEM file, NUL-terminated as gRPC wants it: a regular file of at
 * most TLS_FILE_MAX bytes, none of them NUL (which would cut the text
 * short unseen).
 */
static char *
read_pem(const char *key, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO at the path cannot hold the open; only a
	 * regular file is read. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: %s: %s", key, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: %s: %s", key, path,
		    S_ISDIR(st.st_mode) ? strerror(EISDIR)
					: "not a regular file");
		close(fd);
		return NULL;
	}
	if ((buf = malloc(TLS_FILE_MAX + 2)) == NULL) {
		snprintf(err, errlen, "%s: %s: %s", key, path, strerror(errno));
		close(fd);
		return NULL;
	}
	/* One byte past the bound tells a file that is too long. */
	while (len <= TLS_FILE_MAX &&
	    (n = read(fd, buf + len, TLS_FILE_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s: %s", key, path,
			    strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len > TLS_FILE_MAX)
		snprintf(err, errlen, "%s: %s: larger than %d bytes", key, path,
		    TLS_FILE_MAX);
	else if (len == 0)
		snprintf(err, errlen, "%s: %s: empty file", key, path);
	else if (strlen(buf) != len)
		snprintf(err, errlen, "%s: %s: a NUL byte at offset %zu", key,
		    path, strlen(buf));
	else if (strstr(buf, "-----BEGIN ") == NULL)
		snprintf(err, errlen, "%s: %s: not a PEM file", key, path);
	else {
		close(fd);
		return buf;
	}
fail:
	close(fd);
	free(buf);
	return NULL;
}

int
tls_read_pair(const struct tls_config *t, struct tls_pems *p, char *err,
    size_t errlen)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if ((p->cert = read_pem("tls_cert", t->cert, err, errlen)) == NULL ||
	    (p->key = read_pem("tls_key", t->key, err, errlen)) == NULL ||
	    (t->client_ca[0] != '\0' &&
		(p->ca = read_pem("tls_client_ca", t->client_ca, err,
		     errlen)) == NULL)) {
		tls_free_pems(p);
		return -1;
	}
	/* gRPC would only find a mismatch in each worker. */
	if ((rc = tls_check_pair(p->cert, p->key)) != 0) {
		snprintf(err, errlen, "%s (%s, %s)", tls_strerror(rc), t->cert,
		    t->key);
		tls_free_pems(p);
		return -1;
	}
	return 0;
}

void
tls_free_pems(struct tls_pems *p)
{
	free(p->cert);
	free(p->key);
	free(p->ca);
	p->cert = p->key = p->ca = NULL;
}

int
tls_check_pair(const char *cert_pem, const char *key_pem)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio;
	int rc;

	if ((bio = BIO_new_mem_buf(cert_pem, -1)) != NULL) {
		cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
	}
	if ((bio = BIO_new_mem_buf(key_pem, -1)) != NULL) {
		key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
	}
	if (cert == NULL)
		rc = TLS_ENOCERT;
	else if (key == NULL)
		rc = TLS_ENOKEY;
	else if (X509_check_private_key(cert, key) != 1)
		rc = TLS_EMISMATCH;
	else
		rc = 0;
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

const char *
tls_strerror(int rc)
{
	switch (rc) {
	case TLS_ENOCERT:
		return "tls_cert: no certificate in it";
	case TLS_ENOKEY:
		return "tls_key: no private key in it, or an encrypted one";
	case TLS_EMISMATCH:
		return "tls_key does not match the certificate in tls_cert";
	}
	return strerror(rc);
}

static int
write_all(int fd, const char *s, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, s, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int
tls_publish(const struct tls_pems *p, int *fd)
{
	const char *ca = p->ca != NULL ? p->ca : "";
	int mfd, rc;

	/* Three NUL-terminated strings: certificate, key, client CAs. */
	if ((mfd = memfd_create("quoterd-tls", MFD_CLOEXEC)) < 0 ||
	    write_all(mfd, p->cert, strlen(p->cert) + 1) != 0 ||
	    write_all(mfd, p->key, strlen(p->key) + 1) != 0 ||
	    write_all(mfd, ca, strlen(ca) + 1) != 0 ||
	    (*fd >= 0 && dup3(mfd, *fd, O_CLOEXEC) < 0)) {
		rc = errno;
		if (mfd >= 0)
			close(mfd);
		return rc;
	}
	if (*fd < 0)
		*fd = mfd;
	else
		close(mfd);
	return 0;
}

/* A worker's copy of the master's memory file, and the file last read. */
static struct {
	pthread_mutex_t lock;
	int fd;
	dev_t dev;
	ino_t ino;
} source = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0};

/*
 * gRPC's certificate fetcher, called at start and before each handshake:
 * a new file at the worker's descriptor (tls_update()) is a new
 * certificate.
 */
static grpc_ssl_certificate_config_reload_status
fetch(void *arg, grpc_ssl_server_certificate_config **config)
{
	grpc_ssl_certificate_config_reload_status rc =
	    GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
	grpc_ssl_pem_key_cert_pair pair;
	const char *ca;
	char *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd;

	(void)arg;
	pthread_mutex_lock(&source.lock);
	fd = source.fd;
	if (fstat(fd, &st) != 0)
		goto done;
	if (st.st_dev == source.dev && st.st_ino == source.ino) {
		rc = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
		goto done;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL ||
	    (n = pread(fd, buf, (size_t)st.st_size, 0)) != st.st_size)
		goto done;
	buf[n] = '\0';
	/* Certificate, key and CAs, each NUL-terminated. */
	pair.cert_chain = buf;
	pair.private_key = buf + strlen(buf) + 1;
	if (pair.private_key >= buf + n)
		goto done;
	ca = pair.private_key + strlen(pair.private_key) + 1;
	if (ca >= buf + n)
		goto done;
	/* gRPC 1.51 asserts that a fetched config has root certificates,
	 * even when no client certificate is asked for and they go
	 * unused: the server's own chain stands in. */
	*config =
	    grpc_ssl_server_certificate_config_create(*ca ? ca
							  : pair.cert_chain,
		&pair, 1);
	source.dev = st.st_dev;
	source.ino = st.st_ino;
	rc = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
done:
	pthread_mutex_unlock(&source.lock);
	free(buf);
	return rc;
}

int
tls_update(int fd)
{
	int rc = 0;

	/* The same descriptor number, a new file: fetch() sees a new one. */
	pthread_mutex_lock(&source.lock);
	if (source.fd < 0) {
		source.fd = fd;
		fd = -1;
	} else if (dup3(fd, source.fd, O_CLOEXEC) < 0) {
		rc = errno;
	}
	pthread_mutex_unlock(&source.lock);
	if (fd >= 0)
		close(fd);
	return rc;
}

grpc_server_credentials *
tls_server_credentials(const struct config *c)
{
	grpc_ssl_server_credentials_options *opts;

	/* Inherited from the master at fork: the files as they were then. */
	source.fd = c->tls.fd;
	/* Whether clients must present a certificate is fixed at start;
	 * a reload changes the certificate, key and CAs. */
	opts = grpc_ssl_server_credentials_create_options_using_config_fetcher(
	    c->tls.client_ca[0] != '\0'
		? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
		: GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	    fetch, NULL);
	if (opts == NULL)
		return NULL;
	return grpc_ssl_server_credentials_create_with_options(opts);
}
