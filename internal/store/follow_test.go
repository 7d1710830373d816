package store

import (
	"slices"
	"testing"
)

func TestFeedOfKeepsEachKeysFinalState(t *testing.T) {
	put := func(k string, rev int64) Event {
		return Event{Type: EventPut, KV: KV{Key: k, Value: []byte(k), ModRevision: rev}}
	}
	del := func(k string, rev int64) Event { return Event{Type: EventDelete, KV: KV{Key: k, ModRevision: rev}} }
	f := feedOf(3, WatchResponse{Revision: 9, Events: []Event{
		put("a", 5), del("a", 6), // created and gone: a delete only
		del("b", 5), put("b", 7), // gone and back: a put only, with the newest value
		put("c", 7), put("c", 8),
	}})
	var puts []string
	for _, kv := range f.Puts {
		puts = append(puts, kv.Key)
	}
	if !slices.Equal(f.Dels, []string{"a"}) || !slices.Equal(puts, []string{"b", "c"}) || f.Puts[1].ModRevision != 8 {
		t.Fatalf("dels=%v puts=%+v", f.Dels, f.Puts)
	}
	if f.Src != 3 || f.Rev != 9 {
		t.Fatalf("src=%d rev=%d", f.Src, f.Rev)
	}
}
