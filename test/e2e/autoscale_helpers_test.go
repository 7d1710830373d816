package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	kc "github.com/kiln-serving/kiln/internal/cluster"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/etcdstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

// etcdStore opens the cluster's etcd for reading what the roles wrote.
func (c *cluster) etcdStore() *etcdstore.Store {
	c.t.Helper()
	st, err := etcdstore.Dial([]string{c.etcd}, 5*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { st.Close() })
	return st
}

// instancesOf returns the instance records of ns/rev.
func instancesOf(st store.Store, ns, rev string) ([]kc.Instance, error) {
	kvs, _, err := st.List(context.Background(), store.InstancePrefix)
	if err != nil {
		return nil, err
	}
	var out []kc.Instance
	for _, kv := range kvs {
		var in kc.Instance
		if json.Unmarshal(kv.Value, &in) == nil && in.Namespace == ns && in.Revision == rev {
			out = append(out, in)
		}
	}
	return out, nil
}

// readyInstances counts ns/rev's ready instances (-1 on a store error).
func readyInstances(st store.Store, ns, rev string) int {
	ins, err := instancesOf(st, ns, rev)
	if err != nil {
		return -1
	}
	n := 0
	for _, in := range ins {
		if in.Ready {
			n++
		}
	}
	return n
}

// containersOf counts rev's containers in the agent's containerd namespace.
func (c *cluster) containersOf(rev string) int {
	c.t.Helper()
	cl, err := containerd.New(c.ctrdAddress)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), c.namespace)
	cs, err := cl.Containers(ctx, fmt.Sprintf(`labels."kiln.dev/revision"==%s`, rev))
	if err != nil {
		c.t.Fatal(err)
	}
	return len(cs)
}

// waitFor waits until cond holds or d passes.
func (c *cluster) waitFor(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	testenv.Eventually(c.t, what, d, cond)
}

// reply is one answer through the gateway.
type reply struct {
	code          int
	body          string
	maxConcurrent int
	err           error
}

// httpClient is a client for one-off requests with a generous timeout.
func httpClient() *http.Client { return &http.Client{Timeout: 60 * time.Second} }

// hit sends one GET to host through the gateway with client.
func (c *cluster) hit(client *http.Client, host, pathAndQuery string) reply {
	req, _ := http.NewRequest("GET", c.gateway+pathAndQuery, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	mc, _ := strconv.Atoi(resp.Header.Get("X-Max-Concurrent"))
	return reply{code: resp.StatusCode, body: string(b), maxConcurrent: mc}
}

// burst sends n concurrent GETs and returns every reply.
func (c *cluster) burst(host, pathAndQuery string, n int) []reply {
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	out := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = c.hit(client, host, pathAndQuery)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// load runs workers clients, each sending GETs back to back until stop is
// closed; it returns every reply once they all finished.
func (c *cluster) load(host, pathAndQuery string, workers int, stop <-chan struct{}) <-chan []reply {
	done := make(chan []reply, 1)
	go func() {
		client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		defer client.CloseIdleConnections()
		var mu sync.Mutex
		var all []reply
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := c.hit(client, host, pathAndQuery)
					mu.Lock()
					all = append(all, r)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		done <- all
	}()
	return done
}

// failures describes the replies that are not 200, at most five of them.
func failures(rs []reply) (int, []string) {
	n := 0
	var some []string
	for _, r := range rs {
		if r.err == nil && r.code == http.StatusOK {
			continue
		}
		n++
		if len(some) < 5 {
			some = append(some, fmt.Sprintf("code=%d err=%v body=%q", r.code, r.err, r.body))
		}
	}
	return n, some
}
