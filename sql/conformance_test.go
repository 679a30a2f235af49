package sql_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
)

// openEngine opens a fresh data store and key store on engine with opts (none:
// the defaults), closed when t ends, and returns them with the data store's DSN.
func openEngine(t *testing.T, engine string, opts ...stsql.Options) (*stsql.Store, *stsql.KeyStore, string) {
	t.Helper()
	ctx := context.Background()
	var dataDSN, keysDSN string
	switch engine {
	case stsql.SQLite:
		dir := t.TempDir()
		dataDSN, keysDSN = filepath.Join(dir, "steward.db"), filepath.Join(dir, "keys.db")
	case stsql.Postgres:
		dataDSN, keysDSN = stewardtest.PostgresDatabases(t)
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	var o stsql.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := stsql.OpenStore(ctx, dataDSN, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ks, err := stsql.OpenKeyStore(ctx, keysDSN, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return s, ks, dataDSN
}

// openRaw opens the database at dsn on engine directly, past the store, as
// another process would; closed when t ends.
func openRaw(t *testing.T, engine, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if engine == stsql.Postgres {
		driver = "pgx"
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func TestStoreConformance(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			stewardtest.RunStoreConformance(t, func(t *testing.T) (steward.Store, keyring.KeyStore) {
				s, ks, _ := openEngine(t, engine)
				return s, ks
			})
		})
	}
}

// TestMarkDeliveredWipesPayload checks in the database itself what the Store
// interface cannot show: a delivered message keeps no payload (it holds PI).
func TestMarkDeliveredWipesPayload(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			s, _, dsn := openEngine(t, engine)
			at := time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)
			if err := s.Write(ctx, func(tx steward.Tx) error {
				for _, id := range []string{"m-1", "m-2"} {
					if err := tx.Enqueue(ctx, &steward.OutboxMessage{ID: id, Channel: "sms", SubjectID: "s1", Kind: "otp",
						Payload: []byte("sealed-" + id), CreatedAt: at, NextAttemptAt: at}); err != nil {
						return err
					}
				}
				return tx.MarkDelivered(ctx, "m-1", at.Add(time.Minute))
			}); err != nil {
				t.Fatal(err)
			}

			rows, err := openRaw(t, engine, dsn).QueryContext(ctx, `SELECT id, payload, delivered_at FROM outbox ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			got := map[string]string{}
			delivered := map[string]int64{}
			for rows.Next() {
				var id string
				var payload []byte
				var at int64
				if err := rows.Scan(&id, &payload, &at); err != nil {
					t.Fatal(err)
				}
				got[id], delivered[id] = string(payload), at
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if got["m-1"] != "" || delivered["m-1"] != at.Add(time.Minute).UnixMicro() {
				t.Errorf("delivered message: payload %q, delivered_at %d; want empty, %d", got["m-1"], delivered["m-1"], at.Add(time.Minute).UnixMicro())
			}
			if got["m-2"] != "sealed-m-2" || delivered["m-2"] != 0 {
				t.Errorf("undelivered message: payload %q, delivered_at %d; want sealed-m-2, 0", got["m-2"], delivered["m-2"])
			}
		})
	}
}
