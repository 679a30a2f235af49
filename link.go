package steward

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Tracked links and unsubscribe (policy §3, DESIGN.md P9): client apps register a
// link to one of the declaration's allowed hosts for one subject and put the short
// link in an SMS, a notification or an e-mail. Following it redirects; the click is
// recorded only while the subject's consent to the tracking purpose holds. Every
// link comes with an unsubscribe token: posting it withdraws the marketing purpose.

// Limits and formats of links.
const (
	MaxLinkDestination     = 2048   // bytes of a destination URL
	MaxCampaign            = 64     // bytes of a campaign label
	UnsubscribeTokenPrefix = "stu_" // tells unsubscribe tokens apart from bearer tokens
	linkIDBytes            = 12     // 96 random bits: short, and not guessable
)

// Audit actions of links.
const (
	AuditLinkCreate       = "link.create"        // a client app registered a tracked link
	AuditLinkClick        = "link.click"         // a click was recorded, with consent
	AuditLinkClicksDelete = "link.clicks_delete" // clicks deleted when the tracking purpose lost its basis
)

// LinkRequest is what a client app sends to register a tracked link.
type LinkRequest struct {
	SubjectID   string `json:"subject_id"`
	Destination string `json:"destination"`        // https URL on an allowed host
	Campaign    string `json:"campaign,omitempty"` // optional label: letters, digits, '.', '_', '-'
}

// LinkRecord is a tracked link as stored. The destination is sealed under the
// subject's data key (it may carry the subject's data in its query), so erasure
// makes it unreadable in every copy; the unsubscribe token is kept as a keyed hash.
type LinkRecord struct {
	ID              string
	SubjectID       string
	AppID           string
	Campaign        string
	Destination     []byte // sealed
	UnsubscribeHash []byte
	CreatedAt       time.Time
}

// LinkClick is one recorded click. It says which link and when, nothing about the
// device or network it came from.
type LinkClick struct {
	ID        string
	LinkID    string
	SubjectID string
	At        time.Time
}

// LinkTx is the part of Tx that stores tracked links and clicks.
type LinkTx interface {
	CreateLink(ctx context.Context, l *LinkRecord) error
	// GetLink returns the link with id; ENOTFOUND if none.
	GetLink(ctx context.Context, id string) (*LinkRecord, error)
	// LinkByUnsubscribeHash returns the link whose unsubscribe token hashes to hash; ENOTFOUND if none.
	LinkByUnsubscribeHash(ctx context.Context, hash []byte) (*LinkRecord, error)
	// SubjectLinks returns the subject's links, oldest first.
	SubjectLinks(ctx context.Context, subjectID string) ([]LinkRecord, error)
	AddClick(ctx context.Context, c *LinkClick) error
	// SubjectClicks returns the subject's clicks, oldest first.
	SubjectClicks(ctx context.Context, subjectID string) ([]LinkClick, error)
	// DeleteClicks deletes the subject's clicks and returns how many there were.
	DeleteClicks(ctx context.Context, subjectID string) (int, error)
	// DeleteLinks deletes the subject's links and their clicks and returns how many clicks there were.
	DeleteLinks(ctx context.Context, subjectID string) (clicks int, err error)
}

// NewLink is a registered link with the unsubscribe token, which is shown once.
type NewLink struct {
	ID               string    `json:"id"`
	SubjectID        string    `json:"subject_id"`
	Campaign         string    `json:"campaign,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UnsubscribeToken string    `json:"-"`
}

// CheckLinkDestination returns dest in canonical form (scheme and host in lower
// case) if it is an https URL whose host is exactly one of the declaration's
// links.allowed_hosts (policy §3: links point to the controller's own sites), and
// EINVALID otherwise. The check is on the bytes before any URL parser sees them,
// so that parsers cannot disagree about the host: only printable ASCII, no
// backslash, "https://" then a host of letters, digits, dots and hyphens only (no
// user name: "https://allowed@evil"; no port, percent-encoding or IP literal),
// ending at "/", "?", "#" or the end. Internationalized host names are refused,
// punycode ones must be declared as such, so look-alike letters cannot pass.
func (d *Declaration) CheckLinkDestination(dest string) (string, error) {
	bad := func(msg string) error { return Errorf(EINVALID, "destination %s", msg) }
	switch {
	case dest == "":
		return "", bad("is required")
	case len(dest) > MaxLinkDestination:
		return "", bad(fmt.Sprintf("is longer than %d bytes", MaxLinkDestination))
	}
	for i := 0; i < len(dest); i++ {
		if c := dest[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "", bad("must be printable ASCII without spaces or backslashes; percent-encode anything else")
		}
	}
	const scheme = "https://"
	if len(dest) < len(scheme) || !strings.EqualFold(dest[:len(scheme)], scheme) {
		return "", bad("must be an absolute https:// URL")
	}
	rest := dest[len(scheme):]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if host == "" {
		return "", bad("has no host")
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return "", bad("host must be a plain host name: no user name, port, percent-encoding or IP literal")
		}
	}
	host = strings.ToLower(host)
	if !slices.ContainsFunc(d.Links.AllowedHosts, func(h string) bool { return strings.ToLower(h) == host }) {
		return "", bad("host is not one of the declaration's links.allowed_hosts")
	}
	out := scheme + host + rest[end:]
	// Belt and braces: the standard parser must see the same host.
	u, err := url.Parse(out)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Host != host || u.Opaque != "" {
		return "", bad("is not a well-formed https URL")
	}
	return out, nil
}

// validCampaign reports whether c is a campaign label: 1 to MaxCampaign bytes of
// letters, digits, '.', '_' and '-'. The label appears in audit details, so it
// must not be able to carry free text.
func validCampaign(c string) bool {
	if c == "" || len(c) > MaxCampaign {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// linkField is the associated-data label a link's destination is sealed under, so
// a sealed destination opens only for its own link.
func linkField(id string) string { return "link_destination:" + id }

// CreateLink registers a tracked link for a subject and returns it with a fresh
// unsubscribe token (policy §3). The caller must be a client app declared for the
// declaration's tracking or marketing purpose. Creating a link records no click
// and needs no consent: what the link may record is decided when it is followed.
// Errors: EFORBIDDEN for other callers; EINVALID for a destination CheckLinkDestination
// refuses or a bad campaign label; ENOTFOUND for an unknown subject, EGONE for a
// cancelled one.
func (s *Service) CreateLink(ctx context.Context, in LinkRequest) (*NewLink, error) {
	a := ActorFrom(ctx)
	lp := s.decl.Links
	if a.Kind != ActorApp || !(s.decl.AppMayUse(a.ID, lp.TrackingPurpose) || s.decl.AppMayUse(a.ID, lp.MarketingPurpose)) {
		return nil, Errorf(EFORBIDDEN, "only client apps declared for %s or %s may create tracked links", lp.TrackingPurpose, lp.MarketingPurpose)
	}
	dest, err := s.decl.CheckLinkDestination(in.Destination)
	if err != nil {
		return nil, err
	}
	if in.Campaign != "" && !validCampaign(in.Campaign) {
		return nil, Errorf(EINVALID, "campaign must be 1 to %d letters, digits, '.', '_' or '-'", MaxCampaign)
	}
	if in.SubjectID == "" {
		return nil, Errorf(EINVALID, "subject_id is required")
	}
	if err := s.store.Read(ctx, func(tx Tx) error {
		subj, err := tx.GetSubject(ctx, in.SubjectID)
		if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	key, err := s.keys.SubjectKey(ctx, in.SubjectID)
	if err != nil {
		return nil, err
	}
	out := &NewLink{ID: randomString(linkIDBytes), SubjectID: in.SubjectID, Campaign: in.Campaign, CreatedAt: s.Now(),
		UnsubscribeToken: UnsubscribeTokenPrefix + randomString(32)}
	sealed, err := key.Seal(linkField(out.ID), []byte(dest))
	if err != nil {
		return nil, err
	}
	rec := &LinkRecord{ID: out.ID, SubjectID: in.SubjectID, AppID: a.ID, Campaign: in.Campaign, Destination: sealed,
		UnsubscribeHash: s.keys.HashSecret("unsubscribe", out.UnsubscribeToken), CreatedAt: out.CreatedAt}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.CreateLink(ctx, rec); err != nil {
			return err
		}
		detail := "link=" + rec.ID
		if rec.Campaign != "" {
			detail += " campaign=" + rec.Campaign
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditLinkCreate, in.SubjectID, "", nil, detail))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FollowLink returns the destination of link id for a redirect. When record is
// true (a GET, not a HEAD) and the subject's consent to the declaration's tracking
// purpose holds, the click is recorded with its audit entry; without consent
// nothing at all is written (policy §3: tracking only with consent). ENOTFOUND for
// an unknown link or one whose subject is gone.
func (s *Service) FollowLink(ctx context.Context, id string, record bool) (string, error) {
	notFound := Errorf(ENOTFOUND, "no such link")
	if id == "" || len(id) > 64 {
		return "", notFound
	}
	var rec *LinkRecord
	var tracked bool
	purpose, hasPurpose := s.decl.Purpose(s.decl.Links.TrackingPurpose)
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if rec, err = tx.GetLink(ctx, id); err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return notFound
			}
			return err
		}
		subj, err := tx.GetSubject(ctx, rec.SubjectID)
		if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return notFound
		}
		if !record || !hasPurpose {
			return nil
		}
		st, err := tx.ConsentState(ctx, rec.SubjectID, purpose.Name)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		tracked = s.decl.BasisHolds(purpose, st) == nil
		return nil
	})
	if err != nil {
		return "", err
	}
	key, err := s.keys.SubjectKey(ctx, rec.SubjectID)
	if err != nil {
		if c := ErrorCode(err); c == ENOTFOUND || c == EGONE {
			return "", notFound
		}
		return "", err
	}
	dest, err := key.Open(linkField(rec.ID), rec.Destination)
	if err != nil {
		return "", err
	}
	if tracked {
		err := s.store.Write(ctx, func(tx Tx) error {
			// Consent may have been withdrawn since the read: decide again here.
			st, err := tx.ConsentState(ctx, rec.SubjectID, purpose.Name)
			if err != nil && ErrorCode(err) != ENOTFOUND {
				return err
			}
			if s.decl.BasisHolds(purpose, st) != nil {
				return nil
			}
			c := &LinkClick{ID: NewID(), LinkID: rec.ID, SubjectID: rec.SubjectID, At: s.Now()}
			if err := tx.AddClick(ctx, c); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, s.audit(ctx, AuditLinkClick, rec.SubjectID, purpose.Name, []string{LinkClicksField}, "link="+rec.ID))
		})
		if err != nil {
			// The person still gets where they were going; the click is lost.
			s.log.Error("record link click", "link", rec.ID, "err", err)
		}
	}
	return string(dest), nil
}

// unsubscribeLink returns the live link whose unsubscribe token is token, or ENOTFOUND.
func (s *Service) unsubscribeLink(ctx context.Context, tx Tx, token string) (*LinkRecord, error) {
	notFound := Errorf(ENOTFOUND, "this unsubscribe link is not valid or no longer exists")
	if !strings.HasPrefix(token, UnsubscribeTokenPrefix) || len(token) > 128 {
		return nil, notFound
	}
	rec, err := tx.LinkByUnsubscribeHash(ctx, s.keys.HashSecret("unsubscribe", token))
	if ErrorCode(err) == ENOTFOUND {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	subj, err := tx.GetSubject(ctx, rec.SubjectID)
	if err != nil {
		return nil, err
	}
	if subj.Status != SubjectActive {
		return nil, notFound
	}
	return rec, nil
}

// CheckUnsubscribe reports whether token is a live unsubscribe token: nil or
// ENOTFOUND. It changes nothing, so link scanners that fetch the page unsubscribe
// nobody.
func (s *Service) CheckUnsubscribe(ctx context.Context, token string) error {
	return s.store.Read(ctx, func(tx Tx) error {
		_, err := s.unsubscribeLink(ctx, tx, token)
		return err
	})
}

// Unsubscribed is the outcome of an unsubscribe.
type Unsubscribed struct {
	Purpose string `json:"purpose"`
	// Already is true when consent to the purpose was not in force: nothing changed.
	Already bool            `json:"already"`
	Receipt *ConsentReceipt `json:"receipt,omitempty"`
}

// Unsubscribe withdraws the marketing purpose (links.marketing_purpose) of the
// subject the token belongs to, with method unsubscribe_link (policy §3: unsubscribe
// at any time; RFC 8058 one-click). The withdrawal is the subject's, so it holds for
// every channel and app that uses the purpose. Unsubscribing twice, or without
// consent in force, succeeds with Already set. ENOTFOUND for an unknown token.
func (s *Service) Unsubscribe(ctx context.Context, token string) (*Unsubscribed, error) {
	var rec *LinkRecord
	if err := s.store.Read(ctx, func(tx Tx) (err error) { rec, err = s.unsubscribeLink(ctx, tx, token); return err }); err != nil {
		return nil, err
	}
	purpose := s.decl.Links.MarketingPurpose
	// Whoever holds the token acts as the subject it was issued for.
	sctx := WithActor(ctx, Actor{Kind: ActorSubject, ID: rec.SubjectID, Address: ActorFrom(ctx).Address})
	rc, err := s.withdraw(sctx, rec.SubjectID, purpose, MethodUnsubscribe)
	if ErrorCode(err) == ECONFLICT {
		return &Unsubscribed{Purpose: purpose, Already: true}, nil
	} else if err != nil {
		return nil, err
	}
	return &Unsubscribed{Purpose: purpose, Receipt: rc}, nil
}

// ExportedLink is one tracked link in an export, with its clicks.
type ExportedLink struct {
	ID          string      `json:"id"`
	Campaign    string      `json:"campaign,omitempty"`
	Destination string      `json:"destination"`
	CreatedAt   time.Time   `json:"created_at"`
	Clicks      []time.Time `json:"clicks"`
}

// exportLinks adds the subject's links and recorded clicks to an export.
func (s *Service) exportLinks(ctx context.Context, tx Tx, subjectID string, out map[string]any) error {
	links, err := tx.SubjectLinks(ctx, subjectID)
	if err != nil || len(links) == 0 {
		return err
	}
	clicks, err := tx.SubjectClicks(ctx, subjectID)
	if err != nil {
		return err
	}
	key, err := s.keys.SubjectKey(ctx, subjectID)
	if err != nil {
		return err
	}
	byLink := map[string][]time.Time{}
	for _, c := range clicks {
		byLink[c.LinkID] = append(byLink[c.LinkID], c.At)
	}
	list := make([]ExportedLink, 0, len(links))
	for _, l := range links {
		dest, err := key.Open(linkField(l.ID), l.Destination)
		if err != nil {
			return err
		}
		el := ExportedLink{ID: l.ID, Campaign: l.Campaign, Destination: string(dest), CreatedAt: l.CreatedAt, Clicks: byLink[l.ID]}
		if el.Clicks == nil {
			el.Clicks = []time.Time{}
		}
		list = append(list, el)
	}
	out["links"] = list
	return nil
}
