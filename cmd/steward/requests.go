package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// requestJobInterval is how often serve looks for deadline reminders to send.
const requestJobInterval = time.Minute

// startRequestJobs runs the deadline reminders (RemindDue) every
// requestJobInterval until ctx ends, and closes the returned channel when done.
// Every node may run it: each reminder is sent once, however many run.
func (a *app) startRequestJobs(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(requestJobInterval)
		defer t.Stop()
		jctx := steward.SystemContext(ctx, "requests.remind")
		for {
			if n, err := a.requests.RemindDue(jctx, a.svc.Now()); err != nil && ctx.Err() == nil {
				a.log.Error("request reminders", "err", err)
			} else if n > 0 {
				a.log.Info("request reminders queued", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done
}

// metricsRegistry returns the registry /metrics serves: the Go and process
// collectors and the request deadline gauges.
func (a *app) metricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		stewardhttp.RequestMetrics(a.requests))
	return reg
}

const requestsUsage = `usage:
  steward requests list [--type T] [--state S|open|all] [--due-before YYYY-MM-DD] [--overdue] [--assigned-to NAME] [--subject ID] [--limit N]
  steward requests show ID
  steward requests assign ID [--to NAME]
  steward requests start ID
  steward requests verify ID --method in_person_id_document [--reference TEXT]
  steward requests extend ID --reason TEXT
  steward requests refuse ID --ground GROUND --explanation TEXT
  steward requests fulfil ID [--reply TEXT] [--outcome upheld|overturned|amended]
  steward requests withdraw ID
  steward requests grounds
  steward requests remind
Every command prints JSON. It acts as the system unless --staff NAME --role ROLE[,ROLE]
name a staff member, whose permissions (doc/permissions.md) then apply.
`

// runRequests runs `steward requests …`: the staff queue from the command line.
func runRequests(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, requestsUsage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var id string
	switch cmd {
	case "show", "assign", "start", "verify", "extend", "refuse", "fulfil", "withdraw":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintf(stderr, "steward requests %s: the request id comes first\n%s", cmd, requestsUsage)
			return 2
		}
		id, rest = rest[0], rest[1:]
	case "list", "grounds", "remind":
	default:
		fmt.Fprintf(stderr, "steward requests: unknown command %q\n%s", cmd, requestsUsage)
		return 2
	}
	var (
		staff, roles                            string
		q                                       steward.QueueFilter
		dueBefore, to, method, reference        string
		reason, ground, explanation, reply, out string
	)
	a, sctx, _, code := openAdmin(ctx, "requests "+cmd, rest, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&staff, "staff", "", "act as this staff member instead of the system")
		fs.StringVar(&roles, "role", "", "the staff member's roles, comma-separated: support, privacy_officer, auditor, admin")
		switch cmd {
		case "list":
			fs.StringVar((*string)(&q.Type), "type", "", "request type")
			fs.StringVar(&q.State, "state", "", "request state, open (default) or all")
			fs.StringVar(&dueBefore, "due-before", "", "only requests due before this date (YYYY-MM-DD, legal time zone)")
			fs.BoolVar(&q.Overdue, "overdue", false, "only overdue requests")
			fs.StringVar(&q.AssignedTo, "assigned-to", "", "only requests assigned to this staff member")
			fs.StringVar(&q.SubjectID, "subject", "", "only this subject's requests")
			fs.IntVar(&q.Limit, "limit", 0, "at most this many (default 100)")
		case "assign":
			fs.StringVar(&to, "to", "", "staff member to assign to (default: the caller)")
		case "verify":
			fs.StringVar(&method, "method", "", "how identity was checked, e.g. in_person_id_document")
			fs.StringVar(&reference, "reference", "", "reference of the check (sealed)")
		case "extend":
			fs.StringVar(&reason, "reason", "", "why, as the subject is told")
		case "refuse":
			fs.StringVar(&ground, "ground", "", "refusal ground code (steward requests grounds)")
			fs.StringVar(&explanation, "explanation", "", "explanation for the subject")
		case "fulfil":
			fs.StringVar(&reply, "reply", "", "reply to a complaint, or the reviewer's reasons on an appeal")
			fs.StringVar(&out, "outcome", "", "an appeal's review outcome: upheld, overturned or amended")
		}
	})
	if a == nil {
		return code
	}
	defer a.Close()
	if staff == "" && roles != "" {
		fmt.Fprintf(stderr, "steward requests %s: --role needs --staff NAME\n%s", cmd, requestsUsage)
		return 2
	}
	if staff != "" {
		valid := strings.Join(steward.StaffRoles(), ", ")
		var rl []string
		for _, r := range strings.Split(roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				rl = append(rl, r)
			}
		}
		if len(rl) == 0 {
			fmt.Fprintf(stderr, "steward requests %s: --staff needs --role, one or more of %s\n", cmd, valid)
			return 2
		}
		for _, r := range rl {
			if !steward.ValidRole(r) {
				fmt.Fprintf(stderr, "steward requests %s: unknown role %q; roles are %s\n", cmd, r, valid)
				return 2
			}
		}
		sctx = steward.WithActor(ctx, steward.Actor{Kind: steward.ActorStaff, ID: staff, Roles: rl})
	}
	rs := a.requests
	var v any
	var err error
	switch cmd {
	case "list":
		if dueBefore != "" {
			d, perr := steward.ParseDate(dueBefore)
			if perr != nil {
				printError(stderr, "steward requests list", perr)
				return 2
			}
			q.DueBefore = d.Start(rs.DeadlineRule().Location)
		}
		v, err = rs.List(sctx, q)
	case "show":
		v, err = rs.Get(sctx, id)
	case "assign":
		v, err = rs.Assign(sctx, id, to)
	case "start":
		v, err = rs.Start(sctx, id)
	case "verify":
		v, err = rs.VerifyOnBehalf(sctx, id, steward.IdentityCheck{Method: method, Reference: reference})
	case "extend":
		v, err = rs.Extend(sctx, id, reason)
	case "refuse":
		v, err = rs.Refuse(sctx, id, steward.RefusalGround(ground), explanation)
	case "fulfil":
		v, err = rs.Fulfil(sctx, id, steward.FulfilInput{Reply: reply, Outcome: out})
	case "withdraw":
		v, err = rs.Withdraw(sctx, id)
	case "grounds":
		v = rs.RefusalGrounds().All()
	case "remind":
		var n int
		n, err = rs.RemindDue(sctx, a.svc.Now())
		v = map[string]int{"reminders_queued": n}
	}
	if err != nil {
		printError(stderr, "steward requests "+cmd, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	return 0
}
