package steward

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit actions of automated decisions (PIPL Art. 24; policy §6).
const (
	AuditDecisionRecord = "decision.record"  // a client app recorded a decision about a subject
	AuditDecisionOptOut = "decision.opt_out" // a subject refused decisions made solely by automated means
	AuditDecisionReview = "decision.review"  // staff recorded the human review of an appeal
)

// Decision is one automated decision about a subject, recorded by the client app
// that made it with a declared DecisionSystem. Outcome is sealed under the
// subject's data key (it says something about the person); Inputs names the fields
// or field categories the decision used, never their values. A decision reviewed
// by a human on appeal carries the review.
type Decision struct {
	ID              string    `json:"id"`
	SubjectID       string    `json:"subject_id"`
	System          string    `json:"system"`
	AppID           string    `json:"app_id"`
	Outcome         []byte    `json:"-"`
	Inputs          []string  `json:"inputs"`
	SolelyAutomated bool      `json:"solely_automated"`
	MadeAt          time.Time `json:"made_at"`
	ReviewRequestID string    `json:"review_request_id,omitempty"`
	ReviewOutcome   string    `json:"review_outcome,omitempty"`
	ReviewedAt      time.Time `json:"reviewed_at,omitzero"`
}

// String describes the decision by id and system only.
func (d Decision) String() string { return fmt.Sprintf("decision %s (%s)", d.ID, d.System) }

// LogValue logs id and system only.
func (d Decision) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", d.ID), slog.String("system", d.System))
}

// DecisionOptOut records that a subject refused decisions made solely by automated
// means by System (PIPL Art. 24: the individual may refuse such decisions).
type DecisionOptOut struct {
	SubjectID string    `json:"subject_id"`
	System    string    `json:"system"`
	At        time.Time `json:"at"`
}

// DecisionInput is what a client app records: the declared system, the outcome
// (short text such as "blocked", at most 200 characters) and the inputs used
// (declared field names or categories within the system's declared inputs).
type DecisionInput struct {
	System  string   `json:"system"`
	Outcome string   `json:"outcome"`
	Inputs  []string `json:"inputs"`
}

// DecisionView is a decision as its subject sees it: what was decided, by which
// system and how (its logic summary, significance and the categories of input),
// and the review, if any (policy §6; PIPL Art. 24, 48).
type DecisionView struct {
	ID              string    `json:"id"`
	System          string    `json:"system"`
	Purpose         string    `json:"purpose"`
	LogicSummary    string    `json:"logic_summary"`
	Significance    string    `json:"significance,omitempty"`
	SolelyAutomated bool      `json:"solely_automated"`
	Inputs          []string  `json:"inputs"`
	InputCategories []string  `json:"input_categories"`
	Outcome         string    `json:"outcome"`
	MadeAt          time.Time `json:"made_at"`
	ReviewRequestID string    `json:"review_request_id,omitempty"`
	ReviewOutcome   string    `json:"review_outcome,omitempty"`
	ReviewedAt      time.Time `json:"reviewed_at,omitzero"`
}

// MyDecisionsList is the signed-in subject's decisions and opt-outs.
type MyDecisionsList struct {
	Decisions []DecisionView   `json:"decisions"`
	OptOuts   []DecisionOptOut `json:"opt_outs"`
}

// DecisionSystem returns the declared decision system called name.
func (d *Declaration) DecisionSystem(name string) (*DecisionSystem, bool) {
	for i := range d.Decisions {
		if d.Decisions[i].Name == name {
			return &d.Decisions[i], true
		}
	}
	return nil, false
}

// inputAllowed reports whether input, a field name or category, is within the
// system's declared inputs (each a field name or a category).
func (d *Declaration) inputAllowed(sys *DecisionSystem, input string) bool {
	if slices.Contains(sys.Inputs, input) {
		return true
	}
	f, ok := d.Field(input)
	return ok && slices.Contains(sys.Inputs, f.Category)
}

// inputCategories maps inputs (field names or categories) to sorted, distinct
// field categories.
func (d *Declaration) inputCategories(inputs []string) []string {
	out := []string{}
	for _, in := range inputs {
		c := in
		if f, ok := d.Field(in); ok {
			c = f.Category
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// RecordDecision records an automated decision about subjectID made by the calling
// client app with in.System (P22). The app must be declared for the system's
// purpose and the purpose's legal basis must hold for the subject, as for a read;
// a solely automated system cannot decide about a subject who refused such
// decisions. Errors: EFORBIDDEN when the caller is not a client app declared for
// the purpose, the basis does not hold or the subject opted out; EINVALID for an
// undeclared system, a missing or too long outcome or an input outside the
// system's declared inputs; ENOTFOUND for an unknown subject; EGONE for a cancelled
// one.
func (rs *RequestService) RecordDecision(ctx context.Context, subjectID string, in DecisionInput) (*Decision, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorApp {
		return nil, Errorf(EFORBIDDEN, "only client apps record automated decisions")
	}
	d := rs.svc.decl
	sys, ok := d.DecisionSystem(in.System)
	if !ok {
		return nil, Errorf(EINVALID, "decision system %q is not declared", in.System)
	}
	if !d.AppMayUse(a.ID, sys.Purpose) {
		return nil, Errorf(EFORBIDDEN, "client app %s is not declared for purpose %s, which decision system %s serves", a.ID, sys.Purpose, sys.Name)
	}
	out := strings.TrimSpace(in.Outcome)
	if out == "" || utf8.RuneCountInString(out) > 200 {
		return nil, Errorf(EINVALID, "outcome is required, at most 200 characters")
	}
	if len(in.Inputs) == 0 {
		return nil, Errorf(EINVALID, "inputs must name the fields or field categories the decision used")
	}
	inputs := slices.Clone(in.Inputs)
	slices.Sort(inputs)
	inputs = slices.Compact(inputs)
	for _, x := range inputs {
		if !d.inputAllowed(sys, x) {
			return nil, Errorf(EINVALID, "input %s is not among the declared inputs of decision system %s (%s)", x, sys.Name, strings.Join(sys.Inputs, ", "))
		}
	}
	p, _ := d.Purpose(sys.Purpose)
	key, err := rs.svc.keys.SubjectKey(ctx, subjectID)
	if ErrorCode(err) == EGONE {
		return nil, Errorf(EGONE, "the subject's account was cancelled and its data erased")
	} else if err != nil {
		return nil, err
	}
	dec := &Decision{ID: NewID(), SubjectID: subjectID, System: sys.Name, AppID: a.ID, Inputs: inputs, SolelyAutomated: sys.SolelyAutomated, MadeAt: rs.svc.Now()}
	if dec.Outcome, err = key.Seal("decision/"+dec.ID+"/outcome", []byte(out)); err != nil {
		return nil, err
	}
	var denied error
	err = rs.svc.store.Write(ctx, func(tx Tx) error {
		denied = nil
		subj, err := tx.GetSubject(ctx, subjectID)
		if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled and its data erased")
		}
		st, err := tx.ConsentState(ctx, subjectID, sys.Purpose)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		if denied = d.BasisHolds(p, st); denied != nil {
			return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditReadDenied, subjectID, sys.Purpose, inputs, "decision system="+sys.Name+": "+ErrorMessage(denied)))
		}
		if sys.SolelyAutomated {
			outs, err := tx.DecisionOptOuts(ctx, subjectID)
			if err != nil {
				return err
			}
			for _, o := range outs {
				if o.System == sys.Name {
					denied = Errorf(EFORBIDDEN, "the subject refused decisions made solely by automated means by %s; a person must decide", sys.Name)
					return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditReadDenied, subjectID, sys.Purpose, inputs, "decision system="+sys.Name+": opted out"))
				}
			}
		}
		if err := tx.CreateDecision(ctx, dec); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditDecisionRecord, subjectID, sys.Purpose, inputs, "decision="+dec.ID+" system="+sys.Name))
	})
	if err != nil {
		return nil, err
	}
	if denied != nil {
		return nil, denied
	}
	return dec, nil
}

// MyDecisions returns the signed-in subject's automated decisions, each with its
// system's logic summary, the categories of input and the outcome, and the
// subject's opt-outs.
func (rs *RequestService) MyDecisions(ctx context.Context) (*MyDecisionsList, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	ex, err := rs.explainDecisions(ctx, id, "")
	if err != nil {
		return nil, err
	}
	out := &MyDecisionsList{Decisions: ex, OptOuts: []DecisionOptOut{}}
	err = rs.svc.store.Read(ctx, func(tx Tx) error {
		o, err := tx.DecisionOptOuts(ctx, id)
		if o != nil {
			out.OptOuts = o
		}
		return err
	})
	return out, err
}

// explainDecisions returns the subject's decisions (only decisionID when set),
// explained and with their outcomes opened.
func (rs *RequestService) explainDecisions(ctx context.Context, subjectID, decisionID string) ([]DecisionView, error) {
	var ds []Decision
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) { ds, err = tx.ListDecisions(ctx, subjectID); return err }); err != nil {
		return nil, err
	}
	out := []DecisionView{}
	var key SubjectKey
	for _, dec := range ds {
		if decisionID != "" && dec.ID != decisionID {
			continue
		}
		if key == nil {
			var err error
			if key, err = rs.svc.keys.SubjectKey(ctx, subjectID); err != nil {
				return nil, err
			}
		}
		v := DecisionView{ID: dec.ID, System: dec.System, SolelyAutomated: dec.SolelyAutomated, Inputs: dec.Inputs, MadeAt: dec.MadeAt,
			InputCategories: rs.svc.decl.inputCategories(dec.Inputs), ReviewRequestID: dec.ReviewRequestID, ReviewOutcome: dec.ReviewOutcome, ReviewedAt: dec.ReviewedAt}
		if sys, ok := rs.svc.decl.DecisionSystem(dec.System); ok {
			v.Purpose, v.LogicSummary, v.Significance = sys.Purpose, sys.LogicSummary, sys.Significance
		}
		b, err := key.Open("decision/"+dec.ID+"/outcome", dec.Outcome)
		if err != nil {
			return nil, err
		}
		v.Outcome = string(b)
		out = append(out, v)
	}
	return out, nil
}

// OptOutOfDecisions records that the signed-in subject refuses decisions made
// solely by automated means by system (PIPL Art. 24; policy §6). From then on
// RecordDecision refuses such decisions about the subject with EFORBIDDEN. Opting
// out again returns the first record. Errors: EINVALID for an undeclared system or
// one that is not solely automated (a person takes part already).
func (rs *RequestService) OptOutOfDecisions(ctx context.Context, system string) (*DecisionOptOut, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	sys, ok := rs.svc.decl.DecisionSystem(system)
	if !ok {
		return nil, Errorf(EINVALID, "decision system %q is not declared", system)
	}
	if !sys.SolelyAutomated {
		return nil, Errorf(EINVALID, "decision system %s does not decide by automated means alone; a person takes part already", sys.Name)
	}
	o := &DecisionOptOut{SubjectID: id, System: sys.Name, At: rs.svc.Now()}
	err = rs.svc.store.Write(ctx, func(tx Tx) error {
		outs, err := tx.DecisionOptOuts(ctx, id)
		if err != nil {
			return err
		}
		for _, x := range outs {
			if x.System == sys.Name {
				*o = x
				return nil
			}
		}
		if err := tx.AddDecisionOptOut(ctx, o); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditDecisionOptOut, id, sys.Purpose, nil, "system="+sys.Name))
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}
