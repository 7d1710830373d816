package store

import (
	"context"
	"time"
)

// KV is one stored value with its etcd revisions.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	Lease          int64
}

// EventType tells whether a watch event is a put or a delete.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change seen by a watch. For deletes, KV.Value holds the last
// value the key had.
type Event struct {
	Type EventType
	KV   KV
}

// WatchResponse carries events, or Err when the watch ended (compaction,
// cancel). Revision is the store revision the batch brings the watcher to.
type WatchResponse struct {
	Events   []Event
	Revision int64
	Err      error
}

// Fence makes a write conditional on leadership: the write only succeeds if
// Key still exists with CreateRevision Rev (the election key of the leader).
type Fence struct {
	Key string
	Rev int64
}

// WriteOption adjusts a Put or Delete.
type WriteOption func(*WriteOptions)

// WriteOptions are the resolved options of a write. Implementations read it.
type WriteOptions struct {
	// ExpectRevision: >0 means the key must have this ModRevision; 0 means
	// the key must not exist; -1 (the default) means no condition.
	ExpectRevision int64
	Lease          int64
	Fence          *Fence
}

// IfRevision makes the write a compare-and-swap on the key's ModRevision.
// IfRevision(0) means "create only".
func IfRevision(rev int64) WriteOption { return func(o *WriteOptions) { o.ExpectRevision = rev } }

// WithLease attaches the key to a lease.
func WithLease(id int64) WriteOption { return func(o *WriteOptions) { o.Lease = id } }

// WithFence makes the write succeed only while f's leader still leads.
func WithFence(f *Fence) WriteOption { return func(o *WriteOptions) { o.Fence = f } }

// ResolveWriteOptions applies opts over the defaults.
func ResolveWriteOptions(opts []WriteOption) WriteOptions {
	o := WriteOptions{ExpectRevision: -1}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Store is kiln's state store.
type Store interface {
	// Get returns the key. Errors: errdefs.ErrNotFound, errdefs.ErrUnavailable.
	Get(ctx context.Context, key string) (KV, error)
	// List returns every key under prefix, sorted, and the store revision
	// the list was read at (to start a watch from rev+1).
	List(ctx context.Context, prefix string) ([]KV, int64, error)
	// ListAt is List as the store was at revision rev (rev <= 0: now), for
	// consistent paging and resourceVersion-exact reads. It returns the
	// revision read at. Errors: errdefs.ErrExpired when rev is older than
	// the store's compaction, errdefs.ErrInvalidArgument when rev is in the
	// future, errdefs.ErrUnavailable.
	ListAt(ctx context.Context, prefix string, rev int64) ([]KV, int64, error)
	// Put writes a key and returns the new ModRevision. Errors:
	// errdefs.ErrConflict when IfRevision does not match (ErrAlreadyExists
	// for IfRevision(0) on an existing key), errdefs.ErrNotLeader when the
	// fence failed.
	Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (int64, error)
	// Delete removes a key. Errors: errdefs.ErrNotFound, errdefs.ErrConflict,
	// errdefs.ErrNotLeader, as for Put.
	Delete(ctx context.Context, key string, opts ...WriteOption) error
	// Watch streams changes under prefix from revision fromRev (0 = now).
	// The channel closes when ctx ends. A fromRev older than the store's
	// compaction ends the watch with an Err wrapping errdefs.ErrExpired.
	Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse
	// GrantLease creates a lease and keeps it alive until ctx ends or
	// Revoke is called; lost is closed if the lease expires.
	GrantLease(ctx context.Context, ttl time.Duration) (id int64, lost <-chan struct{}, err error)
	// RevokeLease deletes a lease and every key attached to it.
	RevokeLease(ctx context.Context, id int64) error
}
