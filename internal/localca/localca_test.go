package localca

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateKeepsOneCAWithPrivateKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	ca, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, KeyName): 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %o, want %o", name, got, want)
		}
	}
	again, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate().Equal(ca.Certificate()) {
		t.Error("second LoadOrCreate made a new CA, want the kept one")
	}
	bundle, err := os.ReadFile(ca.BundleFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("bundle holds no certificate")
	}
	leaf, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("leaf does not verify against the bundle: %v", err)
	}
}

func TestLoadMissingAndCorrupt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(empty dir) = %v, want ErrNotExist", err)
	}
	os.WriteFile(filepath.Join(dir, CertName), []byte("not a certificate"), 0o644)
	os.WriteFile(filepath.Join(dir, KeyName), []byte("not a key"), 0o600)
	if _, err := LoadOrCreate(dir); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadOrCreate(corrupt) = %v, want a parse error (and the files left alone)", err)
	}
}

func TestIssueNamesAndConstraints(t *testing.T) {
	t.Parallel()
	ca, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(ca.Certificate().Raw)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parsed)
	leaf, err := ca.Issue("localhost", "127.0.0.1", "::1", "192.168.1.20")
	if err != nil {
		t.Fatal(err)
	}
	if life := leaf.Leaf.NotAfter.Sub(leaf.Leaf.NotBefore); life > 8*24*time.Hour {
		t.Errorf("leaf lives %v, want about a week", life)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "192.168.1.20"} {
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	for _, name := range []string{"example.com", "8.8.8.8", "localhost.example.com"} {
		if _, err := ca.Issue(name); !errors.Is(err, ErrNotPermitted) {
			t.Errorf("Issue(%q) = %v, want ErrNotPermitted", name, err)
		}
	}
	// A leaf signed for a public name anyway is refused by verifiers: the
	// constraints are in the CA certificate, not only in Issue.
	loose := *ca.cert
	loose.PermittedDNSDomains = append(loose.PermittedDNSDomains, "example.com")
	ca.cert = &loose
	bad, err := ca.Issue("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Error("a leaf for example.com verified, want a name constraint failure")
	}
}

func TestIssuerRenews(t *testing.T) {
	t.Parallel()
	ca, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.NewIssuer("localhost")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := is.GetCertificate(nil)
	same, _ := is.GetCertificate(nil)
	if same != first {
		t.Error("a fresh leaf was replaced")
	}
	ca.now = func() time.Time { return time.Now().Add(6*24*time.Hour + time.Hour) }
	next, err := is.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if next == first || !next.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("a leaf a day from expiry was not renewed")
	}
}

// Gateways started together in one empty data directory end up with one CA:
// before the lock, two of them could write a key and a certificate of two
// different CAs, and every start after that failed.
func TestLoadOrCreateConcurrently(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	const n = 8
	cas := make([]*CA, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cas[i], errs[i] = LoadOrCreate(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreate #%d: %v", i, errs[i])
		}
		if !cas[i].Certificate().Equal(cas[0].Certificate()) {
			t.Errorf("LoadOrCreate #%d made a CA of its own", i)
		}
	}
	if _, err := Load(dir); err != nil {
		t.Errorf("Load after concurrent starts: %v", err)
	}
}
