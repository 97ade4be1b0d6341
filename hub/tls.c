/*
 * hub/tls.c: `fieldsync-hub init`: the hub directory with a self-signed
 * certificate made with GnuTLS, and the public-key pin daemons pass with
 * --pin (curl's "sha256//<base64 of the SubjectPublicKeyInfo digest>").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "hub_int.h"

#define CERT_DAYS 3650

static const char conf_text[] = "# fieldsync-hub configuration: key = value, see docs/hub.md.\n"
                                "# bind = 127.0.0.1\n"
                                "# port = 6984\n"
                                "# cert = cert.pem\n"
                                "# key = key.pem\n"
                                "# threads = 4\n"
                                "# max_connections = 1000\n"
                                "# max_connections_per_addr = 128\n"
                                "# max_body_bytes = 33554432\n"
                                "# max_batch_docs = 10000\n"
                                "# json_depth = 32\n"
                                "# longpoll_max_ms = 60000\n"
                                "# revs_limit = 1000\n"
                                "# access_log = 1\n"
                                "# auth_delay_max_ms = 5000\n"
                                "# doc_cache_bytes = 67108864\n";

static int write_file(const char *path, const void *p, size_t n, mode_t mode, fs_errbuf *eb)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	const char *c = p;
	if (fd < 0)
		return fs_err_set(eb, errno == EEXIST ? FS_E_EXISTS : FS_E_IO,
		                  "cannot create %s: %s", path, strerror(errno));
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return fs_err_set(eb, FS_E_IO, "cannot write %s", path);
		}
		c += w;
		n -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		return fs_err_set(eb, FS_E_IO, "cannot write %s", path);
	return FS_OK;
}

static int pin_of_crt(gnutls_x509_crt_t crt, char pin[FS_HUB_PIN_MAX], fs_errbuf *eb)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t der = {0};
	unsigned char h[crypto_hash_sha256_BYTES];
	int rc = FS_E_INTERNAL;

	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, crt, 0) < 0 ||
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der) < 0) {
		rc = fs_err_set(eb, FS_E_INTERNAL, "cannot read the certificate's public key");
		goto out;
	}
	crypto_hash_sha256(h, der.data, der.size);
	memcpy(pin, "sha256//", 8);
	sodium_bin2base64(pin + 8, FS_HUB_PIN_MAX - 8, h, sizeof(h),
	                  sodium_base64_VARIANT_ORIGINAL);
	rc = FS_OK;
out:
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
	return rc;
}

int fs_hub_pin(const char *dir, char pin[FS_HUB_PIN_MAX], fs_errbuf *eb)
{
	hub_conf c;
	gnutls_datum_t pem = {0};
	gnutls_x509_crt_t crt = NULL;
	int rc;

	pin[0] = '\0';
	hub_conf_defaults(&c, dir);
	{
		char p[600];
		snprintf(p, sizeof(p), "%s/hub.conf", dir);
		if ((rc = hub_conf_read(&c, dir, p, eb)) != FS_OK)
			return rc;
	}
	if (gnutls_load_file(c.cert, &pem) < 0)
		return fs_err_set(eb, FS_E_NOTFOUND, "cannot read %s", c.cert);
	if (gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM) < 0) {
		rc = fs_err_set(eb, FS_E_INPUT, "%s is not a PEM certificate", c.cert);
		goto out;
	}
	rc = pin_of_crt(crt, pin, eb);
out:
	gnutls_x509_crt_deinit(crt);
	gnutls_free(pem.data);
	return rc;
}

static int add_name(gnutls_x509_crt_t crt, const char *name)
{
	unsigned char ip[16];
	if (inet_pton(AF_INET, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
		                                            GNUTLS_FSAN_APPEND);
	if (inet_pton(AF_INET6, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
		                                            GNUTLS_FSAN_APPEND);
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
	                                            (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
}

static int make_cert(const char *dir, const char *const *names, size_t n_names,
                     char pin[FS_HUB_PIN_MAX], fs_errbuf *eb)
{
	static const char *const base[] = {"localhost", "127.0.0.1", "::1"};
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t kpem = {0}, cpem = {0};
	unsigned char serial[16], kid[64];
	size_t kid_len = sizeof(kid);
	time_t now = time(NULL);
	char path[600];
	int rc = FS_E_INTERNAL;

	randombytes_buf(serial, sizeof(serial));
	serial[0] &= 0x7f; /* a positive serial number */
	if (gnutls_x509_privkey_init(&key) < 0 ||
	    gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
	    gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, now + (time_t)CERT_DAYS * 86400) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "fieldsync-hub",
	                                  13) < 0 ||
	    gnutls_x509_crt_set_key(crt, key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(crt, 1, 0) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
	                                           GNUTLS_KEY_KEY_CERT_SIGN) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
	    gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len) < 0 ||
	    gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len) < 0) {
		rc = fs_err_set(eb, FS_E_INTERNAL, "cannot make the certificate");
		goto out;
	}
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]) + n_names; i++) {
		const char *nm = i < 3 ? base[i] : names[i - 3];
		if (strlen(nm) == 0 || strlen(nm) > 253 || add_name(crt, nm) < 0) {
			rc = fs_err_set(eb, FS_E_ARG, "bad host name %.64s", nm);
			goto out;
		}
	}
	if (gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0 ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem) < 0 ||
	    gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
	                                      &kpem) < 0) {
		rc = fs_err_set(eb, FS_E_INTERNAL, "cannot sign the certificate");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	if ((rc = write_file(path, kpem.data, kpem.size, 0600, eb)) != FS_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	if ((rc = write_file(path, cpem.data, cpem.size, 0644, eb)) != FS_OK)
		goto out;
	rc = pin_of_crt(crt, pin, eb);
out:
	if (kpem.data) {
		sodium_memzero(kpem.data, kpem.size);
		gnutls_free(kpem.data);
	}
	gnutls_free(cpem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rc;
}

int fs_hub_init(const char *dir, const char *const *names, size_t n_names, char pin[FS_HUB_PIN_MAX],
                fs_errbuf *eb)
{
	char path[600];
	struct stat sb;
	hub_auth *a = NULL;
	int rc;

	pin[0] = '\0';
	if (sodium_init() < 0)
		return fs_err_set(eb, FS_E_CRYPTO_INIT, "libsodium could not start");
	if (strlen(dir) > 400)
		return fs_err_set(eb, FS_E_ARG, "directory path too long");
	snprintf(path, sizeof(path), "%s/hub.db", dir);
	if (stat(path, &sb) == 0)
		return fs_err_set(eb, FS_E_EXISTS, "%s already holds a hub", dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fs_err_set(eb, FS_E_IO, "cannot create %s: %s", dir, strerror(errno));
	if (chmod(dir, 0700) != 0)
		return fs_err_set(eb, FS_E_IO, "cannot set the mode of %s", dir);
	snprintf(path, sizeof(path), "%s/dbs", dir);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return fs_err_set(eb, FS_E_IO, "cannot create %s", path);
	if ((rc = make_cert(dir, names, n_names, pin, eb)) != FS_OK)
		return rc;
	snprintf(path, sizeof(path), "%s/hub.conf", dir);
	if ((rc = write_file(path, conf_text, sizeof(conf_text) - 1, 0600, eb)) != FS_OK &&
	    rc != FS_E_EXISTS)
		return rc;
	if ((rc = hub_auth_open(dir, 1, &a, eb)) != FS_OK)
		return rc;
	hub_auth_close(a);
	return FS_OK;
}
