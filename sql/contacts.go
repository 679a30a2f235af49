package sql

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// valuesOf returns a subquery with one column, value, holding values, and its
// one argument. SQLite and PostgreSQL differ here, and only here: SQLite reads the
// list from a JSON array (json_each), PostgreSQL from a text[] (unnest). Either way
// the statement text does not depend on the number of values, so it is parsed and
// planned once, and a list of 5 000 ids is one bound parameter.
func (t *Tx) valuesOf(values []string) (string, any) {
	if t.db.dialect == Postgres {
		return `(SELECT unnest(?::text[]) AS value)`, values
	}
	b, _ := json.Marshal(values)
	return `(SELECT value FROM json_each(?))`, string(b)
}

// hashInsertRows is the largest multi-row INSERT of contact hashes. A book is
// written in blocks of 256 rows, the rest in power-of-two blocks, so 5 000
// hashes take 21 statements of at most 9 distinct texts.
const hashInsertRows = 256

func (t *Tx) ReplaceContacts(ctx context.Context, book *steward.ContactBook, hashes [][]byte) error {
	if _, err := t.exec(ctx, "delete contact hashes", `DELETE FROM contact_hashes WHERE subject_id = ?`, book.SubjectID); err != nil {
		return err
	}
	for len(hashes) > 0 {
		n := hashInsertRows
		for n > len(hashes) {
			n /= 2
		}
		args := make([]any, 0, 2*n)
		for _, h := range hashes[:n] {
			args = append(args, book.SubjectID, h)
		}
		query := `INSERT INTO contact_hashes (subject_id, hash) VALUES (?, ?)` + strings.Repeat(", (?, ?)", n-1)
		if _, err := t.exec(ctx, "insert contact hashes", query, args...); err != nil {
			return err
		}
		hashes = hashes[n:]
	}
	_, err := t.exec(ctx, "upsert contact book", `INSERT INTO contact_books (subject_id, numbers, imported_at) VALUES (?, ?, ?)
		ON CONFLICT (subject_id) DO UPDATE SET numbers = excluded.numbers, imported_at = excluded.imported_at`,
		book.SubjectID, book.Count, micros(book.ImportedAt))
	return err
}

func (t *Tx) ContactBook(ctx context.Context, subjectID string) (*steward.ContactBook, error) {
	b := steward.ContactBook{SubjectID: subjectID}
	var at int64
	if err := t.row(ctx, `SELECT numbers, imported_at FROM contact_books WHERE subject_id = ?`, subjectID).Scan(&b.Count, &at); err != nil {
		return nil, notFound("address book", err)
	}
	b.ImportedAt = fromMicros(at)
	return &b, nil
}

func (t *Tx) DeleteContacts(ctx context.Context, subjectID string) (int, error) {
	res, err := t.exec(ctx, "delete contact hashes", `DELETE FROM contact_hashes WHERE subject_id = ?`, subjectID)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := t.exec(ctx, "delete contact book", `DELETE FROM contact_books WHERE subject_id = ?`, subjectID); err != nil {
		return 0, err
	}
	return int(n), nil
}

func (t *Tx) ContactHashes(ctx context.Context, subjectID string) ([][]byte, error) {
	rows, err := t.rows(ctx, "select contact hashes", `SELECT hash FROM contact_hashes WHERE subject_id = ?`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, mapErr(err, "scan contact hash")
		}
		out = append(out, h)
	}
	return out, mapErr(rows.Err(), "select contact hashes")
}

func (t *Tx) ContactHolders(ctx context.Context, subjectID string) ([]string, error) {
	rows, err := t.rows(ctx, "select contact holders", `SELECT c.subject_id FROM subject_indexes i
		JOIN contact_hashes c ON c.hash = i.value
		WHERE i.subject_id = ? AND i.kind = ?`, subjectID, steward.ContactIndexKind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, mapErr(err, "scan contact holder")
		}
		out = append(out, id)
	}
	return out, mapErr(rows.Err(), "select contact holders")
}

// ExcludedCandidates answers with the exceptions only: most candidates are
// allowed, and a row costs more than the index probes that decide it.
func (t *Tx) ExcludedCandidates(ctx context.Context, owner string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	values, list := t.valuesOf(ids)
	rows, err := t.rows(ctx, "select excluded candidates", `SELECT v.value, s.id IS NULL FROM `+values+` v
		LEFT JOIN subjects s ON s.id = v.value AND s.status = ?
		LEFT JOIN subject_indexes i ON i.subject_id = s.id AND i.kind = ?
		WHERE s.id IS NULL OR EXISTS (SELECT 1 FROM contact_hashes c WHERE c.subject_id = ? AND c.hash = i.value)`,
		list, steward.SubjectActive, steward.ContactIndexKind, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var gone bool
		if err := rows.Scan(&id, &gone); err != nil {
			return nil, mapErr(err, "scan excluded candidate")
		}
		out[id] = gone
	}
	return out, mapErr(rows.Err(), "select excluded candidates")
}

func (t *Tx) ActiveCandidates(ctx context.Context, owner, after string, limit int) ([]steward.Candidate, error) {
	rows, err := t.rows(ctx, "select candidates", `SELECT s.id, EXISTS (SELECT 1 FROM contact_hashes c WHERE c.subject_id = ? AND c.hash = i.value)
		FROM subjects s LEFT JOIN subject_indexes i ON i.subject_id = s.id AND i.kind = ?
		WHERE s.status = ? AND s.id > ? ORDER BY s.id LIMIT ?`, owner, steward.ContactIndexKind, steward.SubjectActive, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.Candidate
	for rows.Next() {
		var c steward.Candidate
		if err := rows.Scan(&c.SubjectID, &c.InBook); err != nil {
			return nil, mapErr(err, "scan candidate")
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err(), "select candidates")
}

func (t *Tx) ExpireContactBooks(ctx context.Context, before time.Time, limit int) (map[string]int, error) {
	rows, err := t.rows(ctx, "select expired books", `SELECT subject_id, numbers FROM contact_books WHERE imported_at < ? ORDER BY subject_id LIMIT ?`, micros(before), limit)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var ids []string
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, mapErr(err, "scan expired book")
		}
		out[id] = n
		ids = append(ids, id)
	}
	rows.Close()
	if err := mapErr(rows.Err(), "select expired books"); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return out, nil
	}
	values, list := t.valuesOf(ids)
	if _, err := t.exec(ctx, "expire contact hashes", `DELETE FROM contact_hashes WHERE subject_id IN `+values, list); err != nil {
		return nil, err
	}
	if _, err := t.exec(ctx, "expire contact books", `DELETE FROM contact_books WHERE subject_id IN `+values, list); err != nil {
		return nil, err
	}
	return out, nil
}
