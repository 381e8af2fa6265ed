// Package localca owns the local certificate authority that lets the
// gateway answer wss:// and https:// with no certificate configured: a CA
// created once in a data directory (ECDSA P-256, ten years, name-constrained
// to loopback and private addresses, localhost and .local names), and
// short-lived leaf certificates it issues for the listener. It also writes
// the bundle (system roots plus the CA) that clients replacing their roots
// with one file (SSL_CERT_FILE, AWS_CA_BUNDLE) need.
package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// File names inside the data directory.
const (
	CertName   = "ca.pem"     // the CA certificate, to trust
	KeyName    = "ca-key.pem" // the CA private key, mode 0600
	BundleName = "bundle.pem" // system roots followed by the CA certificate
	lockName   = ".lock"      // held while the CA is created
)

const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 7 * 24 * time.Hour
	// leafRenew is how long before its expiry a leaf is replaced.
	leafRenew = 24 * time.Hour
)

// ErrNotPermitted is returned by Issue for a name the CA's constraints do
// not allow it to sign for.
var ErrNotPermitted = errors.New("localca: name outside the local CA's constraints")

// The CA may sign only for these: a leaked key cannot impersonate a public site.
var (
	permittedDNS = []string{"localhost", "local"}
	permittedIPs = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
)

// CA is a loaded local CA. It is safe for concurrent use.
type CA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	now  func() time.Time
}

// Dir returns the data directory the CA lives in.
func (ca *CA) Dir() string { return ca.dir }

// CertFile returns the path of the CA certificate.
func (ca *CA) CertFile() string { return filepath.Join(ca.dir, CertName) }

// BundleFile returns the path of the bundle of system roots and the CA.
func (ca *CA) BundleFile() string { return filepath.Join(ca.dir, BundleName) }

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Load returns the CA kept in dir, or an error wrapping fs.ErrNotExist when
// there is none.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertName))
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyName))
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("localca: %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("localca: %s: the key is not ECDSA", filepath.Join(dir, KeyName))
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("localca: %s: %w", filepath.Join(dir, CertName), err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("localca: %s is not a CA certificate", filepath.Join(dir, CertName))
	}
	return &CA{dir: dir, cert: cert, key: key, now: time.Now}, nil
}

// LoadOrCreate returns the CA kept in dir, creating dir (0700) and the CA
// when there is none yet. It also rewrites the bundle, whose system roots
// may have changed.
func LoadOrCreate(dir string) (*CA, error) {
	ca, err := Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = loadOrCreateLocked(dir)
	}
	if err != nil {
		return nil, err
	}
	if err := ca.writeBundle(); err != nil {
		return nil, err
	}
	return ca, nil
}

// loadOrCreateLocked creates the CA under dir's lock, unless another
// process created it while this one waited for the lock.
func loadOrCreateLocked(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ca, err := Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return create(dir)
	}
	return ca, err
}

func create(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	var ips []*net.IPNet
	for _, s := range permittedIPs {
		_, n, _ := net.ParseCIDR(s)
		ips = append(ips, n)
	}
	now := time.Now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:                serial(),
		Subject:                     pkix.Name{Organization: []string{"Switchboard local CA"}, CommonName: "Switchboard local CA " + host},
		NotBefore:                   now.Add(-time.Hour),
		NotAfter:                    now.Add(caLifetime),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         permittedDNS,
		PermittedIPRanges:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	// The key first: a certificate without its key is never left behind.
	if err := writeFile(filepath.Join(dir, KeyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, CertName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return &CA{dir: dir, cert: cert, key: key, now: time.Now}, nil
}

// writeFile writes a file whole or not at all, with mode perm.
func writeFile(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("localca: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("localca: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	return nil
}

// systemRootFiles are where Linux distributions, the BSDs and macOS keep
// their bundle of trusted roots (the first found is used).
var systemRootFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
	"/usr/local/etc/ssl/cert.pem",
}

// writeBundle writes the system roots followed by the CA, so that a client
// told to trust only one file still reaches public sites.
func (ca *CA) writeBundle() error {
	var b []byte
	for _, f := range systemRootFiles {
		if data, err := os.ReadFile(f); err == nil {
			b = append(data, '\n')
			break
		}
	}
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return writeFile(ca.BundleFile(), b, 0o644)
}

// PEM returns the CA certificate in PEM form.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Permits reports whether the CA may sign for host (a DNS name or an IP).
func (ca *CA) Permits(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, n := range ca.cert.PermittedIPRanges {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range ca.cert.PermittedDNSDomains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// Issue returns a leaf certificate for hosts (DNS names or IPs), valid for
// a week, chained to the CA.
func (ca *CA) Issue(hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		return nil, errors.New("localca: issue: no host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Switchboard"}, CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if !ca.Permits(h) {
			return nil, fmt.Errorf("%w: %q", ErrNotPermitted, h)
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// Issuer hands out a leaf for a fixed set of hosts, issuing a new one when
// the current one is a day from expiry. Its GetCertificate fits
// tls.Config.GetCertificate. It is safe for concurrent use.
type Issuer struct {
	ca    *CA
	hosts []string
	mu    sync.Mutex
	leaf  *tls.Certificate
}

// NewIssuer returns an Issuer of leaves for hosts and issues the first.
func (ca *CA) NewIssuer(hosts ...string) (*Issuer, error) {
	leaf, err := ca.Issue(hosts...)
	if err != nil {
		return nil, err
	}
	return &Issuer{ca: ca, hosts: hosts, leaf: leaf}, nil
}

// GetCertificate returns the current leaf, renewed when needed.
func (is *Issuer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.ca.now().After(is.leaf.Leaf.NotAfter.Add(-leafRenew)) {
		leaf, err := is.ca.Issue(is.hosts...)
		if err != nil {
			return nil, err
		}
		is.leaf = leaf
	}
	return is.leaf, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
