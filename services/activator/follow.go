package activator

import (
	"context"
	"log/slog"
	"time"

	"github.com/kiln-serving/kiln/internal/store"
)

// feed is one batch of changes under one prefix, sent by a follower to the
// goroutine that owns the state. Followers never touch that state.
type feed struct {
	src int
	// reset: puts is the whole prefix (a list); drop everything known
	// about src first. Otherwise puts and dels are changes since the last feed.
	reset bool
	puts  []store.KV
	dels  []string
	// rev is the store revision src is now known at.
	rev int64
}

// follow lists prefix and watches it from the list's revision+1, sending
// every change to out; when the watch fails (compaction, etcd leader loss)
// it lists again. It returns when ctx ends.
func follow(ctx context.Context, st store.Store, src int, prefix string, out chan<- feed, log *slog.Logger) {
	retry := 100 * time.Millisecond
	for ctx.Err() == nil {
		kvs, rev, err := st.List(ctx, prefix)
		if err != nil {
			log.Warn("list failed; retrying", "prefix", prefix, "error", err, "retry_in", retry)
			if !sleep(ctx, retry) {
				return
			}
			retry = min(2*retry, 5*time.Second)
			continue
		}
		retry = 100 * time.Millisecond
		if !send(ctx, out, feed{src: src, reset: true, puts: kvs, rev: rev}) {
			return
		}
		wctx, cancel := context.WithCancel(ctx)
		for wr := range st.Watch(wctx, prefix, rev+1) {
			if wr.Err != nil {
				log.Warn("watch ended; listing again", "prefix", prefix, "error", wr.Err)
				break
			}
			f := feed{src: src, rev: wr.Revision}
			for _, ev := range wr.Events {
				if ev.Type == store.EventDelete {
					f.dels = append(f.dels, ev.KV.Key)
				} else {
					f.puts = append(f.puts, ev.KV)
				}
				f.rev = max(f.rev, ev.KV.ModRevision)
			}
			if !send(ctx, out, f) {
				cancel()
				return
			}
		}
		cancel()
		// Do not spin if the store keeps closing watches at once.
		if !sleep(ctx, 50*time.Millisecond) {
			return
		}
	}
}

func send(ctx context.Context, out chan<- feed, f feed) bool {
	select {
	case out <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
