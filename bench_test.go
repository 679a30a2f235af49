package steward_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/outbox"
	"github.com/stewardhq/steward/stewardtest"
)

// codeSink hands each one-time code to the goroutine waiting for its number.
type codeSink struct {
	mu      sync.Mutex
	waiting map[string]chan string
}

func (s *codeSink) expect(to string) chan string {
	ch := make(chan string, 1)
	s.mu.Lock()
	s.waiting[to] = ch
	s.mu.Unlock()
	return ch
}

func (s *codeSink) Deliver(ctx context.Context, m outbox.Message) error {
	i := strings.Index(m.Body, "code is ")
	s.mu.Lock()
	ch := s.waiting[m.To]
	delete(s.waiting, m.To)
	s.mu.Unlock()
	if ch != nil && i >= 0 {
		ch <- m.Body[i+8 : i+14]
	}
	return nil
}

var benchPhone atomic.Int64

// nextPhone returns a distinct valid mainland mobile number per call.
func nextPhone() string { return fmt.Sprintf("+86139%08d", benchPhone.Add(1)) }

// benchEnv is an Env whose outbox worker runs in the background, as in serve.
func benchEnv(b *testing.B, engine string) (*stewardtest.Env, *codeSink) {
	env := stewardtest.New(b, engine, stewardtest.Options{OTP: roomyOTP})
	sink := &codeSink{waiting: map[string]chan string{}}
	env.Outbox.Sinks["sms"] = sink
	// Real time for the benchmark: codes must not expire and sessions are fresh.
	env.Clock.Set(env.Clock.Now())
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go env.Outbox.Run(ctx)
	return env, sink
}

// BenchmarkRegistration measures completed registrations: a code sent through the
// outbox and delivered, then the registration (code check, data key, sealed
// fields, consents, session, audit). Run with -cpu to set concurrency: on 2 cores,
// SetParallelism(4) gives 8 concurrent clients.
func BenchmarkRegistration(b *testing.B) {
	for _, engine := range stewardtest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			env, sink := benchEnv(b, engine)
			svc := env.Service
			consents := stewardtest.DefaultConsents(env.Decl)
			b.SetParallelism(4)
			b.ResetTimer()
			stewardtest.ReportWritesPerCommit(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						phone := nextPhone()
						ch := sink.expect(phone)
						if _, err := svc.SendCode(ctx, phone, steward.CodeRegister); err != nil {
							b.Error(err)
							return
						}
						env.Outbox.Notify()
						code := <-ch
						_, err := svc.Register(ctx, steward.Registration{Phone: phone, Code: code, Consents: consents,
							Fields: steward.FieldValues{"nickname": []byte(`"张伟"`), "birthday": []byte(`"1990-05-17"`), "imei": []byte(`"490154203237518"`)}})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
		})
	}
}

// registered returns n subjects for read benchmarks.
func registered(b *testing.B, env *stewardtest.Env, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = env.Register(b, nextPhone(), map[string]string{"imei": `"490154203237518"`, "imsi": `"460001234567890"`}).SubjectID
	}
	return ids
}

// BenchmarkPurposeRead measures a client app's read under a purpose: consent
// check, decrypt, access-log append (on SQLite through the access journal, whose
// moves are the only commits counted in writes/commit; on PostgreSQL
// group-committed).
func BenchmarkPurposeRead(b *testing.B) {
	for _, engine := range stewardtest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			env := stewardtest.New(b, engine, stewardtest.Options{OTP: roomyOTP})
			ids := registered(b, env, 64)
			app := stewardtest.App("risk-engine")
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			stewardtest.ReportWritesPerCommit(b, func() {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						id := ids[n.Add(1)%int64(len(ids))]
						if _, err := env.Service.ReadForPurpose(app, id, "risk_control", nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

// BenchmarkConsentCheck measures whether a purpose's basis holds (no audit).
func BenchmarkConsentCheck(b *testing.B) {
	for _, engine := range stewardtest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			env := stewardtest.New(b, engine, stewardtest.Options{OTP: roomyOTP})
			ids := registered(b, env, 64)
			app := stewardtest.App("app")
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := ids[n.Add(1)%int64(len(ids))]
					if err := env.Service.CheckConsent(app, id, "risk_control"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}

// BenchmarkExport measures a subject's complete export.
func BenchmarkExport(b *testing.B) {
	for _, engine := range stewardtest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			env := stewardtest.New(b, engine, stewardtest.Options{OTP: roomyOTP})
			ids := registered(b, env, 8)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := env.Service.ExportMe(stewardtest.Subject(ids[i%len(ids)])); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
