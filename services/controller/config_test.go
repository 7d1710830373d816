package controller

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/config"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/liveconfig"
	"github.com/kiln-serving/kiln/internal/registry"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
	"github.com/kiln-serving/kiln/internal/testenv"
)

func putConfig(t *testing.T, ctx context.Context, st store.Store, name string, data map[string]string) {
	t.Helper()
	b, _ := json.Marshal(config.Document{Data: data})
	if _, err := st.Put(ctx, store.ConfigKey(name), b); err != nil {
		t.Fatal(err)
	}
}

// Route URLs follow config-domain and config-network as they change, with
// the controller running throughout.
func TestRouteURLFollowsClusterConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := memstore.New()
	reg := registry.New(st)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Stored before the controller starts, which waits for the configs.
	putConfig(t, ctx, st, config.NameDomain, map[string]string{
		"kiln.test":     "",
		"internal.test": "selector:\n  tier: internal\n",
	})
	cw := liveconfig.NewWatcher(st, log)
	go cw.Run(ctx)
	rev, _ := st.Put(ctx, store.ElectionKey("controller")+"/1", []byte("me"))
	c := New(st, Options{Config: cw}, log)
	startLead(t, ctx, c, &store.Fence{Key: store.ElectionKey("controller") + "/1", Rev: rev})

	for _, s := range []*v1.Service{
		{Metadata: metav1.ObjectMeta{Name: "hello", Namespace: "default"}},
		{Metadata: metav1.ObjectMeta{Name: "back", Namespace: "default", Labels: map[string]string{"tier": "internal"}}},
	} {
		s.Spec.Template.Spec.Containers = []v1.Container{{Name: "user-container", Image: "img:1"}}
		if _, err := reg.Services().Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	url := func(name string) string {
		r, err := reg.Routes().Get(ctx, "default", name)
		if err != nil {
			return ""
		}
		return r.Status.URL
	}
	testenv.Eventually(t, "route URLs from config-domain", 0, func() bool {
		return url("hello") == "http://hello.default.kiln.test" && url("back") == "http://back.default.internal.test"
	})

	putConfig(t, ctx, st, config.NameNetwork, map[string]string{
		"default-external-scheme": "https",
		"domain-template":         "{{.Name}}-{{.Namespace}}.{{.Domain}}",
	})
	testenv.Eventually(t, "route URL with the new scheme and template", 0, func() bool {
		return url("hello") == "https://hello-default.kiln.test" && url("back") == "https://back-default.internal.test"
	})

	if err := st.Delete(ctx, store.ConfigKey(config.NameNetwork)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "route URL back to the defaults", 0, func() bool {
		return url("hello") == "http://hello.default.kiln.test"
	})
}
