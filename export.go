package steward

import (
	"context"
	"time"
)

// ExportSchema names the export format; doc/export.md describes it and the API
// document (components.schemas.Export in http/openapi.json) is its JSON Schema.
const ExportSchema = "steward.export/v1"

// Export is a subject's complete copy of their data (policy §6, PIPL Art. 45,
// GDPR Art. 15 and 20): every field with its declaration, consent history, rights
// requests and the access log of who read what, for which purpose, when.
type Export struct {
	Schema      string           `json:"schema"`
	GeneratedAt time.Time        `json:"generated_at"`
	Controller  Controller       `json:"controller"`
	Notice      string           `json:"notice_version"`
	Subject     Subject          `json:"subject"`
	Fields      []ExportedField  `json:"fields"`
	Consents    ExportedConsents `json:"consents"`
	Requests    []Request        `json:"requests"`
	AccessLog   []AccessLogEntry `json:"access_log"`
	Extra       map[string]any   `json:"extra,omitempty"` // data other features hold (address-book summary…)
}

// ExportedField is one field with its value and what the declaration says of it.
type ExportedField struct {
	Name      string    `json:"name"`
	Category  string    `json:"category"`
	Sensitive bool      `json:"sensitive"`
	Purposes  []string  `json:"purposes"`
	Retention Retention `json:"retention"`
	Value     any       `json:"value"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ExportedConsents holds the consents in force and every consent event.
type ExportedConsents struct {
	Current []ConsentState `json:"current"`
	History []ConsentEvent `json:"history"`
}

// AccessLogEntry is one audited event about the subject: who did what to which
// fields, for which purpose, when.
type AccessLogEntry struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"` // "kind:id"
	Action  string    `json:"action"`
	Purpose string    `json:"purpose,omitempty"`
	Fields  []string  `json:"fields"`
}

// ExportExtra lets other features add their part of a subject's data to exports.
type ExportExtra func(ctx context.Context, tx Tx, subjectID string, out map[string]any) error

// AddExportExtra registers f to contribute to every export.
func (s *Service) AddExportExtra(f ExportExtra) { s.extras = append(s.extras, f) }

// RequestLister returns a subject's rights requests for the export; set by the
// requests feature.
type RequestLister func(ctx context.Context, tx Tx, subjectID string) ([]Request, error)

// SetRequestLister sets how exports list a subject's rights requests.
func (s *Service) SetRequestLister(f RequestLister) { s.listRequests = f }

// ExportMe returns the signed-in subject's complete export. The export is audited.
func (s *Service) ExportMe(ctx context.Context) (*Export, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	return s.export(ctx, id)
}

func (s *Service) export(ctx context.Context, id string) (*Export, error) {
	x := &Export{Schema: ExportSchema, GeneratedAt: s.Now(), Controller: s.decl.Controller, Notice: s.decl.Version,
		Fields: []ExportedField{}, Requests: []Request{}, AccessLog: []AccessLogEntry{}}
	var sealed []SealedField
	var audit []AuditEntry
	err := s.store.Read(ctx, func(tx Tx) error {
		subj, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		x.Subject = *subj
		if sealed, err = tx.GetFields(ctx, id, nil); err != nil {
			return err
		}
		if x.Consents.Current, err = tx.ConsentStates(ctx, id); err != nil {
			return err
		}
		if x.Consents.History, err = tx.ConsentEvents(ctx, id); err != nil {
			return err
		}
		if audit, err = tx.AuditBySubject(ctx, id); err != nil {
			return err
		}
		if s.listRequests != nil {
			if x.Requests, err = s.listRequests(ctx, tx, id); err != nil {
				return err
			}
		}
		for _, f := range s.extras {
			if x.Extra == nil {
				x.Extra = map[string]any{}
			}
			if err := f(ctx, tx, id, x.Extra); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var reads []AuditEntry
	if err := s.store.ReadAccess(ctx, func(tx Tx) (err error) { reads, err = tx.AuditBySubject(ctx, id); return err }); err != nil {
		return nil, err
	}
	audit = mergeByTime(audit, reads)
	values, err := s.openFields(ctx, id, sealed)
	if err != nil {
		return nil, err
	}
	for _, f := range sealed {
		ef := ExportedField{Name: f.Field, Value: values[f.Field], UpdatedAt: f.UpdatedAt, Purposes: []string{}}
		if d, ok := s.decl.Field(f.Field); ok {
			ef.Category, ef.Sensitive, ef.Purposes, ef.Retention = d.Category, d.Sensitive, d.Purposes, d.Retention
		}
		x.Fields = append(x.Fields, ef)
	}
	for _, e := range audit {
		fields := e.Fields
		if fields == nil {
			fields = []string{}
		}
		x.AccessLog = append(x.AccessLog, AccessLogEntry{At: e.At, Actor: e.ActorKind + ":" + e.ActorID, Action: e.Action, Purpose: e.Purpose, Fields: fields})
	}
	if x.Consents.Current == nil {
		x.Consents.Current = []ConsentState{}
	}
	if x.Consents.History == nil {
		x.Consents.History = []ConsentEvent{}
	}
	if x.Requests == nil {
		x.Requests = []Request{}
	}
	names := make([]string, 0, len(x.Fields))
	for _, f := range x.Fields {
		names = append(names, f.Name)
	}
	if err := s.store.Audit(ctx, s.audit(ctx, AuditExport, id, "", names, "")); err != nil {
		return nil, err
	}
	return x, nil
}

// mergeByTime merges two chains' entries, each in chain order, into one list
// ordered by time (ties keep changes first).
func mergeByTime(a, b []AuditEntry) []AuditEntry {
	out := make([]AuditEntry, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j == len(b) || (i < len(a) && !b[j].At.Before(a[i].At)) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}
