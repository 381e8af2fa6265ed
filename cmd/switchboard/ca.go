package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/localca"
	"github.com/switchboard-gateway/switchboard/internal/tlsmux"
)

// localTLS loads (or creates) the local CA in dir and returns ln serving TLS
// with its leaf beside plain connections.
func localTLS(ln net.Listener, dir string, sniff time.Duration) (net.Listener, *localca.CA, error) {
	ca, err := localca.LoadOrCreate(dir)
	if err != nil {
		return nil, nil, err
	}
	is, err := ca.NewIssuer(leafHosts(ca, ln.Addr())...)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: is.GetCertificate,
		// WebSocket upgrades need HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	}
	return tlsmux.New(ln, cfg, tlsmux.Options{SniffTimeout: sniff}), ca, nil
}

// leafHosts are the names the listener's leaf certificate is for: localhost
// and the loopback addresses, the listen address, or, listening on every
// interface, their addresses; the CA's constraints leave public ones out.
func leafHosts(ca *localca.CA, addr net.Addr) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	var ips []net.IP
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					ips = append(ips, n.IP)
				}
			}
		}
	} else if ok {
		ips = append(ips, ta.IP)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && ca.Permits(ip.String()) {
			hosts = append(hosts, ip.String())
		}
	}
	return hosts
}

// caHelp is the help text of `switchboard ca`.
var caHelp = &cli.Help{
	Usage: []string{"switchboard ca [--pem] [--data-dir DIR]"},
	Text: `Prints where the local CA behind the gateway's wss:// and https:// is kept,
and how to make browsers and other clients trust it; with --pem, the CA
certificate itself. 'switchboard serve' creates the CA at its first start.`,
	Examples: []string{
		`switchboard ca`,
		`switchboard ca --pem > switchboard-ca.pem`,
	},
}

// caCommand prints where the local CA is and how to trust it, or its PEM.
func caCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("ca")
	pemOut := fs.Bool("pem", false, "print the CA certificate in PEM form")
	dataDir := fs.String("data-dir", "", "the data directory (env SWITCHBOARD_DATA_DIR; default $XDG_DATA_HOME/switchboard or ~/.local/share/switchboard)")
	if err := cli.ParseFlags(fs, args, caHelp, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("ca: unexpected argument %q", fs.Arg(0))
	}
	dir := config.DataDir(getenv, *dataDir)
	if *dataDir != "" {
		dir = *dataDir
	}
	if dir == "" {
		return errors.New("ca: no data directory: set SWITCHBOARD_DATA_DIR or --data-dir")
	}
	ca, err := localca.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ca: no local CA in %s yet: 'switchboard serve' creates it", dir)
	}
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if *pemOut {
		_, err := stdout.Write(ca.PEM())
		return err
	}
	c := ca.Certificate()
	fmt.Fprintf(stdout, `%s
  %s, valid until %s
  It signs only for localhost, *.localhost, *.local, loopback and private addresses.
  Hosted functions trust it already. Other clients:
    Node:        NODE_EXTRA_CA_CERTS=%[1]s
    curl:        curl --cacert %[1]s https://127.0.0.1:3001/healthz
    Python/AWS:  AWS_CA_BUNDLE=%[4]s  (system roots plus this CA)
    Firefox:     Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import
    Chrome:      Settings > Privacy and security > Security > Manage certificates > Authorities > Import
  To stop trusting it, remove it from where you imported it; to replace it,
  delete %[5]s (the gateway creates a new one at its next start).
`, ca.CertFile(), c.Subject.CommonName, c.NotAfter.Format("2006-01-02"), ca.BundleFile(), ca.Dir())
	return nil
}
