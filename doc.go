// Package steward keeps the promises of a privacy policy: it holds the domain types
// (subjects, fields, purposes, consents, rights requests, audit entries), the rules
// that govern them and the interfaces that storage, keys and delivery implement.
//
// Vocabulary follows PIPL, GB/T 35273-2020 and the GDPR: a subject is the person the
// personal information (PI) is about; a field is one declared item of PI; a purpose
// is why PI is processed, under a legal basis; a consent record says who agreed to
// which purpose under which notice version; a rights request is the subject asking
// to exercise a right (policy §6); erasure makes PI unrecoverable by destroying the
// subject's data key (crypto-shredding).
//
// The package imports only the standard library. Adapters live in sub-packages:
// declaration (policy file), keyring (keys and sealing), sql (storage), contacts
// (address books and phone numbers), outbox (messages), http (API and client).
package steward
