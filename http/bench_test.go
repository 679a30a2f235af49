package http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

// benchServer registers one subject and serves it in-process; requests come from
// b.RunParallel with 8 goroutines per CPU (16 on the 2-core CI machine).
func benchServer(b *testing.B) (srv *httptest.Server, subjectID, subjectToken, appToken string) {
	env := stewardtest.New(b, "sqlite", stewardtest.Options{})
	reg := env.Register(b, phone, map[string]string{"nickname": `"` + nickname + `"`, "imei": `"` + imei + `"`})
	srv = httptest.NewServer(NewServer(env.Service, Options{}).Handler())
	b.Cleanup(srv.Close)
	return srv, reg.SubjectID, reg.Token, appTokenFor(b, env)
}

func appTokenFor(b *testing.B, env *stewardtest.Env) string {
	_, secret, err := env.Service.CreateAPIToken(steward.SystemContext(context.Background(), "bench"), steward.TokenApp, "risk-engine", nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	return secret
}

func runParallel(b *testing.B, srv *httptest.Server, call func(c *Client) error) {
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{Transport: tr}
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	stewardtest.ReportWritesPerCommit(b, func() {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(&Client{HTTP: hc}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkHTTPHealthz(b *testing.B) {
	srv, _, _, _ := benchServer(b)
	runParallel(b, srv, func(c *Client) error {
		c.BaseURL = srv.URL
		_, err := c.do(context.Background(), "GET", "/healthz", nil, nil, nil)
		return err
	})
}

func BenchmarkHTTPMe(b *testing.B) {
	srv, _, token, _ := benchServer(b)
	runParallel(b, srv, func(c *Client) error {
		c.BaseURL, c.Token = srv.URL, token
		_, err := c.Me(context.Background())
		return err
	})
}

func BenchmarkHTTPPurposeRead(b *testing.B) {
	srv, id, _, app := benchServer(b)
	runParallel(b, srv, func(c *Client) error {
		c.BaseURL, c.Token = srv.URL, app
		_, err := c.ReadForPurpose(context.Background(), id, "risk_control", nil)
		return err
	})
}
