package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/contacts"
	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/outbox"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
)

// roomyOTP lets a test send many codes at once.
var roomyOTP = steward.OTPPolicy{PerPhonePerHour: 1000, PerClientPerHour: 1000, ResendInterval: time.Nanosecond}

// process is one `steward serve` (or command-line tool) on the shared database:
// its own store, service and outbox worker.
type process struct {
	name   string
	store  steward.Store
	svc    *steward.Service
	worker *outbox.Worker
	writes *countWrites
}

// cluster is a database shared by processes, and what their sinks received.
type cluster struct {
	env  *stewardtest.Env
	sink *countingSink
}

// newCluster returns a fresh database on engine; its first process is env's own
// store (with an instance id, as serve's), named "a".
func newCluster(t *testing.T, engine string) (*cluster, *process) {
	env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
	c := &cluster{env: env, sink: &countingSink{by: map[string][]string{}, ids: map[string]int{}}}
	return c, c.attach("a", env.Store)
}

// open opens another store on the cluster's database with instance ("" for a
// command-line tool) and returns its process, named name.
func (c *cluster) open(t *testing.T, name, instance string) *process {
	t.Helper()
	st, err := stsql.OpenStore(context.Background(), c.env.DataDSN, stsql.Options{Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return c.attach(name, st)
}

func (c *cluster) attach(name string, st steward.Store) *process {
	keys := keyring.Steward{Keyring: c.env.Keyring}
	p := &process{name: name, store: st, writes: &countWrites{Store: st}}
	p.svc = steward.NewService(steward.Config{Declaration: c.env.Decl, Store: st, Keys: keys, NormalizePhone: contacts.Normalize,
		Now: c.env.Clock.Now, OTP: roomyOTP})
	// The worker's store counts writes and makes workers meet (deliverTogether).
	p.worker = &outbox.Worker{Store: p.writes, Keys: keys, Now: c.env.Clock.Now,
		Sinks: map[string]outbox.Sink{"sms": sinkAs{c.sink, name}}}
	return p
}

// sendCodes queues n one-time codes from p to numbers of its own, and returns the numbers.
func (p *process) sendCodes(t *testing.T, n int) map[string]bool {
	t.Helper()
	to := map[string]bool{}
	for i := range n {
		phone := fmt.Sprintf("+861390%d%06d", int(p.name[0])%10, i) // a number range per process
		if _, err := p.svc.SendCode(context.Background(), phone, steward.CodeRegister); err != nil {
			t.Fatalf("%s: send code: %v", p.name, err)
		}
		to[phone] = true
	}
	return to
}

// deliverTogether runs DeliverDue on every process's worker at once and returns
// how many each delivered. No worker goes past its first read of the outbox
// until all have read it: two serve processes polling at the same moment, the
// race that sent codes twice.
func deliverTogether(t *testing.T, ps ...*process) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := &meeting{want: len(ps), all: make(chan struct{})}
	for _, p := range ps {
		p.writes.meet, p.writes.met = m, false
	}
	var wg sync.WaitGroup
	got := make([]int, len(ps))
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = p.worker.DeliverDue(ctx)
		}()
	}
	wg.Wait()
	out := map[string]int{}
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("%s: DeliverDue: %v", p.name, errs[i])
		}
		out[p.name] = got[i]
	}
	return out
}

// TestTwoProcessesDeliverEachMessageOnce: two serve processes on one database
// (SQLite file, PostgreSQL database) queue codes and poll the outbox at the same
// moment; each code is sent once, by the process that queued it, with no write
// to claim it (74 of 80 codes went out twice before outbox claims).
func TestTwoProcessesDeliverEachMessageOnce(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			c, a := newCluster(t, engine)
			b := c.open(t, "b", steward.NewID())
			const n = 40
			toA, toB := a.sendCodes(t, n), b.sendCodes(t, n)

			got := deliverTogether(t, a, b)
			if got["a"] != n || got["b"] != n {
				t.Errorf("delivered: a %d, b %d; want %d each", got["a"], got["b"], n)
			}
			c.sink.exactlyOnce(t, 2*n)
			c.sink.deliveredBy(t, "a", toA)
			c.sink.deliveredBy(t, "b", toB)
			// Each process's own messages needed one write: the outcomes.
			if a.writes.n.Load() != 1 || b.writes.n.Load() != 1 {
				t.Errorf("writes by the workers: a %d, b %d; want 1 each (marks only, no claims)", a.writes.n.Load(), b.writes.n.Load())
			}
			// Nothing is left for anyone.
			if got := deliverTogether(t, a, b); got["a"]+got["b"] != 0 {
				t.Errorf("a second round delivered %v, want nothing", got)
			}
			c.sink.exactlyOnce(t, 2*n)
		})
	}
}

// TestMessagesOfAStoppedProcessAreTakenOver: a process that queued messages and
// stopped before delivering them leaves them to the others once its claim has run
// out (steward.OutboxLease after they fell due), and each is sent once.
func TestMessagesOfAStoppedProcessAreTakenOver(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			c, a := newCluster(t, engine)
			b, d := c.open(t, "b", steward.NewID()), c.open(t, "d", steward.NewID())
			const n = 20
			toA := a.sendCodes(t, n) // and a stops

			c.env.Clock.Advance(steward.OutboxLease - time.Microsecond)
			if got := deliverTogether(t, b, d); got["b"]+got["d"] != 0 {
				t.Fatalf("delivered %v while a's claims live, want nothing", got)
			}
			c.env.Clock.Advance(time.Microsecond)
			got := deliverTogether(t, b, d)
			if got["b"]+got["d"] != n {
				t.Errorf("delivered %v once a's claims ran out, want %d in all", got, n)
			}
			c.sink.exactlyOnce(t, n)
			for to := range toA {
				if c.sink.count(to) != 1 {
					t.Errorf("a's message to %s sent %d times", to, c.sink.count(to))
				}
			}
		})
	}
}

// TestUnclaimedMessagesAreDeliveredOnce: messages queued by a command-line tool
// (a store without an instance id) are unclaimed; two serve processes polling at
// the same moment claim them and send each once.
func TestUnclaimedMessagesAreDeliveredOnce(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			c, a := newCluster(t, engine)
			b := c.open(t, "b", steward.NewID())
			cli := c.open(t, "cli", "")
			if cli.store.Instance() != "" {
				t.Fatalf("a store opened without an instance id has %q", cli.store.Instance())
			}
			const n = 30
			cli.sendCodes(t, n)

			got := deliverTogether(t, a, b)
			if got["a"]+got["b"] != n {
				t.Errorf("delivered %v, want %d in all", got, n)
			}
			c.sink.exactlyOnce(t, n)
		})
	}
}

// TestUnclaimedMessagesAreDeliveredByAWorker: a worker delivers what a
// command-line tool queued, on its own (one claim write, one marking write).
func TestUnclaimedMessagesAreDeliveredByAWorker(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			c, a := newCluster(t, engine)
			cli := c.open(t, "cli", "")
			to := cli.sendCodes(t, 3)
			if got := deliverTogether(t, a); got["a"] != 3 {
				t.Errorf("delivered %d, want 3", got["a"])
			}
			c.sink.exactlyOnce(t, 3)
			c.sink.deliveredBy(t, "a", to)
			if a.writes.n.Load() != 2 {
				t.Errorf("%d writes by the worker, want 2 (claim, marks)", a.writes.n.Load())
			}
		})
	}
}

// TestFailedMessageStaysWithItsProcess: after a failed attempt the process that
// made it retries the message when due, without claiming it again; another
// process takes it only once the retry is a lease overdue.
func TestFailedMessageStaysWithItsProcess(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			c, a := newCluster(t, engine)
			b := c.open(t, "b", steward.NewID())
			a.sendCodes(t, 1)
			failing := &failingSink{}
			a.worker.Sinks["sms"] = failing
			if got := deliverTogether(t, a, b); got["a"]+got["b"] != 0 || failing.n.Load() != 1 {
				t.Fatalf("first round: delivered %v, %d failed attempts; want none, 1", got, failing.n.Load())
			}
			a.worker.Sinks["sms"] = sinkAs{c.sink, "a"}
			c.env.Clock.Advance(outbox.Backoff(1))
			writes := a.writes.n.Load()
			if got := deliverTogether(t, a, b); got["a"] != 1 || got["b"] != 0 {
				t.Errorf("retry: delivered %v, want a 1, b 0", got)
			}
			if n := a.writes.n.Load() - writes; n != 1 {
				t.Errorf("retry: %d writes by a, want 1 (marks only)", n)
			}
			c.sink.exactlyOnce(t, 1)
		})
	}

	// Its process gone, the message goes to another once the retry is a lease overdue.
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine+"/taken over", func(t *testing.T) {
			c, a := newCluster(t, engine)
			b := c.open(t, "b", steward.NewID())
			a.sendCodes(t, 1)
			a.worker.Sinks["sms"] = &failingSink{}
			deliverTogether(t, a) // fails, then a stops
			c.env.Clock.Advance(outbox.Backoff(1) + steward.OutboxLease - time.Microsecond)
			if got := deliverTogether(t, b); got["b"] != 0 {
				t.Fatalf("b delivered %d while a's claim lives, want 0", got["b"])
			}
			c.env.Clock.Advance(time.Microsecond)
			if got := deliverTogether(t, b); got["b"] != 1 {
				t.Errorf("b delivered %d once a's claim ran out, want 1", got["b"])
			}
			c.sink.exactlyOnce(t, 1)
		})
	}
}

// countingSink records which process delivered each message, by address.
type countingSink struct {
	mu  sync.Mutex
	by  map[string][]string // address → processes that delivered to it, in order
	ids map[string]int      // message id → deliveries
}

// sinkAs delivers to a countingSink as process name.
type sinkAs struct {
	s    *countingSink
	name string
}

func (s sinkAs) Deliver(ctx context.Context, m outbox.Message) error {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	s.s.by[m.To] = append(s.s.by[m.To], s.name)
	s.s.ids[m.ID]++
	return nil
}

func (s *countingSink) count(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.by[to])
}

// exactlyOnce checks that n messages were delivered, each once.
func (s *countingSink) exactlyOnce(t *testing.T, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	twice := 0
	for _, k := range s.ids {
		if k != 1 {
			twice++
		}
	}
	if len(s.ids) != n || twice != 0 {
		t.Errorf("%d distinct messages delivered, %d of them more than once; want %d, each once", len(s.ids), twice, n)
	}
}

// deliveredBy checks that the messages to each address of to were delivered by process name.
func (s *countingSink) deliveredBy(t *testing.T, name string, to map[string]bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	wrong := 0
	for addr := range to {
		if by := s.by[addr]; len(by) != 1 || by[0] != name {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d messages of %s delivered other than once by %s", wrong, len(to), name, name)
	}
}

// failingSink fails every delivery.
type failingSink struct{ n atomic.Int32 }

func (s *failingSink) Deliver(ctx context.Context, m outbox.Message) error {
	s.n.Add(1)
	return steward.Errorf(steward.EUNAVAILABLE, "the gateway is down")
}

// countWrites is a worker's Store: it counts Writes, and holds the worker's
// first Read of a deliverTogether until the other workers have read too.
type countWrites struct {
	steward.Store
	n    atomic.Int64
	meet *meeting
	met  bool // the worker's goroutine only
}

func (s *countWrites) Write(ctx context.Context, fn func(steward.Tx) error) error {
	s.n.Add(1)
	return s.Store.Write(ctx, fn)
}

func (s *countWrites) Read(ctx context.Context, fn func(steward.Tx) error) error {
	err := s.Store.Read(ctx, fn)
	if !s.met {
		s.met = true
		s.meet.arrive(ctx)
	}
	return err
}

// meeting lets every worker taking part read the outbox before any of them
// goes on: the moment two processes race for the same messages.
type meeting struct {
	want    int
	arrived atomic.Int32
	all     chan struct{}
}

func (m *meeting) arrive(ctx context.Context) {
	if int(m.arrived.Add(1)) == m.want {
		close(m.all)
	}
	select {
	case <-m.all:
	case <-ctx.Done():
	}
}
