// Package redisurl turns a cluster URL into go-redis client options for the
// Redis bus and directory. It accepts one standalone server
// (redis://[user:password@]host:port[/db], rediss:// for TLS, unix://) and
// refuses, with a message saying so, the forms Switchboard does not support:
// Redis Cluster (several hosts) and Sentinel.
package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrUnsupported is wrapped by Parse for Redis deployments Switchboard does
// not support (Cluster, Sentinel).
var ErrUnsupported = errors.New("redisurl: unsupported redis deployment")

// Parse parses raw with go-redis's ParseURL after refusing the forms it
// would misread or that need another client: a comma-separated host list
// (Redis Cluster), a sentinel scheme or a master name (Sentinel). The
// password never appears in the returned errors.
func Parse(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redisurl: parse %q: not a URL", redact(raw))
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "redis", "rediss", "unix":
	case "redis+sentinel", "rediss+sentinel", "sentinel":
		return nil, fmt.Errorf("%w: %s: Sentinel is not supported; point the cluster URL at the current primary (redis://host:port)", ErrUnsupported, u.Redacted())
	default:
		return nil, fmt.Errorf("redisurl: %s: scheme %q not supported, want redis://, rediss:// or unix://", u.Redacted(), u.Scheme)
	}
	if strings.Contains(u.Host, ",") {
		return nil, fmt.Errorf("%w: %s: several hosts (Redis Cluster) are not supported; use one standalone server", ErrUnsupported, u.Redacted())
	}
	q := u.Query()
	for _, k := range []string{"addr", "master_name", "sentinel_password", "sentinel_username"} {
		if q.Has(k) {
			return nil, fmt.Errorf("%w: %s: option %q (Redis Cluster or Sentinel) is not supported", ErrUnsupported, u.Redacted(), k)
		}
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis's messages do not include the password.
		return nil, fmt.Errorf("redisurl: %s: %w", u.Redacted(), err)
	}
	return opts, nil
}

// redact hides everything after the scheme of a URL that did not parse,
// since it may hold a password.
func redact(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		return raw[:i+3] + "…"
	}
	return "…"
}

// CheckServer asks the server behind rdb which mode it runs in and refuses
// a Redis Cluster node or a Sentinel with an error wrapping ErrUnsupported,
// since a URL cannot tell them from a standalone server. Run it once at
// start, before the bus and directory use rdb.
func CheckServer(ctx context.Context, rdb redis.UniversalClient) error {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("redisurl: check server: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		mode, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_mode:")
		if !ok {
			continue
		}
		switch mode {
		case "standalone":
			return nil
		case "cluster":
			return fmt.Errorf("%w: the server runs in Redis Cluster mode; use a standalone server (cluster-enabled no)", ErrUnsupported)
		case "sentinel":
			return fmt.Errorf("%w: the server is a Sentinel; point the cluster URL at the current primary", ErrUnsupported)
		}
		return fmt.Errorf("%w: the server runs in mode %q, want standalone", ErrUnsupported, mode)
	}
	return errors.New("redisurl: check server: INFO has no redis_mode")
}
