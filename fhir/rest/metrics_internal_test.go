package rest

import (
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The cached series count exactly what WithLabelValues would, concurrently
// (run with -race).
func TestMetricsObserve(t *testing.T) {
	type obs struct {
		interaction, typ string
		status           int
	}
	tests := []struct {
		name string
		obs  []obs
		// want: requests by "interaction type status", latency samples by
		// interaction, per goroutine
		wantRequests map[string]float64
		wantLatency  map[string]float64
	}{
		{"one", []obs{{"read", "Patient", 200}},
			map[string]float64{"read Patient 200": 1},
			map[string]float64{"read": 1}},
		{"same series twice, then others", []obs{{"read", "Patient", 200}, {"read", "Patient", 200}, {"read", "Patient", 404}, {"search-type", "none", 200}},
			map[string]float64{"read Patient 200": 2, "read Patient 404": 1, "search-type none 200": 1},
			map[string]float64{"read": 3, "search-type": 1}},
	}
	const goroutines = 4
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := newMetrics(reg)
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for _, o := range tt.obs {
						m.observe(o.interaction, o.typ, o.status, time.Millisecond)
					}
				})
			}
			wg.Wait()
			requests, latency := gathered(t, reg)
			scale := func(want map[string]float64) map[string]float64 {
				out := map[string]float64{}
				for k, v := range want {
					out[k] = v * goroutines
				}
				return out
			}
			if want := scale(tt.wantRequests); !maps.Equal(requests, want) {
				t.Errorf("requests %v, want %v", requests, want)
			}
			if want := scale(tt.wantLatency); !maps.Equal(latency, want) {
				t.Errorf("latency samples %v, want %v", latency, want)
			}
		})
	}
}

// gathered is the requests counter by "interaction type status" and the
// latency histogram's sample count by interaction.
func gathered(t *testing.T, reg *prometheus.Registry) (requests, latency map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	requests, latency = map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "healthhub_http_requests_total":
				requests[strings.Join([]string{labels["interaction"], labels["type"], labels["status"]}, " ")] = m.GetCounter().GetValue()
			case "healthhub_http_request_duration_seconds":
				latency[labels["interaction"]] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return requests, latency
}
