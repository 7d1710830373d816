package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	kc "github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/pki"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
)

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkServing measures, in one run on one cluster: create-to-Ready and
// create-to-first-reply with the image already on the node, and the
// per-request cost of the queue-proxy and of gateway + queue-proxy against
// calling the container directly.
func BenchmarkServing(b *testing.B) {
	c := startCluster(b)
	// Warm-up: the first create pulls the image onto the node.
	c.mustRun("service", "create", "warm", "--image", c.image, "--env", "RESPONSE=warm")
	c.eventuallyBody("warm.default.example.com", "warm", 30*time.Second)

	b.Run("create", func(b *testing.B) {
		var toReady, toReply []time.Duration
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("cold%d", i)
			host := name + ".default.example.com"
			start := time.Now()
			c.mustRun("service", "create", name, "--image", c.image, "--env", "RESPONSE="+name)
			toReady = append(toReady, time.Since(start))
			for {
				if code, body, err := c.get(host); err == nil && code == 200 && strings.TrimSpace(body) == name {
					break
				}
				if time.Since(start) > 60*time.Second {
					b.Fatalf("%s never answered", name)
				}
				time.Sleep(2 * time.Millisecond)
			}
			toReply = append(toReply, time.Since(start))
			c.mustRun("service", "delete", name)
		}
		b.ReportMetric(float64(median(toReady).Milliseconds()), "ms-create-to-ready")
		b.ReportMetric(float64(median(toReply).Milliseconds()), "ms-create-to-first-reply")
		fmt.Printf("create-to-Ready median %v (all %v)\ncreate-to-first-reply median %v (all %v)\n", median(toReady), toReady, median(toReply), toReply)
	})

	st, err := etcdstore.Dial([]string{c.etcd}, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	kvs, _, err := st.List(context.Background(), store.InstancePrefix)
	if err != nil {
		b.Fatal(err)
	}
	var inst kc.Instance
	for _, kv := range kvs {
		var in kc.Instance
		if json.Unmarshal(kv.Value, &in) == nil && in.Revision == "warm-00001" && in.Ready {
			inst = in
		}
	}
	if inst.ContainerIP == "" || inst.Endpoint == "" {
		b.Fatalf("no ready instance with an address for warm-00001: %+v", inst)
	}
	plain := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	edge := c.roleClient(pki.RoleGateway) // queue-proxies demand an edge's certificate
	get := func(b *testing.B, url, host string) {
		client := plain
		if strings.HasPrefix(url, "https:") {
			client = edge
		}
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
	}
	perOp := map[string]float64{}
	paths := []struct{ name, url, host string }{
		{"direct", "http://" + inst.ContainerIP + ":8080/", ""},
		{"queue-proxy", "https://" + inst.Endpoint + "/", ""},
		{"gateway", c.gateway + "/", "warm.default.example.com"},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			for i := 0; i < 20; i++ {
				get(b, p.url, p.host)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				get(b, p.url, p.host)
			}
			perOp[p.name] = float64(time.Since(start).Microseconds()) / float64(b.N)
		})
	}
	if d := perOp["direct"]; d > 0 {
		fmt.Printf("per request: direct %.0fµs, queue-proxy %.0fµs (%.2fx, +%.0fµs), gateway+queue-proxy %.0fµs (%.2fx, +%.0fµs)\n",
			d, perOp["queue-proxy"], perOp["queue-proxy"]/d, perOp["queue-proxy"]-d, perOp["gateway"], perOp["gateway"]/d, perOp["gateway"]-d)
	}
}
