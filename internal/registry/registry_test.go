package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	metav1 "github.com/kiln-serving/kiln/api/meta/v1"
	v1 "github.com/kiln-serving/kiln/api/serving/v1"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

func svc(name, image string) *v1.Service {
	s := &v1.Service{Metadata: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	s.Spec.Template.Spec.Containers = []v1.Container{{Image: image}}
	return s
}

func TestCreateUpdateGeneration(t *testing.T) {
	ctx := context.Background()
	r := New(memstore.New())
	s, err := r.Services().Create(ctx, svc("hello", "img:1"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Metadata.Generation != 1 || s.Metadata.UID == "" || s.Metadata.ResourceVersion == "" || s.APIVersion != v1.APIVersion || s.Kind != "Service" {
		t.Fatalf("created metadata = %+v %+v", s.TypeMeta, s.Metadata)
	}
	if _, err := r.Services().Create(ctx, svc("hello", "img:1")); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	stale := *s
	// A status-only change keeps the generation.
	s.Status.ObservedGeneration = 1
	s2, err := r.Services().Update(ctx, s)
	if err != nil || s2.Metadata.Generation != 1 {
		t.Fatalf("status update: gen %d, %v", s2.Metadata.Generation, err)
	}
	// A spec change bumps it.
	s2.Spec.Template.Spec.Containers[0].Image = "img:2"
	s3, err := r.Services().Update(ctx, s2)
	if err != nil || s3.Metadata.Generation != 2 {
		t.Fatalf("spec update: gen %d, %v", s3.Metadata.Generation, err)
	}
	// The first read's version is stale now.
	if _, err := r.Services().Update(ctx, &stale); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got, _ := r.Services().Get(ctx, "default", "hello")
	if got.Spec.Template.Spec.Containers[0].Image != "img:2" || got.Metadata.UID != s.Metadata.UID {
		t.Fatalf("stored = %+v", got)
	}
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := New(memstore.New())
	wc := r.Services().Watch(ctx, "default", 0)
	r.Services().Create(ctx, svc("a", "x"))
	r.Services().Delete(ctx, "default", "a")
	var types []EventType
	for len(types) < 2 {
		select {
		case ev := <-wc:
			if ev.Err != nil {
				t.Fatal(ev.Err)
			}
			types = append(types, ev.Type)
		case <-ctx.Done():
			t.Fatalf("timeout, got %v", types)
		}
	}
	if types[0] != Added || types[1] != Deleted {
		t.Fatalf("events %v", types)
	}
	if err := r.Services().Delete(ctx, "default", "a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

// The roles that follow every Revision watch store.RevisionsPrefix; it must
// be the registry's own prefix for the kind.
func TestRevisionsPrefixIsTheRegistrys(t *testing.T) {
	if got := New(memstore.New()).Revisions().Prefix(""); got != store.RevisionsPrefix {
		t.Fatalf("registry revisions prefix %q, store.RevisionsPrefix %q", got, store.RevisionsPrefix)
	}
}
