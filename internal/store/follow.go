package store

import (
	"context"
	"log/slog"
	"time"
)

// Feed is one batch of changes under one prefix, sent by a follower to the
// goroutine that owns the state. Followers never touch that state.
type Feed struct {
	Src int
	// Reset: Puts is the whole prefix (a list); drop everything known
	// about src first. Otherwise puts and dels are changes since the last feed.
	Reset bool
	Puts  []KV
	Dels  []string
	// rev is the store revision src is now known at.
	Rev int64
}

// Follow lists prefix and watches it from the list's revision+1, sending
// every change to out; when the watch fails (compaction, etcd leader loss)
// it lists again. It returns when ctx ends.
func Follow(ctx context.Context, st Store, src int, prefix string, out chan<- Feed, log *slog.Logger) {
	retry := 100 * time.Millisecond
	for ctx.Err() == nil {
		kvs, rev, err := st.List(ctx, prefix)
		if err != nil {
			log.Warn("list failed; retrying", "prefix", prefix, "error", err, "retry_in", retry)
			if !sleepCtx(ctx, retry) {
				return
			}
			retry = min(2*retry, 5*time.Second)
			continue
		}
		retry = 100 * time.Millisecond
		if !sendFeed(ctx, out, Feed{Src: src, Reset: true, Puts: kvs, Rev: rev}) {
			return
		}
		wctx, cancel := context.WithCancel(ctx)
		for wr := range st.Watch(wctx, prefix, rev+1) {
			if wr.Err != nil {
				log.Warn("watch ended; listing again", "prefix", prefix, "error", wr.Err)
				break
			}
			if !sendFeed(ctx, out, feedOf(src, wr)) {
				cancel()
				return
			}
		}
		cancel()
		// Do not spin if the store keeps closing watches at once.
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return
		}
	}
}

// feedOf folds one watch response into a Feed holding each key's final
// state: consumers apply Dels before Puts, so a key put and then deleted in
// the same response must appear only in Dels (and the reverse only in Puts).
func feedOf(src int, wr WatchResponse) Feed {
	f := Feed{Src: src, Rev: wr.Revision}
	last := map[string]int{} // key → index of its final event
	for i, ev := range wr.Events {
		last[ev.KV.Key] = i
		f.Rev = max(f.Rev, ev.KV.ModRevision)
	}
	for i, ev := range wr.Events {
		if last[ev.KV.Key] != i {
			continue
		}
		if ev.Type == EventDelete {
			f.Dels = append(f.Dels, ev.KV.Key)
		} else {
			f.Puts = append(f.Puts, ev.KV)
		}
	}
	return f
}

func sendFeed(ctx context.Context, out chan<- Feed, f Feed) bool {
	select {
	case out <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
