package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
	"github.com/kiln-serving/kiln/internal/store/memstore"
)

type rec struct {
	N int `json:"n"`
}

func kv(key string, n int, rev int64) store.KV {
	return store.KV{Key: key, Value: fmt.Appendf(nil, `{"n":%d}`, n), ModRevision: rev}
}

// changes records a cache's changes as "key:old>new" with "-" for absent.
func changes(c *store.Cache[rec]) *[]string {
	var got []string
	c.OnChange(func(ch store.Change[rec]) {
		old, nw := "-", "-"
		if ch.HadOld {
			old = fmt.Sprint(ch.Old.N)
		}
		if !ch.Deleted {
			nw = fmt.Sprint(ch.New.N)
		}
		got = append(got, ch.Key+":"+old+">"+nw)
	})
	return &got
}

func TestCacheApply(t *testing.T) {
	type step struct {
		feed store.Feed
		want []string // changes reported
	}
	cases := []struct {
		name  string
		steps []step
		final map[string]int
	}{
		{
			name: "list then changes",
			steps: []step{
				{store.Feed{Reset: true, Puts: []store.KV{kv("a", 1, 2), kv("b", 2, 3)}, Rev: 3}, []string{"a:->1", "b:->2"}},
				{store.Feed{Puts: []store.KV{kv("a", 5, 4)}, Dels: []string{"b"}, Rev: 5}, []string{"b:2>-", "a:1>5"}},
			},
			final: map[string]int{"a": 5},
		},
		{
			name: "a relist reports only what changed, with the last value of keys gone",
			steps: []step{
				{store.Feed{Reset: true, Puts: []store.KV{kv("a", 1, 2), kv("b", 2, 3), kv("c", 3, 4)}, Rev: 4}, []string{"a:->1", "b:->2", "c:->3"}},
				{store.Feed{Reset: true, Puts: []store.KV{kv("a", 1, 2), kv("c", 9, 8), kv("d", 4, 9)}, Rev: 10}, []string{"b:2>-", "c:3>9", "d:->4"}},
			},
			final: map[string]int{"a": 1, "c": 9, "d": 4},
		},
		{
			name: "an older event does not overwrite a newer value",
			steps: []step{
				{store.Feed{Reset: true, Puts: []store.KV{kv("a", 7, 7)}, Rev: 7}, []string{"a:->7"}},
				{store.Feed{Puts: []store.KV{kv("a", 6, 6)}, Rev: 7}, nil},
			},
			final: map[string]int{"a": 7},
		},
		{
			name: "an undecodable value drops the key",
			steps: []step{
				{store.Feed{Reset: true, Puts: []store.KV{kv("a", 1, 2)}, Rev: 2}, []string{"a:->1"}},
				{store.Feed{Puts: []store.KV{{Key: "a", Value: []byte("{"), ModRevision: 3}}, Rev: 3}, []string{"a:1>-"}},
			},
			final: map[string]int{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := store.NewCache("/p/", store.JSON[rec], nil)
			got := changes(c)
			if c.Synced() {
				t.Fatal("synced before the first list")
			}
			for i, s := range tc.steps {
				*got = nil
				if n := c.Apply(s.feed); n != len(s.want) {
					t.Errorf("step %d: Apply = %d, want %d", i, n, len(s.want))
				}
				if !slices.Equal(*got, s.want) {
					t.Errorf("step %d: changes %v, want %v", i, *got, s.want)
				}
			}
			final := map[string]int{}
			c.Range(func(k string, v rec) bool { final[k] = v.N; return true })
			if fmt.Sprint(final) != fmt.Sprint(tc.final) || c.Len() != len(tc.final) || !c.Synced() {
				t.Errorf("final %v (len %d, synced %v), want %v", final, c.Len(), c.Synced(), tc.final)
			}
		})
	}
}

func TestCacheObserveIsNotUndoneByAnOlderFeed(t *testing.T) {
	c := store.NewCache("/p/", store.JSON[rec], nil)
	got := changes(c)
	c.Apply(store.Feed{Reset: true, Rev: 4})
	c.Observe("a", rec{N: 1}, 6) // our own write at revision 6
	c.Apply(store.Feed{Dels: []string{"a"}, Rev: 5})
	if v, ok := c.Get("a"); !ok || v.N != 1 {
		t.Fatalf("a = %v, %v after an older delete", v, ok)
	}
	c.Apply(store.Feed{Puts: []store.KV{kv("a", 1, 6)}, Rev: 6}) // the watch brings our write back
	c.Forget("a")
	if want := []string{"a:->1", "a:1>-"}; !slices.Equal(*got, want) {
		t.Fatalf("changes %v, want %v", *got, want)
	}
	if c.Rev() != 6 || !slices.Equal(c.Keys(), []string{}) {
		t.Fatalf("rev %d keys %v", c.Rev(), c.Keys())
	}
	// A re-list read before our write must not drop it either.
	c.Observe("b", rec{N: 2}, 9)
	c.Apply(store.Feed{Reset: true, Rev: 8})
	if v, ok := c.Get("b"); !ok || v.N != 2 {
		t.Fatalf("b = %v, %v after an older re-list", v, ok)
	}
	c.Apply(store.Feed{Reset: true, Rev: 10})
	if _, ok := c.Get("b"); ok {
		t.Fatal("b survived a newer re-list that no longer holds it")
	}
}

func TestMirrorFollowsEverySourceIntoOneLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := memstore.New()
	st.Put(ctx, "/a/1", []byte(`{"n":1}`))
	as := store.NewCache("/a/", store.JSON[rec], nil)
	bs := store.NewCache("/b/", func(kv store.KV) (string, error) { return string(kv.Value), nil }, nil)
	var deleted []rec
	as.OnChange(func(ch store.Change[rec]) {
		if ch.Deleted {
			deleted = append(deleted, ch.Old)
		}
	})
	m := store.NewMirror(as, bs)
	done := make(chan struct{})
	go func() { m.Run(ctx, st, nil); close(done) }()
	wait := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			select {
			case f := <-m.Feeds():
				m.Apply(f)
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("sync", m.Synced)
	if v, _ := as.Get("/a/1"); v.N != 1 || bs.Len() != 0 {
		t.Fatalf("after list: a=%v b=%d", v, bs.Len())
	}
	st.Put(ctx, "/b/x", []byte("hello"))
	st.Delete(ctx, "/a/1")
	wait("changes", func() bool { v, _ := bs.Get("/b/x"); return v == "hello" && as.Len() == 0 })
	if len(deleted) != 1 || deleted[0].N != 1 {
		t.Fatalf("deleted = %v, want the last value", deleted)
	}
	cancel()
	<-done
}

func TestFencedStoreFencesEveryWrite(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	rev, _ := st.Put(ctx, "/election/x", []byte("me"))
	fenced := store.Fenced(st, &store.Fence{Key: "/election/x", Rev: rev})
	if _, err := fenced.Put(ctx, "/k", []byte("v")); err != nil {
		t.Fatalf("put while leading: %v", err)
	}
	st.Delete(ctx, "/election/x")
	if _, err := fenced.Put(ctx, "/k", []byte("w")); !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("put after losing: %v, want ErrNotLeader", err)
	}
	if err := fenced.Delete(ctx, "/k"); !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("delete after losing: %v, want ErrNotLeader", err)
	}
}
