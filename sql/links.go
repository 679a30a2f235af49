package sql

import (
	"context"
	"time"

	"github.com/stewardhq/steward"
)

const linkColumns = `id, subject_id, app_id, campaign, destination, unsubscribe_hash, created_at`

func scanLink(row interface{ Scan(...any) error }) (*steward.LinkRecord, error) {
	var l steward.LinkRecord
	var at int64
	if err := row.Scan(&l.ID, &l.SubjectID, &l.AppID, &l.Campaign, &l.Destination, &l.UnsubscribeHash, &at); err != nil {
		return nil, notFound("link", err)
	}
	l.CreatedAt = fromMicros(at)
	return &l, nil
}

func (t *Tx) CreateLink(ctx context.Context, l *steward.LinkRecord) error {
	_, err := t.exec(ctx, "insert link", `INSERT INTO links (`+linkColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.SubjectID, l.AppID, l.Campaign, l.Destination, l.UnsubscribeHash, micros(l.CreatedAt))
	return err
}

func (t *Tx) GetLink(ctx context.Context, id string) (*steward.LinkRecord, error) {
	return scanLink(t.row(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, id))
}

func (t *Tx) LinkByUnsubscribeHash(ctx context.Context, hash []byte) (*steward.LinkRecord, error) {
	return scanLink(t.row(ctx, `SELECT `+linkColumns+` FROM links WHERE unsubscribe_hash = ?`, hash))
}

func (t *Tx) SubjectLinks(ctx context.Context, subjectID string) ([]steward.LinkRecord, error) {
	rows, err := t.rows(ctx, "select links", `SELECT `+linkColumns+` FROM links WHERE subject_id = ? ORDER BY created_at, id`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.LinkRecord
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *l)
	}
	return out, mapErr(rows.Err(), "select links")
}

func (t *Tx) AddClick(ctx context.Context, c *steward.LinkClick) error {
	_, err := t.exec(ctx, "insert click", `INSERT INTO link_clicks (id, link_id, subject_id, clicked_at) VALUES (?, ?, ?, ?)`,
		c.ID, c.LinkID, c.SubjectID, micros(c.At))
	return err
}

func (t *Tx) SubjectClicks(ctx context.Context, subjectID string) ([]steward.LinkClick, error) {
	rows, err := t.rows(ctx, "select clicks", `SELECT id, link_id, clicked_at FROM link_clicks WHERE subject_id = ? ORDER BY clicked_at, id`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.LinkClick
	for rows.Next() {
		c := steward.LinkClick{SubjectID: subjectID}
		var at int64
		if err := rows.Scan(&c.ID, &c.LinkID, &at); err != nil {
			return nil, mapErr(err, "scan click")
		}
		c.At = fromMicros(at)
		out = append(out, c)
	}
	return out, mapErr(rows.Err(), "select clicks")
}

func (t *Tx) DeleteClicks(ctx context.Context, subjectID string) (int, error) {
	res, err := t.exec(ctx, "delete clicks", `DELETE FROM link_clicks WHERE subject_id = ?`, subjectID)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (t *Tx) DeleteLinks(ctx context.Context, subjectID string) (int, error) {
	n, err := t.DeleteClicks(ctx, subjectID)
	if err != nil {
		return 0, err
	}
	_, err = t.exec(ctx, "delete links", `DELETE FROM links WHERE subject_id = ?`, subjectID)
	return n, err
}

// Retention. Each Expire method picks at most limit subjects, deletes their
// expired data and returns the counts per subject; the caller loops.

// expire runs selectQuery (rows of subject_id and a count) with selectArgs, then
// deleteQuery, which must end in "subject_id IN ", with deleteArgs and the chosen ids.
func (t *Tx) expire(ctx context.Context, op, selectQuery string, selectArgs []any, deleteQuery string, deleteArgs []any) (map[string]int, error) {
	rows, err := t.rows(ctx, "select "+op, selectQuery, selectArgs...)
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
			return nil, mapErr(err, "scan "+op)
		}
		out[id] = n
		ids = append(ids, id)
	}
	rows.Close()
	if err := mapErr(rows.Err(), "select "+op); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return out, nil
	}
	values, list := t.valuesOf(ids)
	if _, err := t.exec(ctx, "delete "+op, deleteQuery+values, append(deleteArgs, list)...); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *Tx) ExpireFields(ctx context.Context, field string, before time.Time, limit int) (map[string]int, error) {
	return t.expire(ctx, "expired fields",
		`SELECT subject_id, 1 FROM subject_fields WHERE field = ? AND updated_at < ? ORDER BY subject_id LIMIT ?`, []any{field, micros(before), limit},
		`DELETE FROM subject_fields WHERE field = ? AND updated_at < ? AND subject_id IN `, []any{field, micros(before)})
}

func (t *Tx) ExpireClicks(ctx context.Context, before time.Time, limit int) (map[string]int, error) {
	return t.expire(ctx, "expired clicks",
		`SELECT subject_id, COUNT(*) FROM link_clicks WHERE clicked_at < ? GROUP BY subject_id ORDER BY subject_id LIMIT ?`, []any{micros(before), limit},
		`DELETE FROM link_clicks WHERE clicked_at < ? AND subject_id IN `, []any{micros(before)})
}
