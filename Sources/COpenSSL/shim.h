#ifndef EDGEPIPE_COPENSSL_SHIM_H
#define EDGEPIPE_COPENSSL_SHIM_H
/* The low-level RSA_* and SHA256_* calls are deprecated in OpenSSL 3 but skip its provider
 * fetch, whose first use builds a name map: ~5 M instructions per process start. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#endif
