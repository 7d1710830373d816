package queue

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kiln-serving/kiln/internal/timeout"
)

// A response that started before the revision's timeout keeps its status
// and ends cleanly when the timeout passes, as Knative's queue-proxy does
// (revision_timeout "writes first byte before timeout"); its container
// request is cancelled.
func TestTimeoutAfterResponseStarted(t *testing.T) {
	cancelled := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(5 * time.Second):
			_, _ = io.WriteString(w, "too late")
		case <-r.Context().Done():
			close(cancelled)
		}
	}))
	defer backend.Close()
	_, url := startProxy(t, backend, Config{Timeout: 200 * time.Millisecond})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(b) != timeout.Message {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, b, timeout.Message)
	}
	select {
	case <-cancelled:
	case <-time.After(3 * time.Second):
		t.Error("the container's request was not cancelled")
	}
}

func TestResponseStartTimeout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(d) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	_, url := startProxy(t, backend, Config{Timeout: 5 * time.Second, ResponseStart: 150 * time.Millisecond})
	for _, tc := range []struct {
		ms   string
		want int
	}{{"0", http.StatusOK}, {"1000", http.StatusGatewayTimeout}} {
		resp, err := http.Get(url + "?ms=" + tc.ms)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("first byte after %sms: %d, want %d", tc.ms, resp.StatusCode, tc.want)
		}
	}
}

// An h2c serving port gets HTTP/2 cleartext from the queue-proxy whatever
// the edge spoke; other ports get HTTP/1.1.
func TestH2CToContainer(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run("h2c="+strconv.FormatBool(h2c), func(t *testing.T) {
			backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, r.Proto)
			}))
			backend.Config.Protocols = new(http.Protocols)
			backend.Config.Protocols.SetHTTP1(true)
			backend.Config.Protocols.SetUnencryptedHTTP2(true)
			backend.Start()
			defer backend.Close()
			_, url := startProxy(t, backend, Config{H2C: h2c})
			want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2c]
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != want {
				t.Errorf("container saw %q, want %q", b, want)
			}
			// The queue-proxy itself accepts h2c from the edge.
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true)
			resp, err = (&http.Client{Transport: tr}).Get(url)
			if err != nil {
				t.Fatalf("h2c to the queue-proxy: %v", err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
				t.Errorf("h2c to the queue-proxy: %s %d", resp.Proto, resp.StatusCode)
			}
		})
	}
}

// A gRPC app on an h2c port answers through the queue-proxy even when the
// hop before it (an edge or the activator) speaks HTTP/1.1: trailers and
// "TE: trailers" survive both hops.
func TestGRPCThroughHTTP1Hop(t *testing.T) {
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("ping", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	p, err := New(Config{Target: ln.Addr().String(), H2C: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.SetReady(true)
	qln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(qln) }()
	defer p.Close()

	// The edge: h2c in, HTTP/1.1 out.
	queueURL := &url.URL{Scheme: "http", Host: qln.Addr().String()}
	edge := httptest.NewUnstartedServer(&httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(queueURL) },
		FlushInterval: -1,
	})
	edge.Config.Protocols = new(http.Protocols)
	edge.Config.Protocols.SetHTTP1(true)
	edge.Config.Protocols.SetUnencryptedHTTP2(true)
	edge.Start()
	defer edge.Close()

	conn, err := grpc.NewClient(strings.TrimPrefix(edge.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "ping"})
	if err != nil {
		t.Fatalf("gRPC call through the edge and the queue-proxy: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %s", resp.GetStatus())
	}
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v, want NotFound carried in the trailers", err)
	}
}
