package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// maxJWKSBytes caps a JWKS response; real ones are a few KB.
const maxJWKSBytes = 1 << 20

// remoteKeys is the cached JWK Set of one URL.
//
// At most one fetch runs at a time (sem); a fetch on behalf of a token with
// an unknown kid happens only when no fetch was attempted for
// minRefetch, so that tokens with invented kids cannot make the gateway
// hammer the identity provider. mu guards the fields below it and is never
// held during a fetch.
type remoteKeys struct {
	url        string
	client     *http.Client
	timeout    time.Duration
	minRefetch time.Duration
	now        func() time.Time

	sem chan struct{} // one slot: held by the running fetch

	mu          sync.Mutex
	keys        keySet
	lastAttempt time.Time
	lastErr     error // of the last attempt; nil when it succeeded
}

// current returns the keys of the last successful fetch.
func (rk *remoteKeys) current() keySet {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	return rk.keys
}

// fetch downloads and installs the key set. The caller holds sem.
func (rk *remoteKeys) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, rk.timeout)
	defer cancel()
	ks, err := rk.download(ctx)
	rk.mu.Lock()
	defer rk.mu.Unlock()
	rk.lastAttempt, rk.lastErr = rk.now(), err
	if err == nil {
		rk.keys = ks
	}
	return err
}

func (rk *remoteKeys) download(ctx context.Context) (keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rk.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := rk.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch JWKS: response over %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// lock takes the fetch slot, or gives up when ctx ends.
func (rk *remoteKeys) lock(ctx context.Context) error {
	select {
	case rk.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (rk *remoteKeys) unlock() { <-rk.sem }

// refetch fetches the key set again for a token whose kid is unknown, unless
// another caller installed that kid meanwhile or a fetch was attempted less
// than minRefetch ago. It returns the keys to use and the error of the
// fetch that was needed and failed (nil when keys are simply still unknown).
func (rk *remoteKeys) refetch(ctx context.Context, kid string) (keySet, error) {
	if err := rk.lock(ctx); err != nil {
		return nil, err
	}
	defer rk.unlock()
	rk.mu.Lock()
	ks, last, lastErr := rk.keys, rk.lastAttempt, rk.lastErr
	rk.mu.Unlock()
	if _, known := ks.find(kid, ""); known {
		return ks, nil // a concurrent refetch brought it
	}
	if rk.now().Sub(last) < rk.minRefetch {
		return ks, lastErr
	}
	// The fetch outlives a client that hangs up: others may be waiting on it.
	err := rk.fetch(context.WithoutCancel(ctx))
	return rk.current(), err
}

// refreshLoop refetches the key set every interval until ctx ends. A failed
// refresh keeps the previous keys; the next token with an unknown kid, or
// the next tick, tries again.
func (rk *remoteKeys) refreshLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if rk.lock(ctx) != nil {
			return
		}
		err := rk.fetch(ctx)
		rk.unlock()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return
		}
	}
}
