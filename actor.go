package steward

import (
	"context"
	"slices"
)

// Actor kinds.
const (
	ActorSubject = "subject" // the person the PI is about, signed in
	ActorStaff   = "staff"   // a member of the controller's staff
	ActorApp     = "app"     // a client app (an app backend) with an API token
	ActorSystem  = "system"  // Steward itself: jobs, the CLI
	ActorAnon    = "anonymous"
)

// Staff roles. The permission table is in doc/permissions.md.
const (
	RoleSupport        = "support"
	RolePrivacyOfficer = "privacy_officer"
	RoleAuditor        = "auditor"
	RoleAdmin          = "admin"
)

// StaffRoles returns the staff roles in the order doc/permissions.md lists them.
func StaffRoles() []string {
	return []string{RoleSupport, RolePrivacyOfficer, RoleAuditor, RoleAdmin}
}

// ValidRole reports whether role is one of StaffRoles.
func ValidRole(role string) bool { return slices.Contains(StaffRoles(), role) }

// Actor is who performs an operation. It travels in the context; services authorize
// from it and the audit trail records it. ID is a subject id, a staff token's name,
// a client app id or a job name; it is never personal information.
type Actor struct {
	Kind  string   `json:"kind"`
	ID    string   `json:"id"`
	Roles []string `json:"roles,omitempty"`
	// Address is a keyed hash of the client's network address, for rate limits.
	Address string `json:"-"`
}

// HasRole reports whether the actor is staff holding role (admin holds every role).
func (a Actor) HasRole(role string) bool {
	if a.Kind != ActorStaff {
		return false
	}
	for _, r := range a.Roles {
		if r == role || r == RoleAdmin {
			return true
		}
	}
	return false
}

// String returns "kind:id".
func (a Actor) String() string { return a.Kind + ":" + a.ID }

type actorKey struct{}

// WithActor returns a context carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx, or an anonymous actor.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Kind: ActorAnon, ID: "-"}
}

// SystemContext returns ctx acting as the system job called name.
func SystemContext(ctx context.Context, name string) context.Context {
	return WithActor(ctx, Actor{Kind: ActorSystem, ID: name})
}
