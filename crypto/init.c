/* crypto/init.c: libsodium start-up, once per process. */
#include "crypto.h"

#include <sodium.h>

int fs_crypto_init(void)
{
	/* sodium_init returns 1 when already initialised: that is success. */
	return sodium_init() < 0 ? FS_E_CRYPTO_INIT : FS_OK;
}
