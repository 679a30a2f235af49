package sql

import (
	"context"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// This file implements steward.RecipientTx: the recipient register, disclosures,
// recipient notices, legal holds with their held copies and deletion certificates.

var _ steward.RecipientTx = (*Tx)(nil)

func joinNames(names []string) string { return strings.Join(names, ",") }

func splitNames(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

const recipientColumns = `id, name, kind, webhook_url, secret, agreement_ref, purposes, fields, created_at, created_by`

func scanRecipient(row interface{ Scan(...any) error }) (*steward.Recipient, error) {
	var r steward.Recipient
	var kind, purposes, fields string
	var created int64
	if err := row.Scan(&r.ID, &r.Name, &kind, &r.WebhookURL, &r.Secret, &r.AgreementRef, &purposes, &fields, &created, &r.CreatedBy); err != nil {
		return nil, notFound("recipient", err)
	}
	r.Kind, r.Purposes, r.Fields, r.CreatedAt = steward.RecipientKind(kind), splitNames(purposes), splitNames(fields), fromMicros(created)
	return &r, nil
}

func (t *Tx) CreateRecipient(ctx context.Context, r *steward.Recipient) error {
	_, err := t.exec(ctx, "insert recipient", `INSERT INTO recipients (`+recipientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Name, string(r.Kind), r.WebhookURL, r.Secret, r.AgreementRef, joinNames(r.Purposes), joinNames(r.Fields), micros(r.CreatedAt), r.CreatedBy)
	return err
}

func (t *Tx) GetRecipient(ctx context.Context, id string) (*steward.Recipient, error) {
	return scanRecipient(t.row(ctx, `SELECT `+recipientColumns+` FROM recipients WHERE id = ?`, id))
}

func (t *Tx) ListRecipients(ctx context.Context) ([]steward.Recipient, error) {
	rows, err := t.rows(ctx, "select recipients", `SELECT `+recipientColumns+` FROM recipients ORDER BY name, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.Recipient
	for rows.Next() {
		r, err := scanRecipient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, mapErr(rows.Err(), "select recipients")
}

func (t *Tx) AddDisclosure(ctx context.Context, d *steward.Disclosure) error {
	_, err := t.exec(ctx, "insert disclosure", `INSERT INTO disclosures (id, subject_id, recipient_id, purpose, fields, app_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.SubjectID, d.RecipientID, d.Purpose, joinNames(d.Fields), d.AppID, micros(d.At))
	return err
}

func (t *Tx) Disclosures(ctx context.Context, subjectID string) ([]steward.Disclosure, error) {
	rows, err := t.rows(ctx, "select disclosures", `SELECT id, subject_id, recipient_id, purpose, fields, app_id, at FROM disclosures
		WHERE subject_id = ? ORDER BY at, id`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.Disclosure
	for rows.Next() {
		var d steward.Disclosure
		var fields string
		var at int64
		if err := rows.Scan(&d.ID, &d.SubjectID, &d.RecipientID, &d.Purpose, &fields, &d.AppID, &at); err != nil {
			return nil, mapErr(err, "scan disclosure")
		}
		d.Fields, d.At = splitNames(fields), fromMicros(at)
		out = append(out, d)
	}
	return out, mapErr(rows.Err(), "select disclosures")
}

const noticeColumns = `id, recipient_id, subject_id, event, purpose, fields, request_id, message_id, created_at, due_at, acked_at, ack_outcome`

func scanNotice(row interface{ Scan(...any) error }) (*steward.RecipientNotice, error) {
	var n steward.RecipientNotice
	var fields string
	var created, due, acked int64
	if err := row.Scan(&n.ID, &n.RecipientID, &n.SubjectID, &n.Event, &n.Purpose, &fields, &n.RequestID, &n.MessageID, &created, &due, &acked, &n.AckOutcome); err != nil {
		return nil, notFound("notice", err)
	}
	n.Fields, n.CreatedAt, n.DueAt, n.AckedAt = splitNames(fields), fromMicros(created), fromMicros(due), fromMicros(acked)
	return &n, nil
}

func (t *Tx) CreateNotice(ctx context.Context, n *steward.RecipientNotice) error {
	_, err := t.exec(ctx, "insert notice", `INSERT INTO recipient_notices (`+noticeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.RecipientID, n.SubjectID, n.Event, n.Purpose, joinNames(n.Fields), n.RequestID, n.MessageID,
		micros(n.CreatedAt), micros(n.DueAt), micros(n.AckedAt), n.AckOutcome)
	return err
}

func (t *Tx) GetNotice(ctx context.Context, id string) (*steward.RecipientNotice, error) {
	return scanNotice(t.row(ctx, `SELECT `+noticeColumns+` FROM recipient_notices WHERE id = ?`, id))
}

func (t *Tx) ListNotices(ctx context.Context, f steward.NoticeFilter) ([]steward.RecipientNotice, error) {
	var where []string
	var args []any
	switch f.State {
	case steward.NoticePending:
		where = append(where, `acked_at = 0`)
	case steward.NoticeAcknowledged:
		where = append(where, `acked_at <> 0`)
	}
	if !f.OverdueAt.IsZero() {
		where, args = append(where, `acked_at = 0 AND due_at < ?`), append(args, micros(f.OverdueAt))
	}
	if f.RecipientID != "" {
		where, args = append(where, `recipient_id = ?`), append(args, f.RecipientID)
	}
	if f.RequestID != "" {
		where, args = append(where, `request_id = ?`), append(args, f.RequestID)
	}
	if f.SubjectID != "" {
		where, args = append(where, `subject_id = ?`), append(args, f.SubjectID)
	}
	query := `SELECT ` + noticeColumns + ` FROM recipient_notices`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	rows, err := t.rows(ctx, "select notices", query+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.RecipientNotice
	for rows.Next() {
		n, err := scanNotice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *n)
	}
	return out, mapErr(rows.Err(), "select notices")
}

func (t *Tx) AckNotice(ctx context.Context, id string, at time.Time, outcome string) error {
	res, err := t.exec(ctx, "acknowledge notice", `UPDATE recipient_notices SET acked_at = ?, ack_outcome = ? WHERE id = ? AND acked_at = 0`, micros(at), outcome, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.GetNotice(ctx, id); err != nil {
			return err
		}
		return steward.Errorf(steward.ECONFLICT, "the notice was acknowledged already")
	}
	return nil
}

const holdColumns = `id, subject_id, fields, hold_case, reference, purpose, until_at, key_id, placed_at, placed_by, released_at, released_by, release_reason`

func scanHold(row interface{ Scan(...any) error }) (*steward.LegalHold, error) {
	var h steward.LegalHold
	var fields, hcase string
	var until, placed, released int64
	if err := row.Scan(&h.ID, &h.SubjectID, &fields, &hcase, &h.Reference, &h.Purpose, &until, &h.KeyID, &placed, &h.PlacedBy, &released, &h.ReleasedBy, &h.ReleaseReason); err != nil {
		return nil, notFound("legal hold", err)
	}
	h.Fields, h.Case = splitNames(fields), steward.HoldCase(hcase)
	h.Until, h.PlacedAt, h.ReleasedAt = fromMicros(until), fromMicros(placed), fromMicros(released)
	return &h, nil
}

func (t *Tx) CreateHold(ctx context.Context, h *steward.LegalHold) error {
	_, err := t.exec(ctx, "insert legal hold", `INSERT INTO legal_holds (`+holdColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.ID, h.SubjectID, joinNames(h.Fields), string(h.Case), h.Reference, h.Purpose, micros(h.Until), h.KeyID,
		micros(h.PlacedAt), h.PlacedBy, micros(h.ReleasedAt), h.ReleasedBy, h.ReleaseReason)
	return err
}

func (t *Tx) GetHold(ctx context.Context, id string) (*steward.LegalHold, error) {
	return scanHold(t.row(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE id = ?`, id))
}

func (t *Tx) holds(ctx context.Context, query string, args ...any) ([]steward.LegalHold, error) {
	rows, err := t.rows(ctx, "select legal holds", query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.LegalHold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *h)
	}
	return out, mapErr(rows.Err(), "select legal holds")
}

func (t *Tx) SubjectHolds(ctx context.Context, subjectID string) ([]steward.LegalHold, error) {
	return t.holds(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE subject_id = ? ORDER BY placed_at, id`, subjectID)
}

func (t *Tx) ExpiredHolds(ctx context.Context, now time.Time) ([]steward.LegalHold, error) {
	return t.holds(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE released_at = 0 AND until_at <> 0 AND until_at <= ? ORDER BY until_at, id`, micros(now))
}

func (t *Tx) ReleaseHold(ctx context.Context, id string, at time.Time, by, reason string) error {
	res, err := t.exec(ctx, "release legal hold", `UPDATE legal_holds SET released_at = ?, released_by = ?, release_reason = ? WHERE id = ? AND released_at = 0`,
		micros(at), by, reason, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.GetHold(ctx, id); err != nil {
			return err
		}
		return steward.Errorf(steward.ECONFLICT, "the legal hold was released already")
	}
	return nil
}

func (t *Tx) PutHeldFields(ctx context.Context, holdID string, fields []steward.SealedField) error {
	for _, f := range fields {
		if _, err := t.exec(ctx, "insert held field", `INSERT INTO held_fields (hold_id, subject_id, field, value, sealed_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (hold_id, field) DO UPDATE SET value = excluded.value, sealed_at = excluded.sealed_at`,
			holdID, f.SubjectID, f.Field, f.Value, micros(f.UpdatedAt)); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) HeldFields(ctx context.Context, holdID string) ([]steward.SealedField, error) {
	rows, err := t.rows(ctx, "select held fields", `SELECT subject_id, field, value, sealed_at FROM held_fields WHERE hold_id = ? ORDER BY field`, holdID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.SealedField
	for rows.Next() {
		var f steward.SealedField
		var at int64
		if err := rows.Scan(&f.SubjectID, &f.Field, &f.Value, &at); err != nil {
			return nil, mapErr(err, "scan held field")
		}
		f.UpdatedAt = fromMicros(at)
		out = append(out, f)
	}
	return out, mapErr(rows.Err(), "select held fields")
}

func (t *Tx) DeleteHeldFields(ctx context.Context, holdID string) error {
	_, err := t.exec(ctx, "delete held fields", `DELETE FROM held_fields WHERE hold_id = ?`, holdID)
	return err
}

func (t *Tx) PutCertificate(ctx context.Context, c *steward.StoredCertificate) error {
	_, err := t.exec(ctx, "insert certificate", `INSERT INTO deletion_certificates (id, request_id, subject_id, body, issued_at) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.RequestID, c.SubjectID, c.Body, micros(c.IssuedAt))
	return err
}

func (t *Tx) CertificateByRequest(ctx context.Context, requestID string) (*steward.StoredCertificate, error) {
	var c steward.StoredCertificate
	var at int64
	err := t.row(ctx, `SELECT id, request_id, subject_id, body, issued_at FROM deletion_certificates WHERE request_id = ?`, requestID).
		Scan(&c.ID, &c.RequestID, &c.SubjectID, &c.Body, &at)
	if err != nil {
		return nil, notFound("certificate", err)
	}
	c.IssuedAt = fromMicros(at)
	return &c, nil
}
