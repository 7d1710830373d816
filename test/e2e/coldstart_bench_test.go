package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	kc "github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
)

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

// firstByte sends a GET and returns the time to the response's first byte
// and the whole body.
func firstByte(client *http.Client, url, host string, hdr map[string]string) (time.Duration, int, string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	var first time.Time
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() { first = time.Now() },
	}))
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return first.Sub(start), resp.StatusCode, string(b), nil
}

// hops is when each control-plane step of one wake-up happened, read back
// from the records each role wrote.
type hops struct{ scale, placed, ready time.Time }

func wakeHops(st store.Store, ns, rev string) (hops, error) {
	var h hops
	ctx := context.Background()
	kv, err := st.Get(ctx, store.ScaleKey(ns, rev))
	if err != nil {
		return h, err
	}
	var sc kc.Scale
	if err := json.Unmarshal(kv.Value, &sc); err != nil {
		return h, err
	}
	h.scale = sc.UpdatedAt
	kvs, _, err := st.List(ctx, store.PlacementPrefix)
	if err != nil {
		return h, err
	}
	for _, kv := range kvs {
		var p kc.Placement
		if json.Unmarshal(kv.Value, &p) == nil && p.Spec.Namespace == ns && p.Spec.Revision == rev {
			h.placed = p.PlacedAt
		}
	}
	ins, err := instancesOf(st, ns, rev)
	if err != nil {
		return h, err
	}
	for _, in := range ins {
		if in.Ready {
			h.ready = in.UpdatedAt
		}
	}
	return h, nil
}

// BenchmarkAutoscaling measures, in one run on one cluster with the image
// on the node: cold-start latency through the gateway (time to first byte
// of a request to a revision at zero) over 20 wake-ups with the time spent
// in each hop, the same request warm, create-to-Ready, and the per-request
// cost of the activator and the queue-proxy against a direct call.
//
// The work runs once per process: the benchmark runner calls the function
// again with a larger b.N, which only reports the same figures again.
func BenchmarkAutoscaling(b *testing.B) {
	autoscalingOnce.Do(func() { autoscalingFigures = runAutoscalingBench(b) })
	for unit, v := range autoscalingFigures {
		b.ReportMetric(v, unit)
	}
}

var (
	autoscalingOnce    sync.Once
	autoscalingFigures map[string]float64
)

func runAutoscalingBench(b *testing.B) map[string]float64 {
	figures := map[string]float64{}
	c := startCluster(b)
	st := c.etcdStore()
	c.mustRun("config", "set", "autoscaler", "stable-window=6s", "scale-to-zero-grace-period=1s")
	// The first create pulls the image onto the node.
	c.mustRun("service", "create", "warmup", "--image", c.image, "--env", "RESPONSE=warmup", "--scale-min", "1")
	c.eventuallyBody("warmup.default.example.com", "warmup", 30*time.Second)

	const n = 20
	var toReady []time.Duration
	for i := range n {
		name := fmt.Sprintf("cold%02d", i)
		start := time.Now()
		c.mustRun("service", "create", name, "--image", c.image, "--env", "RESPONSE="+name)
		toReady = append(toReady, time.Since(start))
	}
	for i := range n {
		rev := fmt.Sprintf("cold%02d-00001", i)
		c.waitFor(rev+" at zero", 2*time.Minute, func() bool {
			ins, err := instancesOf(st, "default", rev)
			return err == nil && len(ins) == 0
		})
	}

	// An edge's certificate: queue-proxies and activators demand one; the
	// gateway's public listener ignores it.
	client := c.roleClient(pki.RoleGateway)
	var cold, warm, toScale, toPlaced, toRunning, toReply []time.Duration
	for i := range n {
		name := fmt.Sprintf("cold%02d", i)
		host := name + ".default.example.com"
		t0 := time.Now()
		d, code, body, err := firstByte(client, c.gateway+"/", host, nil)
		if err != nil || code != 200 || strings.TrimSpace(body) != name {
			b.Fatalf("wake-up of %s: code=%d body=%q err=%v", name, code, body, err)
		}
		cold = append(cold, d)
		if h, err := wakeHops(st, "default", name+"-00001"); err == nil && !h.scale.IsZero() && !h.placed.IsZero() && !h.ready.IsZero() {
			toScale = append(toScale, h.scale.Sub(t0))
			toPlaced = append(toPlaced, h.placed.Sub(h.scale))
			toRunning = append(toRunning, h.ready.Sub(h.placed))
			toReply = append(toReply, t0.Add(d).Sub(h.ready))
		}
		d, code, _, err = firstByte(client, c.gateway+"/", host, nil)
		if err != nil || code != 200 {
			b.Fatalf("warm request to %s: code=%d err=%v", name, code, err)
		}
		warm = append(warm, d)
	}
	fmt.Printf("cold start (first byte via gateway, image on node, %d wake-ups): p50 %v p99 %v (all %v)\n",
		n, percentile(cold, .5).Round(time.Millisecond/10), percentile(cold, .99).Round(time.Millisecond/10), roundAll(cold))
	fmt.Printf("  hops p50: request->scale written %v, scale->placed %v, placed->instance ready %v, ready->first byte %v (%d measured)\n",
		percentile(toScale, .5), percentile(toPlaced, .5), percentile(toRunning, .5), percentile(toReply, .5), len(toScale))
	fmt.Printf("same request warm: p50 %v p99 %v\n", percentile(warm, .5), percentile(warm, .99))
	fmt.Printf("create-to-Ready (kiln service create, %d services): p50 %v p99 %v\n", n, percentile(toReady, .5), percentile(toReady, .99))
	figures["ms-cold-p50"] = float64(percentile(cold, .5).Microseconds()) / 1000
	figures["ms-cold-p99"] = float64(percentile(cold, .99).Microseconds()) / 1000
	figures["ms-warm-p50"] = float64(percentile(warm, .5).Microseconds()) / 1000
	figures["ms-create-to-ready-p50"] = float64(percentile(toReady, .5).Microseconds()) / 1000

	// Per-request overhead on the always-warm revision.
	ins, err := instancesOf(st, "default", "warmup-00001")
	if err != nil || len(ins) == 0 || ins[0].ContainerIP == "" {
		b.Fatalf("no warm instance with an address: %v %v", ins, err)
	}
	in := ins[0]
	revHdr := map[string]string{v1.NamespaceHeaderName: "default", v1.RevisionHeaderName: "warmup-00001"}
	paths := []struct {
		name, url, host string
		hdr             map[string]string
	}{
		{"direct", "http://" + in.ContainerIP + ":8080/", "", nil},
		{"queue-proxy", "https://" + in.Endpoint + "/", "", nil},
		{"activator", "https://" + c.activator + "/", "", revHdr},
		{"gateway", c.gateway + "/", "warmup.default.example.com", nil},
	}
	const rounds = 2000
	perOp := map[string]time.Duration{}
	for _, p := range paths {
		for range 50 {
			firstByte(client, p.url, p.host, p.hdr)
		}
		start := time.Now()
		for range rounds {
			if _, code, _, err := firstByte(client, p.url, p.host, p.hdr); err != nil || code != 200 {
				b.Fatalf("%s: code=%d err=%v", p.name, code, err)
			}
		}
		perOp[p.name] = time.Since(start) / rounds
	}
	d := perOp["direct"]
	fmt.Printf("per request (sequential, keep-alive): direct %v, queue-proxy %v (+%v), activator+queue-proxy %v (+%v over queue-proxy), gateway path %v\n",
		d, perOp["queue-proxy"], perOp["queue-proxy"]-d, perOp["activator"], perOp["activator"]-perOp["queue-proxy"], perOp["gateway"])
	figures["µs-queue-proxy-overhead"] = float64((perOp["queue-proxy"] - d).Microseconds())
	figures["µs-activator-overhead"] = float64((perOp["activator"] - perOp["queue-proxy"]).Microseconds())
	return figures
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
