package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/store"
)

// Store is a store.Store backed by an etcd client.
type Store struct {
	c *clientv3.Client
}

var _ store.Store = (*Store)(nil)

// New wraps an existing client. The caller keeps ownership of c.
func New(c *clientv3.Client) *Store { return &Store{c: c} }

// Dial connects to etcd endpoints over plain connections.
func Dial(endpoints []string, dialTimeout time.Duration) (*Store, error) {
	return DialTLS(endpoints, dialTimeout, nil)
}

// DialTLS connects to etcd endpoints; tlsConfig (optional) secures and
// authenticates the connection.
func DialTLS(endpoints []string, dialTimeout time.Duration, tlsConfig *tls.Config) (*Store, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: dialTimeout, TLS: tlsConfig, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w: %v", endpoints, errdefs.ErrUnavailable, err)
	}
	return &Store{c: c}, nil
}

// Client returns the underlying etcd client (for the election package).
func (s *Store) Client() *clientv3.Client { return s.c }

// Close closes the client.
func (s *Store) Close() error { return s.c.Close() }

func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	return fmt.Errorf("%s %q: %w: %v", op, key, errdefs.ErrUnavailable, err)
}

func toKV(kv *clientv3.GetResponse, i int) store.KV {
	k := kv.Kvs[i]
	return store.KV{Key: string(k.Key), Value: k.Value, CreateRevision: k.CreateRevision, ModRevision: k.ModRevision, Lease: k.Lease}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return store.KV{}, wrap("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return store.KV{}, fmt.Errorf("get %q: %w", key, errdefs.ErrNotFound)
	}
	return toKV(resp, 0), nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, wrap("list", prefix, err)
	}
	out := make([]store.KV, 0, len(resp.Kvs))
	for i := range resp.Kvs {
		out = append(out, toKV(resp, i))
	}
	return out, resp.Header.Revision, nil
}

// ListAt implements store.Store.
func (s *Store) ListAt(ctx context.Context, prefix string, rev int64) ([]store.KV, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.c.Get(ctx, prefix, opts...)
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return nil, 0, fmt.Errorf("list %q at revision %d: %w", prefix, rev, errdefs.ErrExpired)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return nil, 0, fmt.Errorf("list %q at revision %d: revision is in the future: %w", prefix, rev, errdefs.ErrInvalidArgument)
	case err != nil:
		return nil, 0, wrap("list", prefix, err)
	}
	out := make([]store.KV, 0, len(resp.Kvs))
	for i := range resp.Kvs {
		out = append(out, toKV(resp, i))
	}
	if rev <= 0 {
		rev = resp.Header.Revision
	}
	return out, rev, nil
}

// Compact discards the history before rev, as etcd's auto-compaction does;
// reads and watches from before it then fail with errdefs.ErrExpired.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.c.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return wrap("compact", "", err)
}

func conditions(key string, o store.WriteOptions) []clientv3.Cmp {
	var cmps []clientv3.Cmp
	switch {
	case o.ExpectRevision == 0:
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	case o.ExpectRevision > 0:
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", o.ExpectRevision))
	}
	if o.Fence != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(o.Fence.Key), "=", o.Fence.Rev))
	}
	return cmps
}

// failure explains why a conditional transaction did not succeed by reading
// the fence and the key inside the same transaction's else branch.
func failure(op, key string, o store.WriteOptions, resp *clientv3.TxnResponse) error {
	idx := 0
	var cur *clientv3.GetResponse
	if len(resp.Responses) > idx {
		cur = (*clientv3.GetResponse)(resp.Responses[idx].GetResponseRange())
		idx++
	}
	if o.Fence != nil && len(resp.Responses) > idx {
		f := (*clientv3.GetResponse)(resp.Responses[idx].GetResponseRange())
		if len(f.Kvs) == 0 || f.Kvs[0].CreateRevision != o.Fence.Rev {
			return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrNotLeader)
		}
	}
	exists := cur != nil && len(cur.Kvs) > 0
	switch {
	case o.ExpectRevision == 0 && exists:
		return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrAlreadyExists)
	case o.ExpectRevision > 0 && !exists:
		return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrNotFound)
	case o.ExpectRevision > 0:
		return fmt.Errorf("%s %q: stored at revision %d, caller expected %d: %w", op, key, cur.Kvs[0].ModRevision, o.ExpectRevision, errdefs.ErrConflict)
	}
	return fmt.Errorf("%s %q: %w", op, key, errdefs.ErrConflict)
}

func (s *Store) txn(ctx context.Context, op, key string, o store.WriteOptions, then clientv3.Op) (*clientv3.TxnResponse, error) {
	elseOps := []clientv3.Op{clientv3.OpGet(key)}
	if o.Fence != nil {
		elseOps = append(elseOps, clientv3.OpGet(o.Fence.Key))
	}
	resp, err := s.c.Txn(ctx).If(conditions(key, o)...).Then(then).Else(elseOps...).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil, fmt.Errorf("%s %q: lease %x: %w", op, key, o.Lease, errdefs.ErrNotFound)
		}
		return nil, wrap(op, key, err)
	}
	if !resp.Succeeded {
		return nil, failure(op, key, o, resp)
	}
	return resp, nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts ...store.WriteOption) (int64, error) {
	o := store.ResolveWriteOptions(opts)
	var popts []clientv3.OpOption
	if o.Lease != 0 {
		popts = append(popts, clientv3.WithLease(clientv3.LeaseID(o.Lease)))
	}
	resp, err := s.txn(ctx, "put", key, o, clientv3.OpPut(key, string(value), popts...))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string, opts ...store.WriteOption) error {
	o := store.ResolveWriteOptions(opts)
	resp, err := s.txn(ctx, "delete", key, o, clientv3.OpDelete(key))
	if err != nil {
		return err
	}
	if d := resp.Responses[0].GetResponseDeleteRange(); d != nil && d.Deleted == 0 {
		return fmt.Errorf("delete %q: %w", key, errdefs.ErrNotFound)
	}
	return nil
}

// Watch implements store.Store.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan store.WatchResponse {
	out := make(chan store.WatchResponse, 16)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	wc := s.c.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	go func() {
		defer close(out)
		for wr := range wc {
			var resp store.WatchResponse
			if wr.CompactRevision != 0 {
				resp.Err = fmt.Errorf("watch %q from revision %d: compacted at %d: %w", prefix, fromRev, wr.CompactRevision, errdefs.ErrExpired)
			} else if err := wr.Err(); err != nil {
				resp.Err = wrap("watch", prefix, err)
			}
			resp.Revision = wr.Header.Revision
			for _, ev := range wr.Events {
				e := store.Event{KV: store.KV{Key: string(ev.Kv.Key), Value: ev.Kv.Value, CreateRevision: ev.Kv.CreateRevision, ModRevision: ev.Kv.ModRevision, Lease: ev.Kv.Lease}}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = store.EventDelete
					if ev.PrevKv != nil {
						e.KV.Value = ev.PrevKv.Value
						e.KV.CreateRevision = ev.PrevKv.CreateRevision
					}
				}
				resp.Events = append(resp.Events, e)
			}
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
			if resp.Err != nil {
				return
			}
		}
		if ctx.Err() == nil {
			select {
			case out <- store.WatchResponse{Err: fmt.Errorf("watch %q: %w: channel closed", prefix, errdefs.ErrUnavailable)}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// GrantLease implements store.Store.
func (s *Store) GrantLease(ctx context.Context, ttl time.Duration) (int64, <-chan struct{}, error) {
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	g, err := s.c.Grant(ctx, secs)
	if err != nil {
		return 0, nil, wrap("grant lease", "", err)
	}
	ka, err := s.c.KeepAlive(ctx, g.ID)
	if err != nil {
		return 0, nil, wrap("keep lease alive", "", err)
	}
	lost := make(chan struct{})
	go func() {
		for range ka {
		}
		close(lost)
	}()
	return int64(g.ID), lost, nil
}

// RevokeLease implements store.Store.
func (s *Store) RevokeLease(ctx context.Context, id int64) error {
	if _, err := s.c.Revoke(ctx, clientv3.LeaseID(id)); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("revoke lease %x: %w", id, errdefs.ErrNotFound)
		}
		return wrap("revoke lease", "", err)
	}
	return nil
}
