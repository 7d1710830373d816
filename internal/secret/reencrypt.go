package secret

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-serving/kiln/api/errdefs"
	"github.com/kiln-serving/kiln/internal/secret/encryption"
	"github.com/kiln-serving/kiln/internal/store"
)

// ReencryptResult counts what Reencrypt did.
type ReencryptResult struct {
	// Rewritten secrets were plain text or sealed under an older key.
	Rewritten int
	// Current secrets were already sealed under the write key.
	Current int
	// Before counts the secrets found under each key name ("" = plain
	// text) before any rewrite.
	Before map[string]int
}

// maxReencryptAttempts bounds the retries of one secret racing with API
// writes; each lost race means someone else just rewrote it.
const maxReencryptAttempts = 5

// Reencrypt rewrites every secret that is not sealed under the write key,
// each with a compare-and-swap on the revision it read, so a concurrent
// API update is never overwritten and running it twice is harmless. Once
// it returns nil, keys other than the write key may be removed from the
// key file — provided every apiserver already seals with the write key.
// Errors: encryption.ErrDecrypt (naming the secret and key) when a value
// cannot be opened; the pass stops there, having rewritten what came
// before.
func (s *Store) Reencrypt(ctx context.Context) (ReencryptResult, error) {
	res := ReencryptResult{Before: map[string]int{}}
	if s.keys == nil {
		return res, fmt.Errorf("re-encrypt secrets: no encryption key file: %w", errdefs.ErrInvalidArgument)
	}
	kvs, _, err := s.st.List(ctx, store.SecretsPrefix)
	if err != nil {
		return res, fmt.Errorf("re-encrypt secrets: list: %w", err)
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	for _, kv := range kvs {
		res.Before[encryption.KeyName(kv.Value)]++
		rewritten, err := s.reencryptOne(ctx, kv)
		if err != nil {
			return res, fmt.Errorf("re-encrypt secret %s: %w", strings.TrimPrefix(kv.Key, store.SecretsPrefix), err)
		}
		if rewritten {
			res.Rewritten++
		} else {
			res.Current++
		}
	}
	return res, nil
}

func (s *Store) reencryptOne(ctx context.Context, kv store.KV) (bool, error) {
	for range maxReencryptAttempts {
		plain, current, err := s.keys.Open(kv.Key, kv.Value)
		if err != nil {
			return false, err
		}
		if current {
			return false, nil
		}
		sealed, err := s.keys.Seal(kv.Key, plain)
		if err != nil {
			return false, err
		}
		_, err = s.st.Put(ctx, kv.Key, sealed, store.IfRevision(kv.ModRevision))
		if err == nil {
			return true, nil
		}
		if !errdefs.IsConflict(err) {
			return false, err
		}
		// Changed since listed: reread and decide again.
		if kv, err = s.st.Get(ctx, kv.Key); errdefs.IsNotFound(err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("still changing after %d attempts: %w", maxReencryptAttempts, errdefs.ErrConflict)
}
