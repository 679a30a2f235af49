// Package sql stores Steward's state in SQLite or PostgreSQL through one SQL code
// path. Queries are written once with ? placeholders; on PostgreSQL they are
// rebound to $n. Schema differences live in the migrations (BLOB becomes BYTEA).
package sql

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/stewardhq/steward"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var dataMigrations embed.FS

//go:embed keymigrations/*.sql
var keyMigrations embed.FS

//go:embed accessmigrations/*.sql
var accessMigrations embed.FS

// dataCheckpointPages is how many pages the data store's WAL grows to before
// its writer copies them into the database (SQLite's wal_autocheckpoint; its
// default is 1,000). The WAL file then stays up to this many pages (40 MiB of
// 4 KiB pages) long; a process that crashes replays at most that on restart.
const dataCheckpointPages = 10000

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Options tune a database handle.
type Options struct {
	// MaxBatch caps how many Write calls share one commit. Default 128.
	MaxBatch int
	// Synchronous is SQLite's synchronous pragma: "FULL" (default, every commit is
	// durable) or "NORMAL" (WAL commits survive a crash of the process, not of the OS).
	Synchronous string
	// JournalWindow is how long the access journal gathers entries before moving
	// them into the access log in one transaction (SQLite). Default 20 ms.
	JournalWindow time.Duration
	// DirectAccessLog commits every Store.Audit straight into the access log, as
	// on PostgreSQL, instead of through the access journal. For comparison.
	DirectAccessLog bool
	// LockTimeout bounds how long a write waits for a lock another process holds
	// (SQLite's busy timeout; PostgreSQL's lock_timeout, for the chain head every
	// write transaction takes first) before failing with EUNAVAILABLE, together
	// with every write queued behind it: a stuck process then delays the others'
	// writes by about this much, not forever. Default 10 s. On PostgreSQL a
	// lock_timeout given in the connection URL wins.
	LockTimeout time.Duration
	// Instance names the process a data store serves, for outbox claims
	// (steward.Store.Instance): a random id per `steward serve` process, so that
	// processes sharing one database each deliver a message once. Empty for
	// command-line tools, which queue messages unclaimed. Other databases ignore it.
	Instance string
	Logger   *slog.Logger
}

// DB is one database: the data store or the key store. It is safe for concurrent
// use. Reads run on a pool; writes go through one writer goroutine that groups
// concurrent Write calls into one transaction, each in its own savepoint, so a
// commit (and its fsync) is shared by all of them.
type DB struct {
	dialect string
	name    string // for messages: file path or database name, no credentials
	read    *sql.DB
	write   *sql.DB
	opts    Options
	reqs    chan *writeReq
	done    chan struct{}
	wg      sync.WaitGroup
	rebound sync.Map // query → PostgreSQL query
	inserts sync.Map // insertShape → multi-row INSERT text

	// chain names the tables of the hash chain this database holds: "audit"
	// (audit_log, audit_head) or "access" (access_log, access_head).
	chain string

	// SQLite only: connections held for reads, and the writer's own.
	readConns chan *conn
	writeConn *conn
}

// conn is a connection held by one goroutine at a time, with the statements
// prepared on it. SQLite spends a third of a short transaction parsing SQL
// otherwise, and database/sql cannot reuse a connection's prepared statement
// inside a *sql.Tx, so on SQLite transactions run as BEGIN…COMMIT on a held conn.
type conn struct {
	c     *sql.Conn
	stmts map[string]*sql.Stmt
}

func (c *conn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, mapErr(err, "prepare")
	}
	c.stmts[query] = st
	return st, nil
}

// run executes a statement without arguments or results (BEGIN, COMMIT…).
func (c *conn) run(ctx context.Context, stmt string) error {
	st, err := c.stmt(ctx, stmt)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx)
	return mapErr(err, stmt)
}

func (c *conn) close() {
	for _, st := range c.stmts {
		st.Close()
	}
	c.c.Close()
}

type writeReq struct {
	ctx   context.Context
	fn    func(*Tx) error
	audit []*steward.AuditEntry // an audit-only write: appended with the batch's other appends
	err   chan error
}

// Open opens the database at dsn and applies the data store migrations. dsn is a
// PostgreSQL URL ("postgres://…") or a SQLite file path (optionally "sqlite:PATH").
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	return open(ctx, dsn, opts, dataMigrations, "migrations")
}

// OpenAccess opens the access log database at dsn and applies its migrations.
func OpenAccess(ctx context.Context, dsn string, opts Options) (*DB, error) {
	db, err := open(ctx, dsn, opts, accessMigrations, "accessmigrations")
	if err == nil {
		db.chain = "access"
	}
	return db, err
}

// OpenKeys opens the key store database at dsn and applies its migrations.
func OpenKeys(ctx context.Context, dsn string, opts Options) (*DB, error) {
	db, err := open(ctx, dsn, opts, keyMigrations, "keymigrations")
	if err == nil {
		db.chain = "" // the key store holds no hash chain
	}
	return db, err
}

func open(ctx context.Context, dsn string, opts Options, migrations fs.FS, dir string) (*DB, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 128
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 10 * time.Second
	}
	db := &DB{opts: opts, reqs: make(chan *writeReq, 1024), done: make(chan struct{}), chain: "audit"}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db.dialect = Postgres
		db.name = pgName(dsn)
		dsn = withRuntimeParam(dsn, "lock_timeout", strconv.FormatInt(opts.LockTimeout.Milliseconds(), 10))
		if db.read, err = sql.Open("pgx", dsn); err != nil {
			return nil, fmt.Errorf("sql: open %s: %w", db.name, err)
		}
		db.read.SetMaxOpenConns(16)
		db.read.SetMaxIdleConns(16)
		db.write = db.read
	} else {
		db.dialect = SQLite
		path := strings.TrimPrefix(dsn, "sqlite:")
		db.name = path
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("sql: create directory for %s: %w", path, err)
		}
		// Create the file 0600 before SQLite does (it would use 0644); its WAL and
		// shared-memory files take the database file's mode.
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600); err != nil {
			return nil, fmt.Errorf("sql: create %s: %w", path, err)
		} else {
			f.Close()
		}
		pragmas := "_pragma=busy_timeout(" + strconv.FormatInt(opts.LockTimeout.Milliseconds(), 10) + ")&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(" + opts.Synchronous + ")&_pragma=secure_delete(1)&_pragma=mmap_size(1073741824)&_pragma=temp_store(MEMORY)"
		writePragmas := pragmas
		if migrations == fs.FS(dataMigrations) {
			// The data store's writer checkpoints every dataCheckpointPages WAL
			// pages rather than SQLite's 1,000: a page written by many groups in
			// between is copied into the database once (bench/README.md).
			writePragmas += "&_pragma=wal_autocheckpoint(" + strconv.Itoa(dataCheckpointPages) + ")"
		}
		if db.write, err = sql.Open("sqlite", "file:"+path+"?"+writePragmas+"&_txlock=immediate"); err != nil {
			return nil, fmt.Errorf("sql: open %s: %w", path, err)
		}
		// One writer goroutine runs every write transaction; the second connection
		// lets a statement be prepared while the first is inside a transaction
		// (database/sql prepares a new statement on a free connection first).
		db.write.SetMaxOpenConns(2)
		db.write.SetMaxIdleConns(2)
		db.write.SetConnMaxLifetime(0)
		if db.read, err = sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)"); err != nil {
			return nil, fmt.Errorf("sql: open %s: %w", path, err)
		}
		db.read.SetMaxOpenConns(8)
		db.read.SetMaxIdleConns(8)
	}
	if err := db.migrate(ctx, migrations, dir); err != nil {
		db.read.Close()
		if db.write != db.read {
			db.write.Close()
		}
		return nil, err
	}
	if db.dialect == SQLite {
		if err := db.holdConns(ctx, 4); err != nil {
			db.read.Close()
			db.write.Close()
			return nil, err
		}
	}
	// SQLite has one writer at a time, so one goroutine groups all writes. A
	// PostgreSQL server commits many transactions at once, and each statement is a
	// network round trip: several writer goroutines, each grouping what it finds
	// queued, keep it busy (the audit chain's head row lock orders their appends).
	writers := 1
	if db.dialect == Postgres && migrations == fs.FS(dataMigrations) {
		writers = 4 // the access log appends to one chain only: one writer
	}
	for range writers {
		db.wg.Add(1)
		go db.writer()
	}
	return db, nil
}

// withRuntimeParam returns the PostgreSQL URL dsn with the run-time parameter
// name set to value (pgx sends query parameters it does not know to the server),
// unless dsn sets it already.
func withRuntimeParam(dsn, name, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // pgx reports the bad URL
	}
	q := u.Query()
	if q.Has(name) {
		return dsn
	}
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func pgName(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres"
	}
	return strings.TrimPrefix(u.Path, "/")
}

// Dialect returns SQLite or Postgres.
func (db *DB) Dialect() string { return db.dialect }

// Close stops the writer and closes the connections.
func (db *DB) Close() error {
	select {
	case <-db.done:
		return nil
	default:
	}
	close(db.done)
	db.wg.Wait()
	return db.closeConns()
}

// closeConns closes the held connections and the pools.
func (db *DB) closeConns() error {
	if db.readConns != nil {
		for range cap(db.readConns) {
			(<-db.readConns).close()
		}
		db.writeConn.close()
	}
	err := db.read.Close()
	if db.write != db.read {
		if err2 := db.write.Close(); err == nil {
			err = err2
		}
	}
	return err
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return steward.WrapError(steward.EUNAVAILABLE, "the database does not answer", err)
	}
	return nil
}

// q returns query in the dialect's placeholder style.
func (db *DB) q(query string) string {
	if db.dialect != Postgres {
		return query
	}
	if v, ok := db.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	out := b.String()
	db.rebound.Store(query, out)
	return out
}

// holdConns takes n reading connections and the writer's connection from the pools.
func (db *DB) holdConns(ctx context.Context, n int) error {
	db.readConns = make(chan *conn, n)
	for range n {
		c, err := db.read.Conn(ctx)
		if err != nil {
			return mapErr(err, "connect")
		}
		db.readConns <- &conn{c: c, stmts: map[string]*sql.Stmt{}}
	}
	c, err := db.write.Conn(ctx)
	if err != nil {
		return mapErr(err, "connect")
	}
	db.writeConn = &conn{c: c, stmts: map[string]*sql.Stmt{}}
	return nil
}

// readTx runs fn in a read-only transaction.
func (db *DB) readTx(ctx context.Context, fn func(*Tx) error) error {
	if db.readConns == nil {
		tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return mapErr(err, "begin read")
		}
		defer tx.Rollback()
		if err := fn(&Tx{db: db, tx: tx}); err != nil {
			return err
		}
		return mapErr(tx.Commit(), "commit read")
	}
	var c *conn
	select {
	case c = <-db.readConns:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { db.readConns <- c }()
	if err := c.run(ctx, "BEGIN"); err != nil {
		return err
	}
	err := fn(&Tx{db: db, conn: c})
	if err2 := c.run(context.WithoutCancel(ctx), "COMMIT"); err == nil {
		err = err2
	}
	return err
}

// writeTx queues fn for the writer and waits for its commit.
func (db *DB) writeTx(ctx context.Context, fn func(*Tx) error) error {
	return db.submit(ctx, &writeReq{ctx: ctx, fn: fn, err: make(chan error, 1)})
}

// submit queues req for the writer and waits for its commit.
func (db *DB) submit(ctx context.Context, req *writeReq) error {
	select {
	case db.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.done:
		return steward.Errorf(steward.EUNAVAILABLE, "the store is closed")
	}
	select {
	case err := <-req.err:
		return err
	case <-db.done:
		// The writer finishes every queued request before it stops.
		return <-req.err
	}
}

// writer commits queued writes in groups until Close.
func (db *DB) writer() {
	defer db.wg.Done()
	for {
		select {
		case r := <-db.reqs:
			db.runGroup(r)
		case <-db.done:
			for {
				select {
				case r := <-db.reqs:
					r.err <- steward.Errorf(steward.EUNAVAILABLE, "the store is closed")
				default:
					return
				}
			}
		}
	}
}

// wtx is the writer's transaction: a *sql.Tx on PostgreSQL, BEGIN IMMEDIATE on
// the writer's held connection on SQLite.
type wtx struct {
	db *DB
	tx *sql.Tx
}

func (db *DB) beginWrite(ctx context.Context) (*wtx, error) {
	if db.writeConn != nil {
		return &wtx{db: db}, db.writeConn.run(ctx, "BEGIN IMMEDIATE")
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, mapErr(err, "begin write")
	}
	if db.chain != "" {
		// Every write transaction of a database with a hash chain takes the
		// chain's head first, as SQLite's BEGIN IMMEDIATE takes its one write
		// lock: PostgreSQL write transactions, of this process and of any other,
		// then run one at a time. Without it, two groups of writes could take a
		// code's row and the head in opposite orders (a deadlock), and a code's
		// limits, attempts and single use, read and then written, would race.
		if _, err := tx.ExecContext(ctx, `SELECT seq FROM `+db.chain+`_head WHERE id = 1 FOR UPDATE`); err != nil {
			tx.Rollback()
			return nil, mapErr(err, "lock the chain head")
		}
	}
	return &wtx{db: db, tx: tx}, nil
}

func (w *wtx) Tx() *Tx {
	if w.tx != nil {
		return &Tx{db: w.db, tx: w.tx, write: true}
	}
	return &Tx{db: w.db, conn: w.db.writeConn, write: true}
}

func (w *wtx) exec(ctx context.Context, stmt string) error {
	var err error
	if w.tx != nil {
		_, err = w.tx.ExecContext(ctx, stmt)
	} else {
		var st *sql.Stmt
		if st, err = w.db.writeConn.stmt(ctx, stmt); err == nil {
			_, err = st.ExecContext(ctx)
		}
	}
	return mapErr(err, stmt)
}

func (w *wtx) commit(ctx context.Context) error {
	if w.tx != nil {
		return mapErr(w.tx.Commit(), "commit")
	}
	if err := w.exec(ctx, "COMMIT"); err != nil {
		w.rollback(ctx)
		return err
	}
	return nil
}

func (w *wtx) rollback(ctx context.Context) {
	if w.tx != nil {
		w.tx.Rollback()
		return
	}
	w.db.writeConn.c.ExecContext(ctx, "ROLLBACK")
}

// runGroup runs first and the writes queued behind it when it starts in one
// transaction, each in a savepoint of its own, and commits them together: one
// commit, and one fsync, for the group.
func (db *DB) runGroup(first *writeReq) {
	ctx := context.Background()
	g := &group{db: db}
	w, err := db.beginWrite(ctx)
	if err != nil {
		first.err <- err
		if steward.ErrorCode(err) == steward.EUNAVAILABLE {
			// Another process holds the write lock and did not let go within the
			// busy or lock timeout. The writes queued meanwhile would each wait a
			// timeout more in turn: they fail now, so that no write waits much
			// longer than one timeout.
			for drained := false; !drained; {
				select {
				case r := <-db.reqs:
					r.err <- err
				default:
					drained = true
				}
			}
		}
		return
	}
	g.w, g.tx = w, w.Tx()
	g.run(ctx, first)
	for more := true; more && !g.broken && len(g.reqs) < db.opts.MaxBatch; {
		select {
		case r := <-db.reqs:
			g.run(ctx, r)
		default:
			more = false
		}
	}
	batchCount.Add(1)
	batchItems.Add(int64(len(g.reqs)))
	g.commit(ctx)
	for i, r := range g.reqs {
		r.err <- g.results[i]
	}
}

// group is one write transaction of the writer and the writes in it.
type group struct {
	db       *DB
	w        *wtx
	tx       *Tx
	reqs     []*writeReq
	results  []error
	audit    []*steward.AuditEntry // audit-only writes, appended together at commit
	auditors []int
	broken   bool // a savepoint could not be rolled back: the transaction is lost
}

// run runs r in its own savepoint. A write that fails is rolled back to its
// savepoint and leaves the others in the group untouched.
func (g *group) run(ctx context.Context, r *writeReq) {
	i := len(g.reqs)
	g.reqs = append(g.reqs, r)
	g.results = append(g.results, nil)
	if err := r.ctx.Err(); err != nil {
		g.results[i] = err
		return
	}
	if r.audit != nil {
		g.audit = append(g.audit, r.audit...)
		g.auditors = append(g.auditors, i)
		return
	}
	if err := g.w.exec(ctx, "SAVEPOINT w"); err != nil {
		g.results[i] = err
		return
	}
	if err := r.fn(g.tx); err != nil {
		g.results[i] = err
		if err2 := g.w.exec(ctx, "ROLLBACK TO SAVEPOINT w"); err2 != nil {
			g.fail(err2)
			return
		}
	}
	if err := g.w.exec(ctx, "RELEASE SAVEPOINT w"); err != nil && g.results[i] == nil {
		g.results[i] = err
	}
}

// fail rolls the whole transaction back and gives err to every write that had
// not failed already.
func (g *group) fail(err error) {
	g.broken = true
	g.w.rollback(context.Background())
	for i := range g.results {
		if g.results[i] == nil {
			g.results[i] = err
		}
	}
}

// commit appends the audit-only writes and commits, or rolls back if no write
// in the group succeeded. A failed commit fails every write.
func (g *group) commit(ctx context.Context) {
	if g.broken {
		return
	}
	if len(g.audit) > 0 {
		err := g.w.exec(ctx, "SAVEPOINT a")
		if err == nil {
			if err = g.tx.AppendAudit(ctx, g.audit...); err != nil {
				g.w.exec(ctx, "ROLLBACK TO SAVEPOINT a")
			}
			if err2 := g.w.exec(ctx, "RELEASE SAVEPOINT a"); err == nil {
				err = err2
			}
		}
		for _, i := range g.auditors {
			g.results[i] = err
		}
	}
	if !slices.Contains(g.results, nil) {
		// Every write failed and was rolled back: commit nothing, so that the
		// database (and its WAL-index header, which the snapshot cache watches)
		// is left as it was.
		g.w.rollback(ctx)
		return
	}
	if err := g.w.commit(ctx); err != nil {
		for i := range g.results {
			if g.results[i] == nil {
				g.results[i] = err
			}
		}
	}
}

// migrate applies the embedded migrations not yet recorded in schema_migrations.
// On PostgreSQL an advisory lock keeps two nodes from migrating at once.
func (db *DB) migrate(ctx context.Context, migrations fs.FS, dir string) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return mapErr(err, "connect for migrations")
	}
	defer conn.Close()
	if db.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7468411)"); err != nil {
			return mapErr(err, "migration lock")
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(7468411)")
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return mapErr(err, "create schema_migrations")
	}
	names, err := fs.Glob(migrations, dir+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		var n int
		if err := conn.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM schema_migrations WHERE name = ?`), base).Scan(&n); err != nil {
			return mapErr(err, "read schema_migrations")
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return err
		}
		text := string(body)
		if d, ok := strings.CutPrefix(text, "-- dialect: "); ok {
			// A migration for one engine only is recorded as applied on the other.
			if d, _, _ = strings.Cut(d, "\n"); strings.TrimSpace(d) != db.dialect {
				text = ""
			}
		}
		if db.dialect == Postgres {
			text = strings.ReplaceAll(text, "BLOB", "BYTEA")
			text = strings.ReplaceAll(text, "X''", "''::bytea")
		}
		if db.dialect == SQLite {
			// Rebuilding a table (create, copy, drop, rename) needs foreign keys
			// off; they are checked before the migration commits.
			if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
				return mapErr(err, "migration: foreign keys off")
			}
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return mapErr(err, "begin migration")
		}
		for _, stmt := range splitStatements(text) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("sql: migration %s: %w", base, err)
			}
		}
		if db.dialect == SQLite {
			if err := foreignKeyCheck(ctx, tx); err != nil {
				tx.Rollback()
				return fmt.Errorf("sql: migration %s: %w", base, err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`), base, time.Now().UnixMicro()); err != nil {
			tx.Rollback()
			return mapErr(err, "record migration")
		}
		if err := tx.Commit(); err != nil {
			return mapErr(err, "commit migration")
		}
		if db.dialect == SQLite {
			if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = ON`); err != nil {
				return mapErr(err, "migration: foreign keys on")
			}
		}
	}
	return nil
}

// foreignKeyCheck fails if any row of the SQLite database in tx breaks a foreign key.
func foreignKeyCheck(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		var table string
		var rowid sql.NullInt64
		var parent string
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return err
		}
		return fmt.Errorf("a row of %s refers to a missing row of %s", table, parent)
	}
	return rows.Err()
}

// splitStatements splits a migration at semicolons that end a line, dropping
// comment lines.
func splitStatements(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// mapErr maps driver errors by code: unique violations become ECONFLICT, busy or
// unreachable databases EUNAVAILABLE, the rest EINTERNAL. steward errors and
// context errors pass through.
func mapErr(err error, op string) error {
	if err == nil {
		return nil
	}
	var se *steward.Error
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &steward.Error{Code: steward.ENOTFOUND, Message: "not found", Err: fmt.Errorf("sql: %s: %w", op, err)}
	}
	var le *sqlite.Error
	if errors.As(err, &le) {
		switch le.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &steward.Error{Code: steward.ECONFLICT, Message: "already exists", Err: fmt.Errorf("sql: %s: %w", op, err)}
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return &steward.Error{Code: steward.EUNAVAILABLE, Message: "the database is busy", Err: fmt.Errorf("sql: %s: %w", op, err)}
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return &steward.Error{Code: steward.ECONFLICT, Message: "already exists", Err: fmt.Errorf("sql: %s: %w", op, err)}
		case pe.Code == "55P03": // lock_not_available: LockTimeout passed
			return &steward.Error{Code: steward.EUNAVAILABLE, Message: "the database is busy: another writer holds a lock", Err: fmt.Errorf("sql: %s: %w", op, err)}
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "57P01", pe.Code == "53300":
			return &steward.Error{Code: steward.EUNAVAILABLE, Message: "the database does not answer", Err: fmt.Errorf("sql: %s: %w", op, err)}
		}
	}
	return &steward.Error{Code: steward.EINTERNAL, Err: fmt.Errorf("sql: %s: %w", op, err)}
}

var batchCount, batchItems atomic.Int64

// BatchStats returns how many write batches this process committed and how many
// writes they held, for benchmarks.
func BatchStats() (batches, writes int64) { return batchCount.Load(), batchItems.Load() }
