// Package keyring seals personal information under per-subject data keys.
//
// A key file holds the key-encryption keys (KEKs) and the blind-index key. Each
// subject gets a random 32-byte data key (DEK), wrapped with AES-256-GCM under the
// active KEK and kept by a KeyStore in a database apart from the data. Every PI
// value is sealed with AES-256-GCM under its subject's DEK, bound to the subject id
// and field name. Destroying a subject's DEK (crypto-shredding) makes every copy of
// that subject's sealed values unreadable at once, backups of the data store
// included (policy §6, PIPL Art. 47).
//
// Lookups by phone number, WeChat id or contact use BlindIndex, a keyed HMAC, so
// the database holds no plaintext PI even for the values it must search by.
//
// Layouts, all versioned by their first byte:
//
//	sealed field value: 0x01 || nonce (12 B) || AES-256-GCM(DEK, value, AD = subject id || 0x00 || field) incl. 16 B tag
//	wrapped DEK:        0x01 || nonce (12 B) || AES-256-GCM(KEK, DEK, AD = "steward/dek/v1|" + subject id + "|" + key id) incl. 16 B tag
//
// Nothing in this package keeps a DEK cache: an unwrap costs about 1 µs, less than
// reading the key row (see PERF-LIMITS.md), and a cache would keep shredded keys alive.
package keyring
