package steward

import (
	"context"
	"encoding/json"
	"time"
)

// This file is the contract between the rights-request life cycle (requests_service.go)
// and the features that carry out a request's type-specific work, such as deletion
// with legal holds, certificates and recipient notices.
//
// How a request is fulfilled:
//
//  1. Staff (or a job) calls RequestService.Fulfil on a request whose identity is
//     verified. The request moves to in_progress and is claimed, in one
//     transaction, so two concurrent Fulfil calls never both run the work: the
//     second gets ECONFLICT.
//  2. The Fulfiller registered for the request's type (SetFulfiller) runs, outside
//     any store transaction: Fulfil(ctx, r). It may open its own transactions
//     and create FulfilmentSteps it stores itself (recipient notices…).
//  3. If Fulfil fails, the claim is released, an event records the failure and the
//     request stays in_progress; Fulfil may be called again, so a Fulfiller must be
//     safe to run again for the same request id after an error (idempotent per
//     request id).
//  4. If Fulfil succeeds, its result is stored and PendingSteps is asked. With no
//     pending step the request becomes fulfilled at once. Otherwise it stays
//     in_progress ("fulfilling"), and whoever finishes a step (an acknowledgement
//     handler, a job) calls RequestCompleter.CompleteIfDone(ctx, requestID), which
//     fulfils the request once PendingSteps is empty. Fulfil is never run twice for
//     a request after it succeeded once.
//
// Wiring (cmd/steward/app.go): rs, err := steward.NewRequestService(svc) builds
// the life cycle with Steward's default fulfiller for every type; a feature
// replaces one with rs.SetFulfiller(steward.RequestDeletion, f), or wraps
// rs.DefaultFulfiller(t) to add steps of its own, and keeps rs as its
// RequestCompleter.
//
// A failed step does not complete the request: only "done" steps count as finished.
// Staff see the steps of a request in the queue.

// Fulfilment step states.
const (
	StepPending = "pending"
	StepDone    = "done"
	StepFailed  = "failed"
)

// FulfilmentStep is work that must finish before a request may be fulfilled, such
// as notifying a recipient that the subject's PI was deleted (Kind
// "recipient_notice", Target the recipient id). Steps hold no personal
// information. The Fulfiller that created a step stores it and reports it through
// PendingSteps.
type FulfilmentStep struct {
	ID        string    `json:"id"`
	RequestID string    `json:"request_id"`
	Kind      string    `json:"kind"`
	Target    string    `json:"target,omitempty"`
	State     string    `json:"state"` // StepPending, StepDone or StepFailed
	DueAt     time.Time `json:"due_at,omitzero"`
	DoneAt    time.Time `json:"done_at,omitzero"`
}

// Fulfiller carries out the type-specific work when a request is fulfilled.
type Fulfiller interface {
	// Fulfil runs when staff (or auto-fulfilment) fulfils r; it may create pending
	// steps. r is a copy in state in_progress with its identity verified; the
	// acting staff member or system is ActorFrom(ctx). The result is stored with
	// the request in plaintext, shown to staff and to the subject and kept after
	// the subject's keys are shredded: it must hold no personal information (a
	// deletion certificate, counts, ids). A Fulfiller whose answer is PI (an
	// access export) keeps it sealed itself and returns only a reference. It must
	// be safe to call again for the same request after it returned an error.
	Fulfil(ctx context.Context, r *Request) (result json.RawMessage, err error)
	// PendingSteps lists the steps of the request not yet done (state pending or
	// failed); fulfilment completes only when none remain. A Fulfiller that
	// creates no steps returns nil.
	PendingSteps(ctx context.Context, requestID string) ([]FulfilmentStep, error)
}

// RequestCompleter completes requests waiting on fulfilment steps. The request
// service implements it; a feature that finishes a step calls CompleteIfDone.
type RequestCompleter interface {
	// CompleteIfDone moves the request to fulfilled if its Fulfil has succeeded
	// and PendingSteps reports nothing left, and returns the request. It is a
	// no-op returning the request when steps remain or the request is already
	// fulfilled, and ECONFLICT if the request was never fulfilled or is closed
	// otherwise (refused, withdrawn, merged).
	CompleteIfDone(ctx context.Context, requestID string) (*Request, error)
}

// FulfillerFunc adapts a function to a Fulfiller that creates no steps.
type FulfillerFunc func(ctx context.Context, r *Request) (json.RawMessage, error)

// Fulfil calls f.
func (f FulfillerFunc) Fulfil(ctx context.Context, r *Request) (json.RawMessage, error) {
	return f(ctx, r)
}

// PendingSteps returns nil: a FulfillerFunc creates no steps.
func (FulfillerFunc) PendingSteps(context.Context, string) ([]FulfilmentStep, error) {
	return nil, nil
}
