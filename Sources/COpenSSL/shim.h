// OpenSSL 3 (Debian's libssl-dev): only the EVP digest API is used.
#include <openssl/evp.h>
