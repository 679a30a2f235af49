package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Rights requests and automated decisions (steward.RequestTx).

const requestColumns = `r.id, r.subject_id, r.type, r.state, r.received_at, r.due_on, r.due_at, r.verified_at,
	r.verification_method, r.verified_by, r.verification_reference, r.deletion_ground, r.refusal_ground,
	r.refusal_explanation, r.complaint_channel, r.primary_id, r.purpose, r.decision_id, r.assigned_to, r.input,
	r.fulfil_state, r.fulfil_started_at, r.result, r.answer, r.version,
	COALESCE(f.amount_minor, 0), COALESCE(f.currency, ''), COALESCE(f.prior_count, 0)`

const requestFrom = ` FROM requests r LEFT JOIN request_fees f ON f.request_id = r.id`

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func scanRequest(row interface{ Scan(...any) error }) (*steward.RequestRecord, error) {
	var r steward.RequestRecord
	var received, dueAt, verified, started int64
	var dueOn, refusalGround, channel, result, feeCurrency string
	var feeMinor int64
	err := row.Scan(&r.ID, &r.SubjectID, &r.Type, &r.State, &received, &dueOn, &dueAt, &verified,
		&r.VerificationMethod, &r.VerifiedBy, &r.VerificationReference, &r.DeletionGround, &refusalGround,
		&r.RefusalExplanation, &channel, &r.PrimaryID, &r.Purpose, &r.DecisionID, &r.AssignedTo, &r.Input,
		&r.FulfilState, &started, &result, &r.Answer, &r.Version,
		&feeMinor, &feeCurrency, &r.FeeCount)
	if err != nil {
		return nil, notFound("request", err)
	}
	r.ReceivedAt, r.DueAt, r.VerifiedAt, r.FulfilStartedAt = fromMicros(received), fromMicros(dueAt), fromMicros(verified), fromMicros(started)
	if dueOn != "" {
		if r.DueOn, err = steward.ParseDate(dueOn); err != nil {
			return nil, mapErr(err, "read request due date")
		}
	}
	if refusalGround != "" {
		r.Refusal = &steward.Refusal{Ground: steward.RefusalGround(refusalGround), ComplaintChannel: channel}
	}
	if result != "" {
		r.Result = json.RawMessage(result)
	}
	if feeCurrency != "" {
		r.Fee = &steward.Fee{AmountMinor: feeMinor, Currency: feeCurrency}
	}
	for _, b := range []*[]byte{&r.VerificationReference, &r.RefusalExplanation, &r.Input, &r.Answer} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return &r, nil
}

// requestArgs returns the column values of r in the order of the INSERT below.
func requestArgs(r *steward.RequestRecord) []any {
	var ground, channel string
	if r.Refusal != nil {
		ground, channel = string(r.Refusal.Ground), r.Refusal.ComplaintChannel
	}
	return []any{r.SubjectID, string(r.Type), string(r.State), micros(r.ReceivedAt), r.DueOn.String(), micros(r.DueAt), micros(r.VerifiedAt),
		r.VerificationMethod, r.VerifiedBy, nonNil(r.VerificationReference), string(r.DeletionGround), ground,
		nonNil(r.RefusalExplanation), channel, r.PrimaryID, r.Purpose, r.DecisionID, r.AssignedTo, nonNil(r.Input),
		r.FulfilState, micros(r.FulfilStartedAt), string(r.Result), nonNil(r.Answer), nullIfEmpty(r.DuplicateKey())}
}

func (t *Tx) CreateRequest(ctx context.Context, r *steward.RequestRecord) error {
	args := append([]any{r.ID}, requestArgs(r)...)
	if _, err := t.exec(ctx, "insert request", `INSERT INTO requests (id, subject_id, type, state, received_at, due_on, due_at, verified_at,
		verification_method, verified_by, verification_reference, deletion_ground, refusal_ground,
		refusal_explanation, complaint_channel, primary_id, purpose, decision_id, assigned_to, input,
		fulfil_state, fulfil_started_at, result, answer, open_key, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`, args...); err != nil {
		return err
	}
	if r.Fee != nil {
		if _, err := t.exec(ctx, "insert request fee", `INSERT INTO request_fees (request_id, amount_minor, currency, prior_count, assessed_at) VALUES (?, ?, ?, ?, ?)`,
			r.ID, r.Fee.AmountMinor, r.Fee.Currency, r.FeeCount, micros(r.ReceivedAt)); err != nil {
			return err
		}
	}
	if err := t.insertEvents(ctx, r.ID, 0, r.Events); err != nil {
		return err
	}
	r.Version, r.StoredEvents = 0, len(r.Events)
	return nil
}

func (t *Tx) insertEvents(ctx context.Context, id string, from int, events []steward.RequestEvent) error {
	for i, e := range events {
		if _, err := t.exec(ctx, "insert request event", `INSERT INTO request_events (request_id, seq, at, from_state, to_state, reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, from+i+1, micros(e.At), string(e.From), string(e.To), e.Reason, e.Actor); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) GetRequest(ctx context.Context, id string) (*steward.RequestRecord, error) {
	r, err := scanRequest(t.row(ctx, `SELECT `+requestColumns+requestFrom+` WHERE r.id = ?`, id))
	if err != nil {
		return nil, err
	}
	if err := t.loadEvents(ctx, []*steward.RequestRecord{r}); err != nil {
		return nil, err
	}
	return r, nil
}

func (t *Tx) OpenRequestByKey(ctx context.Context, key string) (*steward.RequestRecord, error) {
	if key == "" {
		return nil, steward.Errorf(steward.ENOTFOUND, "request not found")
	}
	r, err := scanRequest(t.row(ctx, `SELECT `+requestColumns+requestFrom+` WHERE r.open_key = ?`, key))
	if err != nil {
		return nil, err
	}
	if err := t.loadEvents(ctx, []*steward.RequestRecord{r}); err != nil {
		return nil, err
	}
	return r, nil
}

// loadEvents fills the events of rs with one query per batch of ids.
func (t *Tx) loadEvents(ctx context.Context, rs []*steward.RequestRecord) error {
	const batch = 500
	for start := 0; start < len(rs); start += batch {
		part := rs[start:min(start+batch, len(rs))]
		byID := make(map[string]*steward.RequestRecord, len(part))
		args := make([]any, 0, len(part))
		for _, r := range part {
			r.Events = []steward.RequestEvent{}
			byID[r.ID] = r
			args = append(args, r.ID)
		}
		rows, err := t.rows(ctx, "select request events", `SELECT request_id, at, from_state, to_state, reason, actor FROM request_events
			WHERE request_id IN (?`+strings.Repeat(", ?", len(args)-1)+`) ORDER BY request_id, seq`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, from, to string
			var e steward.RequestEvent
			var at int64
			if err := rows.Scan(&id, &at, &from, &to, &e.Reason, &e.Actor); err != nil {
				rows.Close()
				return mapErr(err, "scan request event")
			}
			e.At, e.From, e.To = fromMicros(at), steward.RequestState(from), steward.RequestState(to)
			r := byID[id]
			r.Events = append(r.Events, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return mapErr(err, "select request events")
		}
		for _, r := range part {
			r.StoredEvents = len(r.Events)
		}
	}
	return nil
}

func (t *Tx) UpdateRequest(ctx context.Context, r *steward.RequestRecord) error {
	args := append(requestArgs(r), r.ID, r.Version)
	res, err := t.exec(ctx, "update request", `UPDATE requests SET subject_id = ?, type = ?, state = ?, received_at = ?, due_on = ?, due_at = ?,
		verified_at = ?, verification_method = ?, verified_by = ?, verification_reference = ?, deletion_ground = ?, refusal_ground = ?,
		refusal_explanation = ?, complaint_channel = ?, primary_id = ?, purpose = ?, decision_id = ?, assigned_to = ?, input = ?,
		fulfil_state = ?, fulfil_started_at = ?, result = ?, answer = ?, open_key = ?, version = version + 1
		WHERE id = ? AND version = ?`, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ECONFLICT, "Request %s was changed by someone else at the same time; try again.", r.ID)
	}
	if err := t.insertEvents(ctx, r.ID, r.StoredEvents, r.Events[r.StoredEvents:]); err != nil {
		return err
	}
	return nil
}

func (t *Tx) ListRequests(ctx context.Context, f steward.RequestFilter) ([]steward.RequestRecord, error) {
	var where []string
	var args []any
	if f.SubjectID != "" {
		where, args = append(where, "r.subject_id = ?"), append(args, f.SubjectID)
	}
	if f.Type != "" {
		where, args = append(where, "r.type = ?"), append(args, string(f.Type))
	}
	if len(f.States) > 0 {
		where = append(where, "r.state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if !f.DueBefore.IsZero() {
		where, args = append(where, "r.due_at > 0 AND r.due_at < ?"), append(args, micros(f.DueBefore))
	}
	if f.AssignedTo != "" {
		where, args = append(where, "r.assigned_to = ?"), append(args, f.AssignedTo)
	}
	if f.PrimaryID != "" {
		where, args = append(where, "r.primary_id = ?"), append(args, f.PrimaryID)
	}
	query := `SELECT ` + requestColumns + requestFrom
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY CASE WHEN r.due_at = 0 THEN 1 ELSE 0 END, r.due_at, r.received_at, r.id`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := t.rows(ctx, "select requests", query, args...)
	if err != nil {
		return nil, err
	}
	var out []steward.RequestRecord
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, *r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, mapErr(err, "select requests")
	}
	ptrs := make([]*steward.RequestRecord, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	return out, t.loadEvents(ctx, ptrs)
}

func (t *Tx) RequestReceipts(ctx context.Context, subjectID string, typ steward.RequestType, since time.Time) ([]time.Time, error) {
	rows, err := t.rows(ctx, "select request receipts", `SELECT received_at FROM requests WHERE subject_id = ? AND type = ? AND received_at >= ?
		AND state NOT IN (?, ?) ORDER BY received_at`, subjectID, string(typ), micros(since), string(steward.RequestMerged), string(steward.RequestWithdrawn))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at int64
		if err := rows.Scan(&at); err != nil {
			return nil, mapErr(err, "scan request receipt")
		}
		out = append(out, fromMicros(at))
	}
	return out, mapErr(rows.Err(), "select request receipts")
}

func (t *Tx) CountRequests(ctx context.Context, now, soon time.Time) (steward.RequestCounts, error) {
	var c steward.RequestCounts
	open := steward.OpenStates()
	args := make([]any, 0, len(open)+4)
	args = append(args, micros(now), micros(now), micros(soon))
	for _, s := range open {
		args = append(args, string(s))
	}
	var overdue, dueSoon sql.NullInt64
	err := t.row(ctx, `SELECT COUNT(*),
		SUM(CASE WHEN due_at > 0 AND due_at < ? THEN 1 ELSE 0 END),
		SUM(CASE WHEN due_at >= ? AND due_at <= ? THEN 1 ELSE 0 END)
		FROM requests WHERE state IN (?`+strings.Repeat(", ?", len(open)-1)+`)`, args...).Scan(&c.Open, &overdue, &dueSoon)
	if err != nil {
		return c, mapErr(err, "count requests")
	}
	c.Overdue, c.DueSoon = int(overdue.Int64), int(dueSoon.Int64)
	return c, nil
}

func (t *Tx) AddReminder(ctx context.Context, requestID, threshold string, at time.Time) (bool, error) {
	res, err := t.exec(ctx, "insert reminder", `INSERT INTO request_reminders (request_id, threshold, sent_at) VALUES (?, ?, ?)
		ON CONFLICT (request_id, threshold) DO NOTHING`, requestID, threshold, micros(at))
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

const decisionColumns = `id, subject_id, system, app_id, outcome, inputs, solely_automated, made_at, review_request_id, review_outcome, reviewed_at`

func scanDecision(row interface{ Scan(...any) error }) (*steward.Decision, error) {
	var d steward.Decision
	var inputs string
	var made, reviewed int64
	if err := row.Scan(&d.ID, &d.SubjectID, &d.System, &d.AppID, &d.Outcome, &inputs, &d.SolelyAutomated, &made,
		&d.ReviewRequestID, &d.ReviewOutcome, &reviewed); err != nil {
		return nil, notFound("decision", err)
	}
	d.Inputs = []string{}
	if inputs != "" {
		d.Inputs = strings.Split(inputs, ",")
	}
	d.MadeAt, d.ReviewedAt = fromMicros(made), fromMicros(reviewed)
	return &d, nil
}

func (t *Tx) CreateDecision(ctx context.Context, d *steward.Decision) error {
	_, err := t.exec(ctx, "insert decision", `INSERT INTO decisions (`+decisionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.SubjectID, d.System, d.AppID, nonNil(d.Outcome), strings.Join(d.Inputs, ","), d.SolelyAutomated, micros(d.MadeAt),
		d.ReviewRequestID, d.ReviewOutcome, micros(d.ReviewedAt))
	return err
}

func (t *Tx) GetDecision(ctx context.Context, id string) (*steward.Decision, error) {
	return scanDecision(t.row(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE id = ?`, id))
}

func (t *Tx) ListDecisions(ctx context.Context, subjectID string) ([]steward.Decision, error) {
	rows, err := t.rows(ctx, "select decisions", `SELECT `+decisionColumns+` FROM decisions WHERE subject_id = ? ORDER BY made_at, id`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.Decision
	for rows.Next() {
		d, err := scanDecision(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, mapErr(rows.Err(), "select decisions")
}

func (t *Tx) ReviewDecision(ctx context.Context, id, requestID, outcome string, at time.Time) error {
	res, err := t.exec(ctx, "review decision", `UPDATE decisions SET review_request_id = ?, review_outcome = ?, reviewed_at = ? WHERE id = ?`,
		requestID, outcome, micros(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return steward.Errorf(steward.ENOTFOUND, "decision not found")
	}
	return nil
}

func (t *Tx) AddDecisionOptOut(ctx context.Context, o *steward.DecisionOptOut) error {
	_, err := t.exec(ctx, "insert decision opt-out", `INSERT INTO decision_opt_outs (subject_id, system, at) VALUES (?, ?, ?)`,
		o.SubjectID, o.System, micros(o.At))
	return err
}

func (t *Tx) DecisionOptOuts(ctx context.Context, subjectID string) ([]steward.DecisionOptOut, error) {
	rows, err := t.rows(ctx, "select decision opt-outs", `SELECT subject_id, system, at FROM decision_opt_outs WHERE subject_id = ? ORDER BY at, system`, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []steward.DecisionOptOut
	for rows.Next() {
		var o steward.DecisionOptOut
		var at int64
		if err := rows.Scan(&o.SubjectID, &o.System, &at); err != nil {
			return nil, mapErr(err, "scan decision opt-out")
		}
		o.At = fromMicros(at)
		out = append(out, o)
	}
	return out, mapErr(rows.Err(), "select decision opt-outs")
}
