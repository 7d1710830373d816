package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

// Run runs the conformance suite; newStore returns an empty store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGetList", testCreateGetList},
		{"CreateOnly", testCreateOnly},
		{"CompareAndSwap", testCAS},
		{"ConcurrentWritersOneWins", testConcurrentWriters},
		{"Delete", testDelete},
		{"Fence", testFence},
		{"LeaseRevokeDeletesKeys", testLease},
		{"WatchFromRevision", testWatch},
		{"ListAtRevision", testListAt},
		{"CompactionExpires", testCompaction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func testCreateGetList(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, k := range []string{"/t/b", "/t/a", "/u/x"} {
		if _, err := s.Put(c, k, []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := s.Get(c, "/t/a")
	if err != nil || string(kv.Value) != "v/t/a" || kv.ModRevision == 0 || kv.CreateRevision != kv.ModRevision {
		t.Fatalf("get = %+v, %v", kv, err)
	}
	list, rev, err := s.List(c, "/t/")
	if err != nil || len(list) != 2 || list[0].Key != "/t/a" || list[1].Key != "/t/b" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if rev < list[1].ModRevision {
		t.Fatalf("list revision %d older than its items (%d)", rev, list[1].ModRevision)
	}
	if _, err := s.Get(c, "/t/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
}

func testCreateOnly(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.Put(c, "/k", []byte("1"), store.IfRevision(0)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(c, "/k", []byte("2"), store.IfRevision(0))
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	kv, _ := s.Get(c, "/k")
	if string(kv.Value) != "1" {
		t.Fatalf("failed create overwrote the value: %q", kv.Value)
	}
}

func testCAS(t *testing.T, s store.Store) {
	c := ctx(t)
	r1, err := s.Put(c, "/k", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Put(c, "/k", []byte("2"), store.IfRevision(r1))
	if err != nil || r2 <= r1 {
		t.Fatalf("cas put = %d, %v", r2, err)
	}
	if _, err := s.Put(c, "/k", []byte("3"), store.IfRevision(r1)); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("stale cas: %v, want ErrConflict", err)
	}
	if _, err := s.Put(c, "/nokey", []byte("3"), store.IfRevision(r1)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("cas on missing key: %v, want ErrNotFound", err)
	}
	kv, _ := s.Get(c, "/k")
	if string(kv.Value) != "2" || kv.CreateRevision != r1 {
		t.Fatalf("after conflict: %+v", kv)
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	c := ctx(t)
	rev, err := s.Put(c, "/k", []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Put(c, "/k", []byte(fmt.Sprint(i)), store.IfRevision(rev))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, errdefs.ErrConflict):
				conflicts++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and 7", wins, conflicts)
	}
}

func testDelete(t *testing.T, s store.Store) {
	c := ctx(t)
	r, _ := s.Put(c, "/k", []byte("1"))
	if err := s.Delete(c, "/k", store.IfRevision(r+100)); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	if err := s.Delete(c, "/k", store.IfRevision(r)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, "/k"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete missing: %v, want ErrNotFound", err)
	}
}

func testFence(t *testing.T, s store.Store) {
	c := ctx(t)
	leaderRev, _ := s.Put(c, "/election/x/1", []byte("me"))
	f := &store.Fence{Key: "/election/x/1", Rev: leaderRev}
	if _, err := s.Put(c, "/owned", []byte("1"), store.WithFence(f)); err != nil {
		t.Fatalf("fenced write while leading: %v", err)
	}
	if err := s.Delete(c, "/election/x/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "/owned", []byte("2"), store.WithFence(f)); !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("fenced write after losing: %v, want ErrNotLeader", err)
	}
	// A new leader key with the same name has a new create revision: the
	// old fence must still fail.
	s.Put(c, "/election/x/1", []byte("other"))
	if err := s.Delete(c, "/owned", store.WithFence(f)); !errors.Is(err, errdefs.ErrNotLeader) {
		t.Fatalf("fenced delete with a stale fence: %v, want ErrNotLeader", err)
	}
	kv, _ := s.Get(c, "/owned")
	if string(kv.Value) != "1" {
		t.Fatalf("deposed leader changed the value: %q", kv.Value)
	}
}

func testLease(t *testing.T, s store.Store) {
	c := ctx(t)
	id, lost, err := s.GrantLease(c, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "/leased", []byte("1"), store.WithLease(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "/kept", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeLease(c, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(c, "/leased"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("leased key after revoke: %v", err)
	}
	if _, err := s.Get(c, "/kept"); err != nil {
		t.Fatalf("unleased key after revoke: %v", err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("lost channel not closed after revoke")
	}
	if _, err := s.Put(c, "/leased", []byte("1"), store.WithLease(id)); err == nil {
		t.Fatal("put on a revoked lease succeeded")
	}
}

func testWatch(t *testing.T, s store.Store) {
	c := ctx(t)
	r1, _ := s.Put(c, "/w/a", []byte("1"))
	s.Put(c, "/other", []byte("x"))
	s.Put(c, "/w/a", []byte("2"))
	wc := s.Watch(c, "/w/", r1)
	s.Delete(c, "/w/a")
	var got []string
	for len(got) < 3 {
		select {
		case wr, ok := <-wc:
			if !ok {
				t.Fatalf("watch closed early; got %v", got)
			}
			if wr.Err != nil {
				t.Fatal(wr.Err)
			}
			for _, ev := range wr.Events {
				typ := "put"
				if ev.Type == store.EventDelete {
					typ = "del"
				}
				got = append(got, typ+":"+string(ev.KV.Value))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out; got %v", got)
		}
	}
	want := []string{"put:1", "put:2", "del:2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

// Compactor is implemented by stores whose history can be discarded (etcd's
// compaction); both kiln stores are.
type Compactor interface {
	Compact(ctx context.Context, rev int64) error
}

func testListAt(t *testing.T, s store.Store) {
	c := ctx(t)
	r1, _ := s.Put(c, "/l/a", []byte("1"))
	s.Put(c, "/l/b", []byte("1"))
	s.Put(c, "/other", []byte("x"))
	s.Put(c, "/l/a", []byte("2"))
	s.Delete(c, "/l/b")
	s.Put(c, "/l/c", []byte("1"))
	for _, tc := range []struct {
		rev  int64
		want string
	}{
		{r1, "[/l/a=1]"},
		{r1 + 1, "[/l/a=1 /l/b=1]"},
		{r1 + 3, "[/l/a=2 /l/b=1]"},
		{r1 + 4, "[/l/a=2]"},
		{0, "[/l/a=2 /l/c=1]"},
	} {
		kvs, rev, err := s.ListAt(c, "/l/", tc.rev)
		if err != nil {
			t.Fatalf("ListAt(%d): %v", tc.rev, err)
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, kv.Key+"="+string(kv.Value))
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("ListAt(%d) = %v, want %v", tc.rev, got, tc.want)
		}
		if tc.rev > 0 && rev != tc.rev {
			t.Errorf("ListAt(%d) read at %d", tc.rev, rev)
		}
		if tc.rev == 0 && rev != r1+5 {
			t.Errorf("ListAt(0) read at %d, want %d", rev, r1+5)
		}
	}
	if _, _, err := s.ListAt(c, "/l/", r1+100); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ListAt(future) = %v, want ErrInvalidArgument", err)
	}
}

func testCompaction(t *testing.T, s store.Store) {
	c := ctx(t)
	r1, _ := s.Put(c, "/c/a", []byte("1"))
	s.Put(c, "/c/b", []byte("1"))
	r3, _ := s.Put(c, "/c/a", []byte("2"))
	s.Put(c, "/c/b", []byte("2"))
	if err := s.(Compactor).Compact(c, r3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ListAt(c, "/c/", r1); !errors.Is(err, errdefs.ErrExpired) {
		t.Errorf("ListAt(compacted) = %v, want ErrExpired", err)
	}
	kvs, _, err := s.ListAt(c, "/c/", r3)
	if err != nil || len(kvs) != 2 || string(kvs[0].Value) != "2" || string(kvs[1].Value) != "1" {
		t.Errorf("ListAt(compaction revision) = %v, %v; want a=2 b=1", kvs, err)
	}
	select {
	case wr := <-s.Watch(c, "/c/", r1):
		if !errors.Is(wr.Err, errdefs.ErrExpired) {
			t.Errorf("watch from a compacted revision: %+v, want ErrExpired", wr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch from a compacted revision: no answer")
	}
}
