package http

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds the server's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec   // steward_http_requests_total{method,route,code}
	duration *prometheus.HistogramVec // steward_http_request_duration_seconds{method,route}
	inFlight prometheus.Gauge         // steward_http_requests_in_flight
	handler  http.Handler
}

func newMetrics(reg *prometheus.Registry, declVersion string) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "steward_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steward_http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
	}
	declInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "steward_declaration_info",
		Help:        "The declaration in force; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": declVersion},
	})
	declInfo.Set(1)
	reg.MustRegister(m.requests, m.duration, m.inFlight, declInfo)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return m
}

// statusText holds the label values of the statuses Steward answers with, so that
// counting a request does not format a number.
var statusText = func() map[int]string {
	m := map[int]string{}
	for _, s := range []int{200, 201, 202, 204, 301, 304, 307, 308, 400, 401, 403, 404, 405, 409, 410, 413, 415, 429, 500, 503} {
		m[s] = strconv.Itoa(s)
	}
	return m
}()

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	code, ok := statusText[status]
	if !ok {
		code = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(method, route, code).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}
