package redisurl_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/redisurl"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func TestCheckServer(t *testing.T) {
	t.Parallel()
	standalone := testutil.StartRedis(t)
	cluster := testutil.StartRedis(t, "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
	for _, tc := range []struct {
		name        string
		addr        string
		unsupported bool
	}{
		{"standalone", standalone.Addr, false},
		{"cluster", cluster.Addr, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := redisurl.Parse("redis://" + tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opts)
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err = redisurl.CheckServer(ctx, rdb)
			if got := errors.Is(err, redisurl.ErrUnsupported); got != tc.unsupported {
				t.Errorf("CheckServer = %v; unsupported %v, want %v", err, got, tc.unsupported)
			}
			if tc.unsupported && !strings.Contains(err.Error(), "Redis Cluster") {
				t.Errorf("CheckServer = %v, want it to name Redis Cluster", err)
			}
			if !tc.unsupported && err != nil {
				t.Errorf("CheckServer = %v, want nil", err)
			}
		})
	}
	// No server: an error, not unsupported.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := redisurl.CheckServer(ctx, rdb); err == nil || errors.Is(err, redisurl.ErrUnsupported) {
		t.Errorf("CheckServer with no server = %v, want a connection error", err)
	}
}
