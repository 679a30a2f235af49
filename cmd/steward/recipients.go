package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/outbox"
)

// recipientFeatures are the recipient register with its notices, legal holds and
// the erasure fulfiller that issues deletion certificates, wired onto one service.
type recipientFeatures struct {
	recipients *steward.Recipients
	holds      *steward.Holds
	erasure    *steward.Erasure
}

// wireRecipients builds the features on a.svc, signing certificates with kr, and
// adds the webhook sink to a's outbox.
func wireRecipients(a *app, kr *keyring.Keyring) *recipientFeatures {
	f := &recipientFeatures{recipients: steward.NewRecipients(a.svc, steward.RecipientsConfig{NoticeDeadline: a.cfg.NoticeDeadline})}
	f.holds = steward.NewHolds(a.svc)
	f.erasure = steward.NewErasure(a.svc, steward.ErasureConfig{Signer: kr, KeyBackupRetention: a.cfg.KeyBackupRetention,
		Recipients: f.recipients, Holds: f.holds})
	a.outbox.Sinks["webhook"] = webhookSink(f.recipients)
	return f
}

// webhookSink is the outbox sink for recipient notices: each attempt is signed
// afresh with the recipient's secret.
func webhookSink(r *steward.Recipients) *outbox.WebhookSink {
	return &outbox.WebhookSink{Sign: func(ctx context.Context, m outbox.Message, at time.Time) (map[string]string, error) {
		sig, err := r.WebhookSignature(ctx, m.Headers[steward.IdempotencyKeyHeader], []byte(m.Body), at)
		if err != nil {
			return nil, err
		}
		return map[string]string{steward.SignatureHeader: sig}, nil
	}}
}

// attach makes rs fulfil deletion and cancellation requests by erasure with a
// certificate, makes correction and withdrawal requests wait for the recipients'
// acknowledgements, and lets acknowledgements complete requests.
func (f *recipientFeatures) attach(rs *steward.RequestService) {
	rs.SetFulfiller(steward.RequestDeletion, f.erasure)
	rs.SetFulfiller(steward.RequestCancellation, f.erasure)
	rs.SetFulfiller(steward.RequestCorrection, f.recipients.WithNotices(rs.DefaultFulfiller(steward.RequestCorrection)))
	rs.SetFulfiller(steward.RequestWithdrawal, f.recipients.WithNotices(rs.DefaultFulfiller(steward.RequestWithdrawal)))
	f.recipients.SetCompleter(rs)
}

// http returns the features for the API server: srv.SetRecipientFeatures(a.rec.http()).
func (f *recipientFeatures) http() stewardhttp.RecipientFeatures {
	return stewardhttp.RecipientFeatures{Recipients: f.recipients, Holds: f.holds, Erasure: f.erasure}
}

const recipientsUsage = `usage:
  steward recipients add --name NAME --kind affiliate|partner|processor|acquirer|regulator
        --webhook-url https://… --agreement REF --purposes P[,P…] --fields F[,F…] [--json]
      register a recipient; its webhook signing secret is printed once
  steward recipients list
  steward recipients notices [--state pending|acknowledged] [--overdue] [--request ID] [--recipient ID]
`

func runRecipients(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, recipientsUsage)
		return 2
	}
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	switch args[0] {
	case "add":
		var in steward.RecipientInput
		var kind, purposes, fields string
		var asJSON bool
		a, sctx, _, code := openAdmin(ctx, "recipients add", args[1:], stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&in.Name, "name", "", "the recipient's name (a company or authority)")
			fs.StringVar(&kind, "kind", "", "affiliate, partner, processor, acquirer or regulator")
			fs.StringVar(&in.WebhookURL, "webhook-url", "", "where notices are POSTed (https; http only to localhost, 127.0.0.0/8 or [::1])")
			fs.StringVar(&in.AgreementRef, "agreement", "", "reference of the data protection agreement (policy §4)")
			fs.StringVar(&purposes, "purposes", "", "comma-separated declared purposes the recipient receives data for")
			fs.StringVar(&fields, "fields", "", "comma-separated declared fields the recipient may receive")
			fs.BoolVar(&asJSON, "json", false, "print the recipient and its secret as JSON")
		})
		if a == nil {
			return code
		}
		defer a.Close()
		in.Kind, in.Purposes, in.Fields = steward.RecipientKind(kind), split(purposes), split(fields)
		rec, err := a.rec.recipients.Register(sctx, in)
		if err != nil {
			printError(stderr, "steward recipients add", err)
			return 1
		}
		if asJSON {
			enc.Encode(rec)
			return 0
		}
		fmt.Fprintln(stdout, rec.SigningSecret)
		fmt.Fprintf(stderr, "registered %s recipient %s (%s); the signing secret above is shown only once\n", rec.Kind, rec.ID, rec.Name)
		return 0
	case "list":
		a, sctx, _, code := openAdmin(ctx, "recipients list", args[1:], stderr, nil)
		if a == nil {
			return code
		}
		defer a.Close()
		list, err := a.rec.recipients.List(sctx)
		if err != nil {
			printError(stderr, "steward recipients list", err)
			return 1
		}
		if list == nil {
			list = []steward.Recipient{}
		}
		enc.Encode(stewardhttp.RecipientList{Recipients: list}) // the API's shape
		return 0
	case "notices":
		var f steward.NoticeFilter
		var overdue bool
		a, sctx, _, code := openAdmin(ctx, "recipients notices", args[1:], stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&f.State, "state", "", "pending or acknowledged")
			fs.BoolVar(&overdue, "overdue", false, "only pending notices past their acknowledgement deadline")
			fs.StringVar(&f.RequestID, "request", "", "only notices sent for this rights request")
			fs.StringVar(&f.RecipientID, "recipient", "", "only notices to this recipient")
		})
		if a == nil {
			return code
		}
		defer a.Close()
		if overdue {
			f.OverdueAt = a.svc.Now()
		}
		ns, err := a.rec.recipients.Notices(sctx, f)
		if err != nil {
			printError(stderr, "steward recipients notices", err)
			return 1
		}
		enc.Encode(stewardhttp.NoticeList{Notices: ns}) // the shape of GET /v1/recipients/notices
		return 0
	}
	fmt.Fprint(stderr, recipientsUsage)
	return 2
}
