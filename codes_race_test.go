package steward_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

// TestCodesUnderConcurrency: a code's single use, its attempt limit and the
// resend interval hold when requests race, on both engines (PostgreSQL runs
// several write transactions at once unless they are ordered).
func TestCodesUnderConcurrency(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: steward.OTPPolicy{PerPhonePerHour: 1000, PerClientPerHour: 1000, ResendInterval: time.Nanosecond}})
			phone := "+8613800138000"
			env.Register(t, phone, nil)
			race := func(n int, fn func() error) map[string]int {
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() { defer wg.Done(); errs[i] = fn() }()
				}
				wg.Wait()
				out := map[string]int{}
				for _, err := range errs {
					out[steward.ErrorCode(err)]++
				}
				return out
			}
			send := func() {
				t.Helper()
				env.Clock.Advance(time.Second)
				if _, err := env.Service.SendCode(ctx, phone, steward.CodeSignIn); err != nil {
					t.Fatal(err)
				}
			}

			// One code, eight sign-ins at once: one session.
			send()
			code := env.LastCode(t, phone)
			got := race(8, func() error { _, err := env.Service.SignIn(ctx, phone, code); return err })
			if got[""] != 1 || got[steward.EFORBIDDEN] != 7 {
				t.Errorf("8 sign-ins with one code: %v, want 1 success and 7 EFORBIDDEN", got)
			}

			// Forty wrong codes at once: five are checked, the rest find the code locked.
			send()
			code = env.LastCode(t, phone)
			wrong := "000000"
			if code == wrong {
				wrong = "000001"
			}
			got = race(40, func() error { _, err := env.Service.SignIn(ctx, phone, wrong); return err })
			if got[steward.EFORBIDDEN] != 4 || got[steward.ETOOMANY] != 36 {
				t.Errorf("40 wrong codes at once: %v, want 4 EFORBIDDEN (attempts left) and 36 ETOOMANY (the fifth and after)", got)
			}
			if _, err := env.Service.SignIn(ctx, phone, code); steward.ErrorCode(err) != steward.ETOOMANY {
				t.Errorf("the right code after five wrong ones: %v, want ETOOMANY", err)
			}

			// Twenty sends at once with a resend interval of an hour: one code.
			slow := stewardtest.New(t, engine, stewardtest.Options{OTP: steward.OTPPolicy{PerPhonePerHour: 1000, PerClientPerHour: 1000, ResendInterval: time.Hour}})
			got = race(20, func() error { _, err := slow.Service.SendCode(ctx, phone, steward.CodeRegister); return err })
			if got[""] != 1 || got[steward.ETOOMANY] != 19 {
				t.Errorf("20 sends at once, one an hour: %v, want 1 sent and 19 ETOOMANY", got)
			}
		})
	}
}
