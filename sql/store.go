package sql

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Store is the data store: it implements steward.Store over a DB, with the access
// log in a DB of its own.
type Store struct {
	*DB
	access    *DB
	journal   *accessJournal // SQLite on Linux, unless Options.DirectAccessLog
	snapshots *snapshotCache // SQLite only
}

var _ steward.Store = (*Store)(nil)

// OpenStore opens the data store at dsn (see Open).
func OpenStore(ctx context.Context, dsn string, opts Options) (*Store, error) {
	db, err := Open(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	access, err := OpenAccess(ctx, AccessDSN(dsn), opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	st := &Store{DB: db, access: access}
	if db.dialect == SQLite && journalSupported && !opts.DirectAccessLog {
		if st.journal, err = openJournal(ctx, access, opts.JournalWindow, !strings.EqualFold(access.opts.Synchronous, "NORMAL")); err != nil {
			db.Close()
			access.Close()
			return nil, err
		}
	}
	if db.dialect == SQLite {
		shm, err := mapShm(db.name)
		if err != nil {
			// Reads stay correct, only uncached; shm (if any) keeps its descriptor
			// open until Close, see mapShm.
			db.opts.Logger.Warn("purpose snapshots are not cached", "database", db.name, "err", err)
		}
		st.snapshots = &snapshotCache{shm: shm}
	}
	return st, nil
}

// Instance returns the instance id the store was opened with (Options.Instance):
// the owner of the outbox messages this process queues and claims.
func (s *Store) Instance() string { return s.opts.Instance }

// AccessDSN returns where the access log of the data store at dsn lives: beside
// it on SQLite (steward.db → steward-access.db), the same database on PostgreSQL.
func AccessDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return dsn
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-access" + filepath.Ext(path)
}

// Close closes the data store and its access log.
func (s *Store) Close() error {
	if s.journal != nil {
		s.journal.close()
	}
	err := errors.Join(s.DB.Close(), s.access.Close())
	if s.snapshots != nil {
		s.snapshots.close()
	}
	return err
}

// ReadAccess runs fn in a read-only transaction on the access log; only the Tx
// audit methods (ScanAudit, AuditBySubject) may be called. Every entry this
// Store appended before the call is in it; entries appended by another process
// are there within that process's journal window.
func (s *Store) ReadAccess(ctx context.Context, fn func(steward.Tx) error) error {
	if s.journal != nil {
		if err := s.journal.sync(ctx); err != nil {
			return err
		}
	}
	return s.access.readTx(ctx, func(tx *Tx) error { return fn(tx) })
}

// Read runs fn in a read-only transaction.
func (s *Store) Read(ctx context.Context, fn func(steward.Tx) error) error {
	return s.readTx(ctx, func(tx *Tx) error { return fn(tx) })
}

// Write runs fn in a read-write transaction, grouped with concurrent writes.
func (s *Store) Write(ctx context.Context, fn func(steward.Tx) error) error {
	return s.writeTx(ctx, func(tx *Tx) error { return fn(tx) })
}

// Audit appends entries to the access log, durably before it returns. On SQLite
// they are written to the access journal, shared with concurrent appends, and
// join the chain moments later (see accessJournal); elsewhere they are committed
// in a transaction shared with concurrent appends.
func (s *Store) Audit(ctx context.Context, entries ...*steward.AuditEntry) error {
	if s.journal != nil {
		return s.journal.append(ctx, entries)
	}
	return s.access.submit(ctx, &writeReq{ctx: ctx, audit: entries, err: make(chan error, 1)})
}

// Tx implements steward.Tx on one database transaction: a *sql.Tx on
// PostgreSQL, a held connection inside BEGIN…COMMIT on SQLite.
type Tx struct {
	db   *DB
	tx   *sql.Tx
	conn *conn
	// write: the writer's transaction, shared by a group of writes. Its
	// statements run to the end whatever the caller's context: cancelling one
	// (SQLite interrupts the statement and may roll the whole transaction back;
	// PostgreSQL aborts it) would fail every other write in the group. The writer
	// checks each write's context before running it; once run, a write completes.
	write bool
}

// ctx returns the context statements of t run under.
func (t *Tx) ctx(ctx context.Context) context.Context {
	if t.write && ctx.Done() != nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

var _ steward.Tx = (*Tx)(nil)

func (t *Tx) exec(ctx context.Context, op, query string, args ...any) (sql.Result, error) {
	ctx = t.ctx(ctx)
	if t.conn != nil {
		st, err := t.conn.stmt(ctx, query)
		if err != nil {
			return nil, err
		}
		res, err := st.ExecContext(ctx, args...)
		return res, mapErr(err, op)
	}
	res, err := t.tx.ExecContext(ctx, t.db.q(query), args...)
	return res, mapErr(err, op)
}

// rowScanner is a *sql.Row or a failed preparation.
type rowScanner interface{ Scan(...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (t *Tx) row(ctx context.Context, query string, args ...any) rowScanner {
	ctx = t.ctx(ctx)
	if t.conn != nil {
		st, err := t.conn.stmt(ctx, query)
		if err != nil {
			return errRow{err}
		}
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.db.q(query), args...)
}

func (t *Tx) rows(ctx context.Context, op, query string, args ...any) (*sql.Rows, error) {
	ctx = t.ctx(ctx)
	if t.conn != nil {
		st, err := t.conn.stmt(ctx, query)
		if err != nil {
			return nil, err
		}
		rows, err := st.QueryContext(ctx, args...)
		return rows, mapErr(err, op)
	}
	rows, err := t.tx.QueryContext(ctx, t.db.q(query), args...)
	return rows, mapErr(err, op)
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func notFound(what string, err error) error {
	if err == sql.ErrNoRows {
		return steward.Errorf(steward.ENOTFOUND, "%s not found", what)
	}
	return mapErr(err, "read "+what)
}

func (t *Tx) CreateSubject(ctx context.Context, s *steward.Subject) error {
	_, err := t.exec(ctx, "insert subject", `INSERT INTO subjects (id, status, region, key_id, created_at, cancelled_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.ID, s.Status, s.Region, s.KeyID, micros(s.CreatedAt), micros(s.CancelledAt))
	return err
}

func (t *Tx) GetSubject(ctx context.Context, id string) (*steward.Subject, error) {
	var s steward.Subject
	var created, cancelled int64
	err := t.row(ctx, `SELECT id, status, region, key_id, created_at, cancelled_at FROM subjects WHERE id = ?`, id).
		Scan(&s.ID, &s.Status, &s.Region, &s.KeyID, &created, &cancelled)
	if err != nil {
		return nil, notFound("subject", err)
	}
	s.CreatedAt, s.CancelledAt = fromMicros(created), fromMicros(cancelled)
	return &s, nil
}

func (t *Tx) CancelSubject(ctx context.Context, id string, at time.Time) error {
	res, err := t.exec(ctx, "cancel subject", `UPDATE subjects SET status = ?, key_id = '', cancelled_at = ? WHERE id = ? AND status = ?`,
		steward.SubjectCancelled, micros(at), id, steward.SubjectActive)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "no active subject with that id")
	}
	return nil
}

func (t *Tx) PendingKeyDestructions(ctx context.Context, limit int) ([]string, error) {
	rows, err := t.rows(ctx, "list tombstones", `SELECT id FROM subjects WHERE status = ? AND key_destroyed_at = 0 ORDER BY cancelled_at, id LIMIT ?`,
		steward.SubjectCancelled, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, mapErr(err, "scan tombstone")
		}
		ids = append(ids, id)
	}
	return ids, mapErr(rows.Err(), "list tombstones")
}

func (t *Tx) MarkKeyDestroyed(ctx context.Context, id string, at time.Time) error {
	res, err := t.exec(ctx, "mark key destroyed", `UPDATE subjects SET key_destroyed_at = ? WHERE id = ? AND status = ?`,
		micros(at), id, steward.SubjectCancelled)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "no cancelled subject with that id")
	}
	return nil
}

func (t *Tx) PutIndex(ctx context.Context, kind string, value []byte, subjectID string) error {
	_, err := t.exec(ctx, "insert index", `INSERT INTO subject_indexes (kind, value, subject_id) VALUES (?, ?, ?)`, kind, value, subjectID)
	if steward.ErrorCode(err) == steward.ECONFLICT {
		return steward.Errorf(steward.ECONFLICT, "an account with this %s exists already", kind)
	}
	return err
}

func (t *Tx) LookupIndex(ctx context.Context, kind string, value []byte) (string, error) {
	var id string
	if err := t.row(ctx, `SELECT subject_id FROM subject_indexes WHERE kind = ? AND value = ?`, kind, value).Scan(&id); err != nil {
		return "", notFound("account", err)
	}
	return id, nil
}

func (t *Tx) DeleteIndexes(ctx context.Context, subjectID string) error {
	_, err := t.exec(ctx, "delete indexes", `DELETE FROM subject_indexes WHERE subject_id = ?`, subjectID)
	return err
}

func (t *Tx) PurposeSnapshot(ctx context.Context, subjectID, purpose string, fields []string) (*steward.PurposeSnapshot, error) {
	query := `SELECT s.status, c.granted, c.separate, c.notice_version, c.event_id, c.at,
		(SELECT COUNT(*) FROM legal_holds h WHERE h.subject_id = s.id AND h.released_at = 0),
		f.field, f.value, f.updated_at
		FROM subjects s
		LEFT JOIN consents c ON c.subject_id = s.id AND c.purpose = ?
		LEFT JOIN subject_fields f ON f.subject_id = s.id AND f.field IN (?` + strings.Repeat(", ?", max(len(fields), 1)-1) + `)
		WHERE s.id = ? ORDER BY f.field`
	args := make([]any, 0, len(fields)+2)
	args = append(args, purpose)
	if len(fields) == 0 {
		args = append(args, "")
	}
	for _, f := range fields {
		args = append(args, f)
	}
	args = append(args, subjectID)
	rows, err := t.rows(ctx, "purpose snapshot", query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var snap *steward.PurposeSnapshot
	for rows.Next() {
		var status, version, event, field sql.NullString
		var granted, separate sql.NullBool
		var at, updated sql.NullInt64
		var holds int
		var value []byte
		if err := rows.Scan(&status, &granted, &separate, &version, &event, &at, &holds, &field, &value, &updated); err != nil {
			return nil, mapErr(err, "scan purpose snapshot")
		}
		if snap == nil {
			snap = &steward.PurposeSnapshot{Status: status.String, Holds: holds}
			if event.Valid {
				snap.Consent = &steward.ConsentState{Purpose: purpose, Granted: granted.Bool, Separate: separate.Bool,
					NoticeVersion: version.String, EventID: event.String, At: fromMicros(at.Int64)}
			}
		}
		if field.Valid {
			snap.Fields = append(snap.Fields, steward.SealedField{SubjectID: subjectID, Field: field.String, Value: value, UpdatedAt: fromMicros(updated.Int64)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "purpose snapshot")
	}
	if snap == nil {
		return nil, steward.Errorf(steward.ENOTFOUND, "subject not found")
	}
	return snap, nil
}

func (t *Tx) PutFields(ctx context.Context, fields []steward.SealedField) error {
	isLast := lastPerKey(fields, func(f steward.SealedField) [2]string { return [2]string{f.SubjectID, f.Field} })
	args := make([]any, 0, 4*len(fields))
	for i, f := range fields {
		if isLast(i) {
			args = append(args, f.SubjectID, f.Field, f.Value, micros(f.UpdatedAt))
		}
	}
	return t.insertRows(ctx, "upsert field", `INSERT INTO subject_fields (subject_id, field, value, updated_at) VALUES `,
		` ON CONFLICT (subject_id, field) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, 4, args)
}

// lastPerKey reports, for the i-th item, whether no later item has its key. One
// statement may not upsert a row twice on PostgreSQL, so upserts keep only the
// last item per key, as separate statements would leave it.
func lastPerKey[T any](items []T, key func(T) [2]string) func(i int) bool {
	last := make(map[[2]string]int, len(items))
	for i, it := range items {
		last[key(it)] = i
	}
	return func(i int) bool { return last[key(items[i])] == i }
}

// maxRowsPerInsert bounds the rows of one multi-row INSERT, and so the number of
// distinct statements insertRows prepares per table.
const maxRowsPerInsert = 16

// insertShape identifies the text of a multi-row INSERT.
type insertShape struct {
	head, tail string
	cols, rows int
}

// insertRows inserts len(args)/cols rows with head ("INSERT INTO t (a, b) VALUES ")
// and tail (an ON CONFLICT clause, or ""), up to maxRowsPerInsert rows per
// statement: on SQLite each statement costs more than each row. Statement texts
// are built once per shape.
func (t *Tx) insertRows(ctx context.Context, op, head, tail string, cols int, args []any) error {
	for len(args) > 0 {
		shape := insertShape{head, tail, cols, min(len(args)/cols, maxRowsPerInsert)}
		query, ok := t.db.inserts.Load(shape)
		if !ok {
			row := "(?" + strings.Repeat(", ?", cols-1) + ")"
			query, _ = t.db.inserts.LoadOrStore(shape, head+row+strings.Repeat(", "+row, shape.rows-1)+tail)
		}
		if _, err := t.exec(ctx, op, query.(string), args[:shape.rows*cols]...); err != nil {
			return err
		}
		args = args[shape.rows*cols:]
	}
	return nil
}

func (t *Tx) GetFields(ctx context.Context, subjectID string, names []string) ([]steward.SealedField, error) {
	query := `SELECT field, value, updated_at FROM subject_fields WHERE subject_id = ?`
	args := []any{subjectID}
	if names != nil {
		if len(names) == 0 {
			return nil, nil
		}
		query += ` AND field IN (?` + strings.Repeat(", ?", len(names)-1) + `)`
		for _, n := range names {
			args = append(args, n)
		}
	}
	rows, err := t.rows(ctx, "select fields", query+` ORDER BY field`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.SealedField
	for rows.Next() {
		f := steward.SealedField{SubjectID: subjectID}
		var at int64
		if err := rows.Scan(&f.Field, &f.Value, &at); err != nil {
			return nil, mapErr(err, "scan field")
		}
		f.UpdatedAt = fromMicros(at)
		out = append(out, f)
	}
	return out, mapErr(rows.Err(), "select fields")
}

func (t *Tx) DeleteFields(ctx context.Context, subjectID string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	args := []any{subjectID}
	for _, n := range names {
		args = append(args, n)
	}
	_, err := t.exec(ctx, "delete fields", `DELETE FROM subject_fields WHERE subject_id = ? AND field IN (?`+strings.Repeat(", ?", len(names)-1)+`)`, args...)
	return err
}

func (t *Tx) DeleteAllFields(ctx context.Context, subjectID string) error {
	_, err := t.exec(ctx, "delete fields", `DELETE FROM subject_fields WHERE subject_id = ?`, subjectID)
	return err
}

func (t *Tx) AddConsentEvent(ctx context.Context, e *steward.ConsentEvent) error {
	return t.AddConsentEvents(ctx, []*steward.ConsentEvent{e})
}

func (t *Tx) AddConsentEvents(ctx context.Context, events []*steward.ConsentEvent) error {
	if len(events) == 0 {
		return nil
	}
	// A purpose's last event sets its state.
	isLast := lastPerKey(events, func(e *steward.ConsentEvent) [2]string { return [2]string{e.SubjectID, e.Purpose} })
	ev := make([]any, 0, 9*len(events))
	st := make([]any, 0, 7*len(events))
	for i, e := range events {
		ev = append(ev, e.ID, e.SubjectID, e.Purpose, e.Action, e.Separate, e.NoticeVersion, e.Method, e.Actor, micros(e.At))
		if !isLast(i) {
			continue
		}
		s := e.Apply()
		st = append(st, e.SubjectID, s.Purpose, s.Granted, s.Separate, s.NoticeVersion, s.EventID, micros(s.At))
	}
	if err := t.insertRows(ctx, "insert consent event", `INSERT INTO consent_events (id, subject_id, purpose, action, separate, notice_version, method, actor, at) VALUES `, "", 9, ev); err != nil {
		return err
	}
	return t.insertRows(ctx, "upsert consent", `INSERT INTO consents (subject_id, purpose, granted, separate, notice_version, event_id, at) VALUES `,
		` ON CONFLICT (subject_id, purpose) DO UPDATE SET granted = excluded.granted, separate = excluded.separate,
		notice_version = excluded.notice_version, event_id = excluded.event_id, at = excluded.at`, 7, st)
}

func (t *Tx) ConsentState(ctx context.Context, subjectID, purpose string) (*steward.ConsentState, error) {
	var st steward.ConsentState
	var at int64
	err := t.row(ctx, `SELECT purpose, granted, separate, notice_version, event_id, at FROM consents WHERE subject_id = ? AND purpose = ?`, subjectID, purpose).
		Scan(&st.Purpose, &st.Granted, &st.Separate, &st.NoticeVersion, &st.EventID, &at)
	if err != nil {
		return nil, notFound("consent", err)
	}
	st.At = fromMicros(at)
	return &st, nil
}

func (t *Tx) ConsentStates(ctx context.Context, subjectID string) ([]steward.ConsentState, error) {
	rows, err := t.rows(ctx, "select consents", `SELECT purpose, granted, separate, notice_version, event_id, at FROM consents WHERE subject_id = ? ORDER BY purpose`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.ConsentState
	for rows.Next() {
		var st steward.ConsentState
		var at int64
		if err := rows.Scan(&st.Purpose, &st.Granted, &st.Separate, &st.NoticeVersion, &st.EventID, &at); err != nil {
			return nil, mapErr(err, "scan consent")
		}
		st.At = fromMicros(at)
		out = append(out, st)
	}
	return out, mapErr(rows.Err(), "select consents")
}

func (t *Tx) ConsentEvents(ctx context.Context, subjectID string) ([]steward.ConsentEvent, error) {
	rows, err := t.rows(ctx, "select consent events", `SELECT id, subject_id, purpose, action, separate, notice_version, method, actor, at
		FROM consent_events WHERE subject_id = ? ORDER BY at, id`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.ConsentEvent
	for rows.Next() {
		var e steward.ConsentEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.SubjectID, &e.Purpose, &e.Action, &e.Separate, &e.NoticeVersion, &e.Method, &e.Actor, &at); err != nil {
			return nil, mapErr(err, "scan consent event")
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	return out, mapErr(rows.Err(), "select consent events")
}

const codeColumns = `id, purpose, target, subject_id, code_hash, attempts, client, created_at, expires_at, consumed_at`

func scanCode(row interface{ Scan(...any) error }) (*steward.OneTimeCode, error) {
	var c steward.OneTimeCode
	var created, expires, consumed int64
	if err := row.Scan(&c.ID, &c.Purpose, &c.Target, &c.SubjectID, &c.CodeHash, &c.Attempts, &c.Client, &created, &expires, &consumed); err != nil {
		return nil, notFound("one-time code", err)
	}
	c.CreatedAt, c.ExpiresAt, c.ConsumedAt = fromMicros(created), fromMicros(expires), fromMicros(consumed)
	return &c, nil
}

func (t *Tx) CreateCode(ctx context.Context, c *steward.OneTimeCode) error {
	_, err := t.exec(ctx, "insert code", `INSERT INTO one_time_codes (`+codeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Purpose, c.Target, c.SubjectID, c.CodeHash, c.Attempts, c.Client, micros(c.CreatedAt), micros(c.ExpiresAt), micros(c.ConsumedAt))
	return err
}

func (t *Tx) ExpireCodes(ctx context.Context, before time.Time, limit int) (int, error) {
	res, err := t.exec(ctx, "expire codes", `DELETE FROM one_time_codes WHERE id IN (SELECT id FROM one_time_codes WHERE created_at < ? LIMIT ?)`, micros(before), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "expire codes")
}

func (t *Tx) LatestCode(ctx context.Context, purpose string, target []byte) (*steward.OneTimeCode, error) {
	return scanCode(t.row(ctx, `SELECT `+codeColumns+` FROM one_time_codes WHERE target = ? AND purpose = ? ORDER BY created_at DESC, id DESC LIMIT 1`, target, purpose))
}

func (t *Tx) LatestSubjectCode(ctx context.Context, purpose, subjectID string) (*steward.OneTimeCode, error) {
	return scanCode(t.row(ctx, `SELECT `+codeColumns+` FROM one_time_codes WHERE subject_id = ? AND purpose = ? ORDER BY created_at DESC, id DESC LIMIT 1`, subjectID, purpose))
}

func (t *Tx) UpdateCode(ctx context.Context, c *steward.OneTimeCode) error {
	_, err := t.exec(ctx, "update code", `UPDATE one_time_codes SET attempts = ?, consumed_at = ? WHERE id = ?`, c.Attempts, micros(c.ConsumedAt), c.ID)
	return err
}

func (t *Tx) CountCodes(ctx context.Context, since time.Time, target []byte, client, purpose string) (int, int, time.Time, error) {
	var byTarget, byClient int
	var latest int64
	err := t.row(ctx, `SELECT
		(SELECT COUNT(*) FROM one_time_codes WHERE target = ? AND created_at >= ?),
		CASE WHEN ? = '' THEN 0 ELSE (SELECT COUNT(*) FROM one_time_codes WHERE client = ? AND created_at >= ?) END,
		(SELECT COALESCE(MAX(created_at), 0) FROM one_time_codes WHERE target = ? AND purpose = ?)`,
		target, micros(since), client, client, micros(since), target, purpose).Scan(&byTarget, &byClient, &latest)
	if err != nil {
		return 0, 0, time.Time{}, mapErr(err, "count codes")
	}
	return byTarget, byClient, fromMicros(latest), nil
}

func (t *Tx) ConsumeCode(ctx context.Context, c *steward.OneTimeCode, at time.Time) (bool, error) {
	res, err := t.exec(ctx, "consume code", `UPDATE one_time_codes SET consumed_at = ?
		WHERE id = ? AND consumed_at = 0 AND attempts = ? AND expires_at >= ?
		AND NOT EXISTS (SELECT 1 FROM one_time_codes n WHERE n.target = ? AND n.purpose = ?
			AND (n.created_at > ? OR (n.created_at = ? AND n.id > ?)))`,
		micros(at), c.ID, c.Attempts, micros(at), c.Target, c.Purpose, micros(c.CreatedAt), micros(c.CreatedAt), c.ID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapErr(err, "consume code")
	}
	if n == 1 {
		c.ConsumedAt = at
	}
	return n == 1, nil
}

func (t *Tx) DeleteCodes(ctx context.Context, subjectID string, target []byte) error {
	// Each condition only with a value: an empty subject id would otherwise match
	// every code not tied to an account.
	if subjectID != "" {
		if _, err := t.exec(ctx, "delete codes", `DELETE FROM one_time_codes WHERE subject_id = ?`, subjectID); err != nil {
			return err
		}
	}
	if len(target) > 0 {
		if _, err := t.exec(ctx, "delete codes", `DELETE FROM one_time_codes WHERE target = ?`, target); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) CreateSession(ctx context.Context, s *steward.Session) error {
	_, err := t.exec(ctx, "insert session", `INSERT INTO sessions (token_hash, id, subject_id, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.TokenHash, s.ID, s.SubjectID, micros(s.CreatedAt), micros(s.ExpiresAt), micros(s.RevokedAt))
	return err
}

func (t *Tx) SessionByHash(ctx context.Context, hash []byte) (*steward.Session, error) {
	var s steward.Session
	var created, expires, revoked int64
	err := t.row(ctx, `SELECT token_hash, id, subject_id, created_at, expires_at, revoked_at FROM sessions WHERE token_hash = ?`, hash).
		Scan(&s.TokenHash, &s.ID, &s.SubjectID, &created, &expires, &revoked)
	if err != nil {
		return nil, notFound("session", err)
	}
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(revoked)
	return &s, nil
}

func (t *Tx) RevokeSessions(ctx context.Context, subjectID string, at time.Time) (int, error) {
	res, err := t.exec(ctx, "revoke sessions", `UPDATE sessions SET revoked_at = ? WHERE subject_id = ? AND revoked_at = 0`, micros(at), subjectID)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (t *Tx) CreateAPIToken(ctx context.Context, k *steward.APIToken) error {
	_, err := t.exec(ctx, "insert token", `INSERT INTO api_tokens (token_hash, id, kind, name, app_id, roles, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.TokenHash, k.ID, k.Kind, k.Name, k.AppID, strings.Join(k.Roles, ","), micros(k.CreatedAt), micros(k.ExpiresAt), micros(k.RevokedAt))
	return err
}

const tokenColumns = `token_hash, id, kind, name, app_id, roles, created_at, expires_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (*steward.APIToken, error) {
	var k steward.APIToken
	var roles string
	var created, expires, revoked int64
	if err := row.Scan(&k.TokenHash, &k.ID, &k.Kind, &k.Name, &k.AppID, &roles, &created, &expires, &revoked); err != nil {
		return nil, notFound("token", err)
	}
	if roles != "" {
		k.Roles = strings.Split(roles, ",")
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(revoked)
	return &k, nil
}

func (t *Tx) APITokenByHash(ctx context.Context, hash []byte) (*steward.APIToken, error) {
	return scanToken(t.row(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE token_hash = ?`, hash))
}

func (t *Tx) ListAPITokens(ctx context.Context) ([]steward.APIToken, error) {
	rows, err := t.rows(ctx, "select tokens", `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.APIToken
	for rows.Next() {
		k, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, mapErr(rows.Err(), "select tokens")
}

func (t *Tx) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	res, err := t.exec(ctx, "revoke token", `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, micros(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "no live token with that id")
	}
	return nil
}

func (t *Tx) AppendAudit(ctx context.Context, entries ...*steward.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	lock := ""
	if t.db.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	var seq int64
	var prev []byte
	if err := t.row(ctx, `SELECT seq, hash FROM `+t.db.chain+`_head WHERE id = 1`+lock).Scan(&seq, &prev); err != nil {
		return mapErr(err, "read audit head")
	}
	args := make([]any, 0, 12*len(entries))
	for _, e := range entries {
		seq++
		if e.ID == "" {
			e.ID = steward.NewID()
		}
		e.At = e.At.UTC().Truncate(time.Microsecond)
		e.Seq, e.PrevHash = seq, prev
		e.Hash = e.ComputeHash(prev)
		args = append(args, e.Seq, e.ID, micros(e.At), e.ActorKind, e.ActorID, e.Action, e.SubjectID, e.Purpose,
			strings.Join(e.Fields, ","), e.Detail, orEmpty(e.PrevHash), e.Hash)
		prev = e.Hash
	}
	if err := t.insertRows(ctx, "insert audit entry", `INSERT INTO `+t.db.chain+`_log (`+auditColumns+`) VALUES `, "", 12, args); err != nil {
		return err
	}
	_, err := t.exec(ctx, "update audit head", `UPDATE `+t.db.chain+`_head SET seq = ?, hash = ? WHERE id = 1`, seq, prev)
	return err
}

func (t *Tx) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	if err := t.row(ctx, `SELECT seq, hash FROM `+t.db.chain+`_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
		return 0, nil, notFound("audit head", err)
	}
	if len(hash) == 0 {
		hash = nil
	}
	return seq, hash, nil
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const auditColumns = `seq, id, at, actor_kind, actor_id, action, subject_id, purpose, fields, detail, prev_hash, hash`

func scanAudit(rows *sql.Rows) (steward.AuditEntry, error) {
	var e steward.AuditEntry
	var at int64
	var fields string
	if err := rows.Scan(&e.Seq, &e.ID, &at, &e.ActorKind, &e.ActorID, &e.Action, &e.SubjectID, &e.Purpose, &fields, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
		return e, mapErr(err, "scan audit entry")
	}
	e.At = fromMicros(at)
	if fields != "" {
		e.Fields = strings.Split(fields, ",")
	}
	if len(e.PrevHash) == 0 {
		e.PrevHash = nil
	}
	return e, nil
}

func (t *Tx) ScanAudit(ctx context.Context, after int64, fn func(steward.AuditEntry) error) error {
	rows, err := t.rows(ctx, "select audit", `SELECT `+auditColumns+` FROM `+t.db.chain+`_log WHERE seq > ? ORDER BY seq`, after)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return mapErr(rows.Err(), "select audit")
}

func (t *Tx) AuditBySubject(ctx context.Context, subjectID string) ([]steward.AuditEntry, error) {
	rows, err := t.rows(ctx, "select audit", `SELECT `+auditColumns+` FROM `+t.db.chain+`_log WHERE subject_id = ? ORDER BY seq`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err(), "select audit")
}

func (t *Tx) Enqueue(ctx context.Context, m *steward.OutboxMessage) error {
	if m.ID == "" {
		m.ID = steward.NewID()
	}
	_, err := t.exec(ctx, "insert outbox", `INSERT INTO outbox (id, channel, subject_id, kind, payload, attempts, created_at, next_attempt_at, claimed_by, claimed_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.Channel, m.SubjectID, m.Kind, m.Payload, m.Attempts, micros(m.CreatedAt), micros(m.NextAttemptAt), m.ClaimedBy, micros(m.ClaimedUntil))
	return err
}

func (t *Tx) DueMessages(ctx context.Context, instance string, now time.Time, limit int) ([]steward.OutboxMessage, error) {
	rows, err := t.rows(ctx, "select outbox", `SELECT id, channel, subject_id, kind, payload, attempts, created_at, next_attempt_at, last_error, claimed_by, claimed_until
		FROM outbox WHERE delivered_at = 0 AND next_attempt_at <= ? AND (claimed_by = ? OR claimed_until <= ?)
		ORDER BY next_attempt_at, id LIMIT ?`, micros(now), instance, micros(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.OutboxMessage
	for rows.Next() {
		var m steward.OutboxMessage
		var created, next, until int64
		if err := rows.Scan(&m.ID, &m.Channel, &m.SubjectID, &m.Kind, &m.Payload, &m.Attempts, &created, &next, &m.LastError, &m.ClaimedBy, &until); err != nil {
			return nil, mapErr(err, "scan outbox")
		}
		m.CreatedAt, m.NextAttemptAt, m.ClaimedUntil = fromMicros(created), fromMicros(next), fromMicros(until)
		out = append(out, m)
	}
	return out, mapErr(rows.Err(), "select outbox")
}

// ClaimMessages writes one conditional UPDATE per message: the condition is
// evaluated on the row as committed when the write runs (SQLite's one writer at a
// time; PostgreSQL re-reads a row another transaction changed before updating
// it), so of two processes claiming one message one finds it taken.
func (t *Tx) ClaimMessages(ctx context.Context, instance string, ids []string, now, until time.Time) ([]string, error) {
	if instance == "" {
		return nil, steward.Errorf(steward.EINVALID, "an outbox claim needs an instance id")
	}
	var won []string
	for _, id := range ids {
		res, err := t.exec(ctx, "claim outbox", `UPDATE outbox SET claimed_by = ?, claimed_until = ?
			WHERE id = ? AND delivered_at = 0 AND (claimed_by = ? OR claimed_until <= ?)`,
			instance, micros(until), id, instance, micros(now))
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, mapErr(err, "claim outbox")
		}
		if n == 1 {
			won = append(won, id)
		}
	}
	return won, nil
}

// MarkDelivered records delivery and wipes the payload, which holds PI.
func (t *Tx) MarkDelivered(ctx context.Context, id string, at time.Time) error {
	_, err := t.exec(ctx, "mark delivered", `UPDATE outbox SET delivered_at = ?, payload = ?, last_error = '' WHERE id = ?`, micros(at), []byte{}, id)
	return err
}

func (t *Tx) MarkFailed(ctx context.Context, instance, id string, attempts int, next, claimedUntil time.Time, lastError string) error {
	_, err := t.exec(ctx, "mark failed", `UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, claimed_until = ? WHERE id = ? AND claimed_by = ?`,
		attempts, micros(next), lastError, micros(claimedUntil), id, instance)
	return err
}

func (t *Tx) DeleteMessages(ctx context.Context, subjectID string) error {
	// The second condition lets both engines use the partial index outbox_subject.
	_, err := t.exec(ctx, "delete outbox", `DELETE FROM outbox WHERE subject_id = ? AND subject_id <> ''`, subjectID)
	return err
}
