package steward

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Contact shielding (policy §2.2, DESIGN.md P6): a subject uploads their address
// book so that they are never matched with the people in it. Steward keeps only
// keyed hashes of the valid numbers; matching leaves out a pair when either side's
// book holds the other's number. doc/contacts.md explains the choices.

// Names the contact-shielding, location and link features rely on in the declaration.
const (
	ContactsField           = "contacts"          // derived field: the address-book hashes
	ContactShieldingPurpose = "contact_shielding" // the purpose the address book is processed for
	LocationField           = "location"          // sealed location field (P7)
	LinkClicksField         = "link_clicks"       // derived field: clicks on tracked links (P9)
)

// ContactIndexKind is the blind-index kind of the numbers in address books. It is
// the kind of the subjects' own phone index ("phone"), on purpose: matching asks
// whether a book holds another subject's number, and only an equal index answers
// that without opening the other subject's sealed phone field (a data-key unwrap per
// candidate). A second index of every subject's phone under a "contact" kind would
// need writing at registration and a backfill, and would allow exactly the same join
// to anyone holding the database, so it would protect nothing more.
const ContactIndexKind = "phone"

// Limits of the contact-shielding feature.
const (
	// MaxAddressBookBytes is the largest address book accepted: 5 MiB, about 20 000
	// cards without photos (contacts.DefaultMaxBytes).
	MaxAddressBookBytes = 5 << 20
	// MaxAddressBookNumbers is the most phone values one address book may hold.
	MaxAddressBookNumbers = 20000
	// MaxMatchCandidates is the most candidates one match-filter call may carry.
	MaxMatchCandidates = 5000
	// MaxMatchesLimit is the largest page of GET /v1/me/matches.
	MaxMatchesLimit = 100
	// DefaultMatchesLimit is the page size of GET /v1/me/matches without a limit.
	DefaultMatchesLimit = 20
)

// Audit actions of the contact-shielding feature.
const (
	AuditContactsImport = "contacts.import"       // an address book replaced the stored hashes
	AuditContactsDelete = "contacts.delete"       // the stored hashes were deleted
	AuditMatchFilter    = "contacts.match_filter" // a client app filtered match candidates
	AuditMatches        = "contacts.matches"      // a subject asked for match suggestions
)

// ContactBook is what Steward keeps of a subject's address book besides the hashes:
// how many distinct numbers and when the book was imported. It holds no PI.
type ContactBook struct {
	SubjectID  string    `json:"-"`
	Count      int       `json:"count"` // distinct hashes stored
	ImportedAt time.Time `json:"imported_at"`
}

// ContactImportPlan is what the adapter needs to read a subject's address book:
// the subject's own number, whose country is the default region for numbers written
// without a country code, and the limits. Phone is PI: String and LogValue hide it.
type ContactImportPlan struct {
	Phone      string // the subject's registered number in E.164
	MaxBytes   int64
	MaxNumbers int
}

// String describes the plan without the number.
func (p ContactImportPlan) String() string {
	return fmt.Sprintf("ContactImportPlan{max_bytes=%d max_numbers=%d}", p.MaxBytes, p.MaxNumbers)
}

// LogValue logs the limits only.
func (p ContactImportPlan) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("max_bytes", p.MaxBytes), slog.Int("max_numbers", p.MaxNumbers))
}

// AddressBookReport is what the parser found in an upload: counts and warnings that
// name card or row numbers, never content (contacts.Report without the numbers).
type AddressBookReport struct {
	Format       string   `json:"format"`
	Cards        int      `json:"cards"`
	NumbersFound int      `json:"numbers_found"`
	Valid        int      `json:"valid"`
	Invalid      int      `json:"invalid"`
	Incomplete   int      `json:"incomplete"`
	Warnings     []string `json:"warnings"`
}

// ContactImport is the answer to an import: the parser's report, how many distinct
// numbers are now stored (as hashes) and when. No number is echoed.
type ContactImport struct {
	AddressBookReport
	Stored     int       `json:"stored"`
	ImportedAt time.Time `json:"imported_at"`
}

// Candidate is an active subject considered for matching, and whether its phone
// number is in the address book of the subject asking.
type Candidate struct {
	SubjectID string
	InBook    bool
}

// ContactTx is the part of Tx that stores address-book hashes and answers matching.
type ContactTx interface {
	// ReplaceContacts deletes the subject's hashes and stores hashes and book in
	// their place (replace, never append).
	ReplaceContacts(ctx context.Context, book *ContactBook, hashes [][]byte) error
	// ContactBook returns the subject's book summary; ENOTFOUND if none is stored.
	ContactBook(ctx context.Context, subjectID string) (*ContactBook, error)
	// DeleteContacts deletes the subject's hashes and book and returns how many
	// hashes there were (0 and no error when none).
	DeleteContacts(ctx context.Context, subjectID string) (int, error)
	// ContactHashes returns the subject's hashes, in no particular order.
	ContactHashes(ctx context.Context, subjectID string) ([][]byte, error)
	// ContactHolders returns the subjects whose address books hold the phone
	// number of subjectID.
	ContactHolders(ctx context.Context, subjectID string) ([]string, error)
	// ExcludedCandidates returns the ids among ids that matching owner must leave
	// out whatever else holds: true for those that are not active subjects
	// (unknown or cancelled), false for active subjects whose phone number is in
	// owner's address book. Ids not returned are active and not in the book. At
	// most MaxMatchCandidates ids.
	ExcludedCandidates(ctx context.Context, owner string, ids []string) (map[string]bool, error)
	// ActiveCandidates returns up to limit active subjects with id > after, in id
	// order, each with whether its phone number is in owner's address book.
	ActiveCandidates(ctx context.Context, owner, after string, limit int) ([]Candidate, error)
}

// ShieldTx is everything the contact-shielding, location and link features add to
// Tx; store.go embeds it.
type ShieldTx interface {
	ContactTx
	LinkTx
	RetentionTx
}

// EnableShield registers the hooks of the contact-shielding, location and link
// features on s: withdrawal deletes address-book hashes and link clicks whose
// purposes lost their basis, erasure deletes them with the links, and exports list
// them. Call it once, after NewService.
func (s *Service) EnableShield() {
	s.OnWithdraw(s.shieldOnWithdraw)
	s.AddEraser(s.shieldErase)
	s.AddExportExtra(s.shieldExport)
}

// shieldOnWithdraw deletes the derived data a withdrawal leaves without a basis
// (PIPL Art. 47(1)(3)): the address-book hashes when contact_shielding goes, the
// link clicks when the tracking purpose goes.
func (s *Service) shieldOnWithdraw(ctx context.Context, tx Tx, subjectID, purpose string) error {
	states, err := tx.ConsentStates(ctx, subjectID)
	if err != nil {
		return err
	}
	orphans := s.orphanFields(states)
	var entries []*AuditEntry
	if slices.Contains(orphans, ContactsField) {
		n, err := tx.DeleteContacts(ctx, subjectID)
		if err != nil {
			return err
		}
		if n > 0 {
			entries = append(entries, s.audit(ctx, AuditContactsDelete, subjectID, purpose, []string{ContactsField}, fmt.Sprintf("hashes=%d reason=withdrawal", n)))
		}
	}
	if slices.Contains(orphans, LinkClicksField) {
		n, err := tx.DeleteClicks(ctx, subjectID)
		if err != nil {
			return err
		}
		if n > 0 {
			entries = append(entries, s.audit(ctx, AuditLinkClicksDelete, subjectID, purpose, []string{LinkClicksField}, fmt.Sprintf("clicks=%d reason=withdrawal", n)))
		}
	}
	return tx.AppendAudit(ctx, entries...)
}

// shieldErase deletes the subject's address-book hashes, links and clicks.
func (s *Service) shieldErase(ctx context.Context, tx Tx, subjectID string) ([]string, error) {
	var erased []string
	_, berr := tx.ContactBook(ctx, subjectID)
	if berr != nil && ErrorCode(berr) != ENOTFOUND {
		return nil, berr
	}
	n, err := tx.DeleteContacts(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	if n > 0 || berr == nil {
		erased = append(erased, ContactsField)
	}
	clicks, err := tx.DeleteLinks(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	if clicks > 0 {
		erased = append(erased, LinkClicksField)
	}
	return erased, nil
}

// ContactsExport is the address-book part of an export.
type ContactsExport struct {
	Count      int       `json:"count"`
	ImportedAt time.Time `json:"imported_at"`
	Note       string    `json:"note"`
}

// contactsExportNote says why the hashes themselves are not in the export.
const contactsExportNote = "Steward kept only keyed hashes (HMAC-SHA256) of the valid phone numbers in your address book, " +
	"never names or the numbers themselves. A hash cannot be turned back into a number without Steward's key, " +
	"so the hashes are not information you could read; this is how many there are and when they were made."

// shieldExport adds the address-book summary and the tracked links with their
// clicks to an export.
func (s *Service) shieldExport(ctx context.Context, tx Tx, subjectID string, out map[string]any) error {
	book, err := tx.ContactBook(ctx, subjectID)
	switch {
	case err == nil:
		out[ContactsField] = ContactsExport{Count: book.Count, ImportedAt: book.ImportedAt, Note: contactsExportNote}
	case ErrorCode(err) != ENOTFOUND:
		return err
	}
	return s.exportLinks(ctx, tx, subjectID, out)
}

// PrepareContactImport checks that the signed-in subject may upload an address book
// and returns what reading it needs: their registered number (its country is the
// default region) and the limits. Errors: EUNAUTHORIZED for a caller who is not a
// subject; EFORBIDDEN when consent for contact_shielding is not in force (policy
// §2.2: the book is processed only with consent, so it is refused before it is read).
func (s *Service) PrepareContactImport(ctx context.Context) (*ContactImportPlan, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	var sealed []SealedField
	err = s.store.Read(ctx, func(tx Tx) error {
		if err := s.contactBasis(ctx, tx, id); err != nil {
			return err
		}
		sealed, err = tx.GetFields(ctx, id, []string{"phone"})
		return err
	})
	if err != nil {
		return nil, err
	}
	values, err := s.openFields(ctx, id, sealed)
	if err != nil {
		return nil, err
	}
	plan := &ContactImportPlan{MaxBytes: MaxAddressBookBytes, MaxNumbers: MaxAddressBookNumbers}
	json.Unmarshal(values["phone"], &plan.Phone) // "" for an account without a phone: the declaration's region applies
	return plan, nil
}

// contactBasis returns nil when subject id is active and its consent for
// contact_shielding holds; else EGONE, or EFORBIDDEN naming what is missing.
func (s *Service) contactBasis(ctx context.Context, tx Tx, id string) error {
	p, ok := s.decl.Purpose(ContactShieldingPurpose)
	if !ok {
		return Errorf(EFORBIDDEN, "contact shielding is not offered: purpose %s is not declared", ContactShieldingPurpose)
	}
	subj, err := tx.GetSubject(ctx, id)
	if err != nil {
		return err
	}
	if subj.Status != SubjectActive {
		return Errorf(EGONE, "the account was cancelled")
	}
	st, err := tx.ConsentState(ctx, id, p.Name)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return err
	}
	return s.decl.BasisHolds(p, st)
}

// validE164 reports whether n has the shape of an E.164 number: "+", a non-zero
// digit, then 6 to 14 more digits.
func validE164(n string) bool {
	if len(n) < 8 || len(n) > 16 || n[0] != '+' || n[1] < '1' || n[1] > '9' {
		return false
	}
	for i := 2; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// ImportContacts replaces the signed-in subject's address book with numbers, the
// valid numbers of an upload already normalized to E.164 (policy §2.2, P6). Only
// the numbers' blind indexes are stored; the numbers, the upload and report's
// warnings are not. Hashes, book summary and the audit entry (counts only) are
// written in one transaction: a failed import leaves the previous book as it was.
// Errors: EUNAUTHORIZED for a caller who is not a subject; EFORBIDDEN without
// consent for contact_shielding; EINVALID for more than MaxAddressBookNumbers
// numbers, a value that is not E.164 (the message never holds the value), or no
// number at all: an upload with no cards, cards without phone numbers, or only
// numbers that could not be read leaves the stored book untouched, since removing
// it is DeleteMyContacts (DELETE /v1/me/contacts).
func (s *Service) ImportContacts(ctx context.Context, numbers []string, report AddressBookReport) (*ContactImport, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	if len(numbers) > MaxAddressBookNumbers {
		return nil, Errorf(EINVALID, "address book has more than %d phone numbers", MaxAddressBookNumbers)
	}
	seen := make(map[[32]byte]bool, len(numbers))
	hashes := make([][]byte, 0, len(numbers))
	for i, n := range numbers {
		if !validE164(n) {
			return nil, Errorf(EINVALID, "number %d is not in E.164 form", i+1)
		}
		h := s.keys.BlindIndex(ContactIndexKind, n)
		k, ok := indexKey(h)
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		hashes = append(hashes, h)
	}
	// An upload is a replacement: one holding no number would silently wipe the
	// stored book (an empty file, a byte order mark, a wrong export). Removing the
	// book is DeleteMyContacts, asked for explicitly.
	if len(hashes) == 0 {
		if report.NumbersFound > 0 {
			return nil, Errorf(EINVALID, "the upload holds no valid phone numbers; to remove your address book use DELETE /v1/me/contacts")
		}
		return nil, Errorf(EINVALID, "the upload holds no contacts; to remove your address book use DELETE /v1/me/contacts")
	}
	now := s.Now()
	out := &ContactImport{AddressBookReport: report, Stored: len(hashes), ImportedAt: now}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := s.contactBasis(ctx, tx, id); err != nil {
			return err
		}
		if err := tx.ReplaceContacts(ctx, &ContactBook{SubjectID: id, Count: len(hashes), ImportedAt: now}, hashes); err != nil {
			return err
		}
		detail := fmt.Sprintf("format=%s cards=%d numbers_found=%d valid=%d invalid=%d incomplete=%d stored=%d",
			report.Format, report.Cards, report.NumbersFound, report.Valid, report.Invalid, report.Incomplete, len(hashes))
		return tx.AppendAudit(ctx, s.audit(ctx, AuditContactsImport, id, ContactShieldingPurpose, []string{ContactsField}, detail))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MyContacts returns the signed-in subject's address-book summary; ENOTFOUND when
// none is stored.
func (s *Service) MyContacts(ctx context.Context) (*ContactBook, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	var book *ContactBook
	err = s.store.Read(ctx, func(tx Tx) (err error) {
		book, err = tx.ContactBook(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(ENOTFOUND, "no address book is stored")
		}
		return err
	})
	return book, err
}

// DeleteMyContacts deletes the signed-in subject's address-book hashes and returns
// how many there were. Consent is not touched: the subject may upload again.
func (s *Service) DeleteMyContacts(ctx context.Context) (int, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.store.Write(ctx, func(tx Tx) (err error) {
		if n, err = tx.DeleteContacts(ctx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.audit(ctx, AuditContactsDelete, id, ContactShieldingPurpose, []string{ContactsField}, fmt.Sprintf("hashes=%d reason=request", n)))
	})
	return n, err
}

// indexKey returns a blind index as a map key; false if it is not 32 bytes.
func indexKey(b []byte) ([32]byte, bool) {
	if len(b) != 32 {
		return [32]byte{}, false
	}
	return [32]byte(b), true
}

// shield decides which subjects one subject may be matched with. Whether a
// candidate's number is in the subject's own book is answered by the store, with
// one index probe per candidate, so the book's hashes never leave the database.
type shield struct {
	self    string
	holders map[string]struct{} // subjects whose books hold self's number
}

// loadShield reads what deciding for subject id needs besides the candidates.
// ENOTFOUND for an unknown subject, EGONE for a cancelled one.
func loadShield(ctx context.Context, tx Tx, id string) (*shield, error) {
	subj, err := tx.GetSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	if subj.Status != SubjectActive {
		return nil, Errorf(EGONE, "the subject's account was cancelled")
	}
	holders, err := tx.ContactHolders(ctx, id)
	if err != nil {
		return nil, err
	}
	sh := &shield{self: id, holders: make(map[string]struct{}, len(holders))}
	for _, h := range holders {
		sh.holders[h] = struct{}{}
	}
	return sh, nil
}

// allows reports whether self may be matched with candidate c: not self, c's
// number not in self's book, self's number not in c's book (policy §2.2: both
// directions).
func (sh *shield) allows(c Candidate) bool {
	if c.SubjectID == sh.self || c.InBook {
		return false
	}
	_, held := sh.holders[c.SubjectID]
	return !held
}

// Shielded reports whether subjects a and b must not be matched: a's address book
// holds b's number or b's holds a's. For tests and support tools; the caller
// authorizes.
func (s *Service) Shielded(ctx context.Context, a, b string) (bool, error) {
	var out bool
	err := s.store.Read(ctx, func(tx Tx) error {
		sh, err := loadShield(ctx, tx, a)
		if err != nil {
			return err
		}
		ex, err := tx.ExcludedCandidates(ctx, a, []string{b})
		if err != nil {
			return err
		}
		gone, excluded := ex[b]
		if gone {
			return Errorf(ENOTFOUND, "no active subject with that id")
		}
		out = excluded || !sh.allows(Candidate{SubjectID: b})
		return nil
	})
	return out, err
}

// MatchFilter returns the candidates subject id may be matched with, in the order
// given, each once (policy §2.2, P6). A candidate is left out when it is id itself,
// unknown, cancelled, or shielded: its number is in id's address book or id's
// number is in its address book. The caller must be a client app declared for
// contact_shielding; the subject's own consent is not needed, because the filter
// only removes candidates and carries out the shielding that the owners of the
// books asked for (doc/contacts.md, "Legal basis"). One audit entry, counts only.
// Errors: EFORBIDDEN for other callers; EINVALID for more than MaxMatchCandidates
// candidates; ENOTFOUND or EGONE for the subject.
func (s *Service) MatchFilter(ctx context.Context, id string, candidates []string) ([]string, error) {
	a := ActorFrom(ctx)
	if a.Kind != ActorApp || !s.decl.AppMayUse(a.ID, ContactShieldingPurpose) {
		return nil, Errorf(EFORBIDDEN, "only client apps declared for %s may filter match candidates", ContactShieldingPurpose)
	}
	if len(candidates) > MaxMatchCandidates {
		return nil, Errorf(EINVALID, "at most %d candidates per call", MaxMatchCandidates)
	}
	allowed := make([]string, 0, len(candidates))
	err := s.store.Read(ctx, func(tx Tx) error {
		sh, err := loadShield(ctx, tx, id)
		if err != nil {
			return err
		}
		excluded, err := tx.ExcludedCandidates(ctx, id, candidates)
		if err != nil {
			return err
		}
		seen := make(map[string]struct{}, len(candidates))
		for _, c := range candidates {
			if _, dup := seen[c]; dup {
				continue
			}
			seen[c] = struct{}{}
			if _, ex := excluded[c]; !ex && sh.allows(Candidate{SubjectID: c}) {
				allowed = append(allowed, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.store.Write(ctx, func(tx Tx) error {
		return tx.AppendAudit(ctx, s.audit(ctx, AuditMatchFilter, id, ContactShieldingPurpose, []string{ContactsField},
			fmt.Sprintf("candidates=%d allowed=%d", len(candidates), len(allowed))))
	}); err != nil {
		return nil, err
	}
	return allowed, nil
}

// MatchPage is one page of match suggestions.
type MatchPage struct {
	Matches []string `json:"matches"`              // subject ids, in id order
	Next    string   `json:"next_after,omitempty"` // pass as after for the next page; "" at the end
}

// Matches suggests subjects the signed-in subject may be matched with: discoverable
// subjects (every active subject but the caller), in id order after after, leaving
// out shielded pairs both ways. limit is 1 to MaxMatchesLimit (EINVALID otherwise).
func (s *Service) Matches(ctx context.Context, after string, limit int) (*MatchPage, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	if limit < 1 || limit > MaxMatchesLimit {
		return nil, Errorf(EINVALID, "limit must be between 1 and %d", MaxMatchesLimit)
	}
	page := &MatchPage{Matches: []string{}}
	err = s.store.Read(ctx, func(tx Tx) error {
		sh, err := loadShield(ctx, tx, id)
		if err != nil {
			return err
		}
		const batch = 500
		cursor := after
		for {
			rows, err := tx.ActiveCandidates(ctx, id, cursor, batch)
			if err != nil {
				return err
			}
			for _, r := range rows {
				cursor = r.SubjectID
				if !sh.allows(r) {
					continue
				}
				page.Matches = append(page.Matches, r.SubjectID)
				if len(page.Matches) == limit {
					page.Next = r.SubjectID
					return nil
				}
			}
			if len(rows) < batch {
				return nil
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if err := s.store.Write(ctx, func(tx Tx) error {
		return tx.AppendAudit(ctx, s.audit(ctx, AuditMatches, id, ContactShieldingPurpose, []string{ContactsField}, fmt.Sprintf("returned=%d", len(page.Matches))))
	}); err != nil {
		return nil, err
	}
	return page, nil
}
