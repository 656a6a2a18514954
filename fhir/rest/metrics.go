package rest

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"healthhub/conformance"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// series caches the children of requests and latency by label values:
	// WithLabelValues validates, hashes and looks up its labels (and the
	// status is formatted) on every request. Its keys are as bounded as the
	// label sets.
	series sync.Map // seriesKey -> *series
}

type seriesKey struct {
	interaction, typ string
	status           int
}

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthhub_http_requests_total",
			Help: "HTTP requests by FHIR interaction, resource type and status code.",
		}, []string{"interaction", "type", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healthhub_http_request_duration_seconds",
			Help:    "HTTP request latency by FHIR interaction.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"interaction"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

// resourceTypeLabel keeps the label set bounded: a type the client made up
// is "unknown".
func resourceTypeLabel(t string) string {
	switch {
	case t == "":
		return "none"
	case conformance.IsResourceType(t):
		return t
	}
	return "unknown"
}

func (m *metrics) observe(interaction, typ string, status int, d time.Duration) {
	k := seriesKey{interaction, typ, status}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(interaction, typ, strconv.Itoa(status)),
			latency:  m.latency.WithLabelValues(interaction),
		})
	}
	s := v.(*series)
	s.requests.Inc()
	s.latency.Observe(d.Seconds())
}
