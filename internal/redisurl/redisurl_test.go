package redisurl

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw            string
		addr, user, password string
		db                   int
		tls                  bool
	}{
		{name: "plain", raw: "redis://127.0.0.1:6379", addr: "127.0.0.1:6379"},
		{name: "db", raw: "redis://127.0.0.1:6380/3", addr: "127.0.0.1:6380", db: 3},
		{name: "password", raw: "redis://:s3cret@h:1", addr: "h:1", password: "s3cret"},
		{name: "acl", raw: "redis://alice:pw@h:1", addr: "h:1", user: "alice", password: "pw"},
		{name: "tls", raw: "rediss://h:6380", addr: "h:6380", tls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := Parse(tc.raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.raw, err)
			}
			if o.Addr != tc.addr || o.Username != tc.user || o.Password != tc.password || o.DB != tc.db || (o.TLSConfig != nil) != tc.tls {
				t.Errorf("Parse(%q) = addr %q user %q password %q db %d tls %v; want %q %q %q %d %v",
					tc.raw, o.Addr, o.Username, o.Password, o.DB, o.TLSConfig != nil, tc.addr, tc.user, tc.password, tc.db, tc.tls)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw   string
		unsupported bool
		mention     string
	}{
		{name: "cluster hosts", raw: "redis://a:1,b:2", unsupported: true, mention: "Redis Cluster"},
		{name: "cluster addr", raw: "redis://a:1?addr=b:2", unsupported: true, mention: "addr"},
		{name: "sentinel scheme", raw: "redis+sentinel://:pw@a:26379/mymaster", unsupported: true, mention: "Sentinel"},
		{name: "master name", raw: "redis://a:1?master_name=m", unsupported: true, mention: "master_name"},
		{name: "http", raw: "http://a:1", mention: "scheme"},
		{name: "garbage", raw: "redis://:pw@a:1/notadb", mention: "db"},
		{name: "unknown option", raw: "redis://a:1?frobnicate=1", mention: "frobnicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.raw)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want refused", tc.raw)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("Parse(%q) = %v; errors.Is(ErrUnsupported) = %v, want %v", tc.raw, err, !tc.unsupported, tc.unsupported)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Parse(%q) = %v, want it to mention %q", tc.raw, err, tc.mention)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("Parse(%q) = %v: leaks the password", tc.raw, err)
			}
		})
	}
}
