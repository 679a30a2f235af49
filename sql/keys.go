package sql

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
)

// KeyStore keeps wrapped data keys in a database of their own (keyring.KeyStore).
// Destroying a key removes its bytes and keeps a tombstone row, so a shredded
// subject can never be given a fresh key that would make old copies readable.
type KeyStore struct {
	db  *DB
	Now func() time.Time
}

var _ keyring.KeyStore = (*KeyStore)(nil)

// OpenKeyStore opens the key store at dsn (a SQLite path or a PostgreSQL URL of a
// database other than the data store's).
func OpenKeyStore(ctx context.Context, dsn string, opts Options) (*KeyStore, error) {
	db, err := OpenKeys(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	return &KeyStore{db: db, Now: time.Now}, nil
}

// Close closes the key store.
func (k *KeyStore) Close() error { return k.db.Close() }

// Ping reports whether the key store answers.
func (k *KeyStore) Ping(ctx context.Context) error { return k.db.Ping(ctx) }

// PutKey stores a wrapped key; ECONFLICT if the subject has or had one.
func (k *KeyStore) PutKey(ctx context.Context, w keyring.WrappedKey) error {
	return k.PutKeys(ctx, []keyring.WrappedKey{w})
}

// PutKeys stores keys in one transaction; ECONFLICT if any subject has or had one.
func (k *KeyStore) PutKeys(ctx context.Context, keys []keyring.WrappedKey) error {
	return k.db.writeTx(ctx, func(tx *Tx) error {
		for _, w := range keys {
			_, err := tx.exec(ctx, "insert data key", `INSERT INTO data_keys (subject_id, key_id, kek_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?)`,
				w.SubjectID, w.KeyID, w.KEKID, w.Wrapped, micros(w.CreatedAt))
			if steward.ErrorCode(err) == steward.ECONFLICT {
				return steward.Errorf(steward.ECONFLICT, "the subject has a data key already")
			} else if err != nil {
				return err
			}
		}
		return nil
	})
}

// GetKey returns the subject's wrapped key: ENOTFOUND if none, EGONE if destroyed.
func (k *KeyStore) GetKey(ctx context.Context, subjectID string) (keyring.WrappedKey, error) {
	var w keyring.WrappedKey
	var created, destroyed int64
	err := k.db.readTx(ctx, func(tx *Tx) error {
		err := tx.row(ctx, `SELECT subject_id, key_id, kek_id, wrapped, created_at, destroyed_at FROM data_keys WHERE subject_id = ?`, subjectID).
			Scan(&w.SubjectID, &w.KeyID, &w.KEKID, &w.Wrapped, &created, &destroyed)
		if err != nil {
			return notFound("data key", err)
		}
		return nil
	})
	if err != nil {
		return keyring.WrappedKey{}, err
	}
	if destroyed != 0 {
		return keyring.WrappedKey{}, steward.Errorf(steward.EGONE, "the subject's data key was destroyed")
	}
	w.CreatedAt = fromMicros(created)
	return w, nil
}

// DestroyKey wipes the subject's key bytes, keeping a tombstone, and returns the
// key ids destroyed. Calling it again returns the same ids; ENOTFOUND if the
// subject never had a key.
func (k *KeyStore) DestroyKey(ctx context.Context, subjectID string) ([]string, error) {
	var keyID string
	err := k.db.writeTx(ctx, func(tx *Tx) error {
		if err := tx.row(ctx, `SELECT key_id FROM data_keys WHERE subject_id = ?`, subjectID).Scan(&keyID); err != nil {
			return notFound("data key", err)
		}
		_, err := tx.exec(ctx, "destroy data key", `UPDATE data_keys SET wrapped = NULL, destroyed_at = ? WHERE subject_id = ? AND destroyed_at = 0`, micros(k.Now()), subjectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Leave no copy of the key bytes behind: on SQLite, secure_delete zeroed the
	// freed cells and a truncating checkpoint empties the WAL; on PostgreSQL, VACUUM
	// makes the dead tuple's space reusable at once.
	if k.db.dialect == SQLite {
		_, err = k.db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	} else {
		_, err = k.db.write.ExecContext(ctx, `VACUUM data_keys`)
	}
	if err != nil {
		return nil, mapErr(err, "purge destroyed key")
	}
	return []string{keyID}, nil
}

// SharesDatabaseWith reports whether the key store lives in the same database as
// the data store s, however differently their addresses are written: the data
// store's migration record then lists the key store's migrations too. The key
// store must be a database of its own, or destroying a key would not reach the
// copies of the data.
func (k *KeyStore) SharesDatabaseWith(ctx context.Context, s *Store) (bool, error) {
	names, err := fs.Glob(keyMigrations, "keymigrations/*.sql")
	if err != nil || len(names) == 0 {
		return false, err
	}
	var n int
	err = s.readTx(ctx, func(tx *Tx) error {
		return tx.row(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name = ?`, filepath.Base(names[0])).Scan(&n)
	})
	return n > 0, mapErr(err, "compare databases")
}
