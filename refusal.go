package steward

import (
	"fmt"
	"log/slog"
	"strings"
)

// RefusalGround is the stable code of a ground on which a rights request may be
// refused, such as "national_security". A refusal must name one; free-text-only
// refusals are impossible (PIPL Art. 50: a refusal must give its reasons; GB/T
// 35273-2020 §8.7: tell the subject why and how to complain).
type RefusalGround string

// The policy's grounds on which a request cannot be answered (policy §6, "related
// restrictions"; they follow GB/T 35273-2020 §8.7).
const (
	// RefusalNationalSecurity: the request touches national security or defence.
	RefusalNationalSecurity RefusalGround = "national_security"
	// RefusalPublicInterest: the request touches public security, public health or a
	// major public interest.
	RefusalPublicInterest RefusalGround = "public_interest"
	// RefusalCriminalProceedings: the request touches a criminal investigation,
	// prosecution, trial or the enforcement of a judgment.
	RefusalCriminalProceedings RefusalGround = "criminal_proceedings"
	// RefusalMaliceOrAbuse: there is sufficient evidence that the subject acts in bad
	// faith or abuses the right.
	RefusalMaliceOrAbuse RefusalGround = "malice_or_abuse"
	// RefusalSeriousHarm: answering would seriously harm the legitimate rights and
	// interests of the subject or of other people or organizations.
	RefusalSeriousHarm RefusalGround = "serious_harm"
	// RefusalCommercialSecrets: answering would reveal commercial secrets.
	RefusalCommercialSecrets RefusalGround = "commercial_secrets"
)

// The policy's grounds for declining unreasonable requests (policy §6, on fees and
// refusals).
const (
	// RefusalUnreasonablyRepetitive: the request repeats earlier ones without good
	// reason; AssessRepeat gives this ground when a RepeatPolicy says "refuse".
	RefusalUnreasonablyRepetitive RefusalGround = "unreasonably_repetitive"
	// RefusalExcessiveTechnicalMeans: answering would need disproportionate technical
	// work, such as building a new system or fundamentally changing current practice.
	RefusalExcessiveTechnicalMeans RefusalGround = "excessive_technical_means"
	// RefusalRiskToOthers: answering would put other people's legitimate rights and
	// interests at risk.
	RefusalRiskToOthers RefusalGround = "risk_to_others"
	// RefusalHighlyImpractical: answering is highly impractical.
	RefusalHighlyImpractical RefusalGround = "highly_impractical"
)

// Grounds that GB/T 35273-2020 §8.7 allows but the seed policy does not state. They
// are not in DefaultRefusalGrounds; a declaration that states them enables them
// through NewRefusalGrounds with StandardRefusalGrounds.
const (
	// RefusalLegalObligation: the request concerns processing directly tied to the
	// controller's duties under laws and regulations.
	RefusalLegalObligation RefusalGround = "legal_obligation"
	// RefusalVitalInterests: the processing protects the life, property or other
	// major legitimate interests of the subject or another person where consent is
	// hard to obtain.
	RefusalVitalInterests RefusalGround = "vital_interests"
)

// RefusalClass says which kind of ground a RefusalGround is.
type RefusalClass string

// Refusal classes.
const (
	// RefusalClassRestriction: a case in which the request cannot be answered as the
	// law requires (policy §6, related restrictions; GB/T 35273-2020 §8.7).
	RefusalClassRestriction RefusalClass = "restriction"
	// RefusalClassUnreasonable: a request that is unreasonable and may be declined
	// (policy §6).
	RefusalClassUnreasonable RefusalClass = "unreasonable"
)

// RefusalGroundInfo describes one refusal ground: its stable code, a short title
// shown to staff and subjects, where it comes from ("policy §6",
// "GB/T 35273-2020 §8.7") and its class.
type RefusalGroundInfo struct {
	Code   RefusalGround `json:"code"`
	Title  string        `json:"title"`
	Source string        `json:"source"`
	Class  RefusalClass  `json:"class"`
}

// defaultRefusalGrounds returns the seed policy's ten grounds in the policy's order.
func defaultRefusalGrounds() []RefusalGroundInfo {
	const restrictions = "policy §6 (related restrictions); GB/T 35273-2020 §8.7"
	const unreasonable = "policy §6 (responding to requests)"
	return []RefusalGroundInfo{
		{RefusalNationalSecurity, "National security or national defence", restrictions, RefusalClassRestriction},
		{RefusalPublicInterest, "Public security, public health or a major public interest", restrictions, RefusalClassRestriction},
		{RefusalCriminalProceedings, "Criminal investigation, prosecution, trial or enforcement of a judgment", restrictions, RefusalClassRestriction},
		{RefusalMaliceOrAbuse, "Sufficient evidence of bad faith or abuse of the right", restrictions, RefusalClassRestriction},
		{RefusalSeriousHarm, "Serious harm to the legitimate rights of the subject or of others", restrictions, RefusalClassRestriction},
		{RefusalCommercialSecrets, "Commercial secrets", restrictions, RefusalClassRestriction},
		{RefusalUnreasonablyRepetitive, "Repeated without good reason", unreasonable, RefusalClassUnreasonable},
		{RefusalExcessiveTechnicalMeans, "Would need disproportionate technical work", unreasonable, RefusalClassUnreasonable},
		{RefusalRiskToOthers, "Would put others' legitimate rights at risk", unreasonable, RefusalClassUnreasonable},
		{RefusalHighlyImpractical, "Highly impractical", unreasonable, RefusalClassUnreasonable},
	}
}

// StandardRefusalGrounds returns the grounds GB/T 35273-2020 §8.7 lists beyond the
// seed policy's, ready to pass to NewRefusalGrounds when a declaration states them.
func StandardRefusalGrounds() []RefusalGroundInfo {
	const src = "GB/T 35273-2020 §8.7"
	return []RefusalGroundInfo{
		{RefusalLegalObligation, "Directly related to the controller's obligations under laws and regulations", src, RefusalClassRestriction},
		{RefusalVitalInterests, "Protects the life or property of the subject or others when consent is hard to obtain", src, RefusalClassRestriction},
	}
}

// RefusalGrounds is the registry of grounds a deployment may refuse requests on: the
// policy's defaults plus the extras its declaration configures. The zero value has
// no grounds and so refuses every Refusal; build one with DefaultRefusalGrounds or
// NewRefusalGrounds. It is immutable and safe for concurrent use.
type RefusalGrounds struct {
	list   []RefusalGroundInfo
	byCode map[RefusalGround]int
}

// DefaultRefusalGrounds returns the registry of the seed policy's ten grounds
// (policy §6).
func DefaultRefusalGrounds() RefusalGrounds {
	g, err := NewRefusalGrounds()
	if err != nil {
		panic("steward: default refusal grounds are invalid: " + err.Error())
	}
	return g
}

// NewRefusalGrounds returns the policy's default grounds followed by extra. Each
// extra needs a code of lower-case letters, digits and underscores, a title and a
// source; a code already present is EINVALID, as is an unknown class (an empty
// class is taken as RefusalClassRestriction).
func NewRefusalGrounds(extra ...RefusalGroundInfo) (RefusalGrounds, error) {
	all := append(defaultRefusalGrounds(), extra...)
	g := RefusalGrounds{list: make([]RefusalGroundInfo, 0, len(all)), byCode: make(map[RefusalGround]int, len(all))}
	for _, info := range all {
		if !validGroundCode(string(info.Code)) {
			return RefusalGrounds{}, Errorf(EINVALID, "Refusal ground code %q must be lower-case letters, digits and underscores.", info.Code)
		}
		if strings.TrimSpace(info.Title) == "" || strings.TrimSpace(info.Source) == "" {
			return RefusalGrounds{}, Errorf(EINVALID, "Refusal ground %s needs a title and a legal source.", info.Code)
		}
		switch info.Class {
		case "":
			info.Class = RefusalClassRestriction
		case RefusalClassRestriction, RefusalClassUnreasonable:
		default:
			return RefusalGrounds{}, Errorf(EINVALID, "Refusal ground %s has unknown class %q.", info.Code, info.Class)
		}
		if _, dup := g.byCode[info.Code]; dup {
			return RefusalGrounds{}, Errorf(EINVALID, "Refusal ground %s is defined twice.", info.Code)
		}
		g.byCode[info.Code] = len(g.list)
		g.list = append(g.list, info)
	}
	return g, nil
}

func validGroundCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// All returns every ground in the registry: the defaults in policy order, then the
// extras in the order configured.
func (g RefusalGrounds) All() []RefusalGroundInfo {
	return append([]RefusalGroundInfo(nil), g.list...)
}

// Lookup returns the ground with the given code and whether it is in the registry.
func (g RefusalGrounds) Lookup(code RefusalGround) (RefusalGroundInfo, bool) {
	i, ok := g.byCode[code]
	if !ok {
		return RefusalGroundInfo{}, false
	}
	return g.list[i], true
}

// Refusal is the decision not to answer a rights request: the ground it rests on,
// an explanation written for the subject, and the channel the subject may complain
// through (policy §6 and §10; PIPL Art. 50; GB/T 35273-2020 §8.7). The subject sees
// all three. GroundTitle and GroundSource are the ground's title and legal source
// from the deployment's registry, filled in when a request is shown (not stored):
// doc/requests.md promises the subject the ground's code and title.
type Refusal struct {
	Ground           RefusalGround `json:"ground"`
	GroundTitle      string        `json:"ground_title,omitempty"`
	GroundSource     string        `json:"ground_source,omitempty"`
	Explanation      string        `json:"explanation"`
	ComplaintChannel string        `json:"complaint_channel"`
}

// Validate returns EINVALID when ref names a ground not in the registry, or has no
// explanation or no complaint channel: a refusal must state its reason and tell the
// subject where to complain (PIPL Art. 50, GB/T 35273-2020 §8.7, policy §10).
func (g RefusalGrounds) Validate(ref Refusal) error {
	if ref.Ground == "" {
		return Errorf(EINVALID, "A refusal must name one of the refusal grounds.")
	}
	if _, ok := g.Lookup(ref.Ground); !ok {
		return Errorf(EINVALID, "%q is not a refusal ground of this deployment.", ref.Ground)
	}
	if strings.TrimSpace(ref.Explanation) == "" {
		return Errorf(EINVALID, "A refusal must explain to the subject why the ground applies.")
	}
	if strings.TrimSpace(ref.ComplaintChannel) == "" {
		return Errorf(EINVALID, "A refusal must tell the subject where to complain.")
	}
	return nil
}

// String returns the ground and the length of the explanation, never its text,
// which may quote the subject.
func (ref Refusal) String() string {
	return fmt.Sprintf("refusal(%s, %d-byte explanation)", ref.Ground, len(ref.Explanation))
}

// LogValue logs the ground only; the explanation may quote the subject.
func (ref Refusal) LogValue() slog.Value {
	return slog.GroupValue(slog.String("ground", string(ref.Ground)))
}
