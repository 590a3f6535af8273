"""Loaded into a bench worker (`--include bench.dkim_pure_rsa`): DKIM signatures made with dkimpy's own
pure-Python RSA instead of OpenSSL, to measure what the OpenSSL hook of accounts.dkim_keys saves."""

from accounts.dkim_keys import use_openssl_rsa

use_openssl_rsa(False)
