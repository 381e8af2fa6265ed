package testutil

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
)

// NATSEngines start a NATS engine with JetStream for a test and return its
// client URL: a real nats-server process (Debian's, older than the module)
// and the server embedded from the module. Tests of a package that talks
// to NATS run against both.
var NATSEngines = map[string]func(t *testing.T) string{
	"process": func(t *testing.T) string { return StartNATS(t).URL },
	"embedded": func(t *testing.T) string {
		s, err := natsembed.Start(natsembed.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s.ClientURL()
	},
}

// JetStream connects to the NATS server at url until the end of the test.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// NATSProcess is a real nats-server process started by a test.
type NATSProcess struct {
	URL  string // client URL, nats://127.0.0.1:port
	t    testing.TB
	bin  string
	args []string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	out  *Buffer
}

// StartNATS starts a real nats-server process with JetStream on a free
// loopback port, its store in a temporary directory, and stops it at the end
// of the test. extra is appended to its command line (for example "--user",
// "u", "--pass", "p"). It skips the test when the nats-server binary is
// absent (.ci/run installs it).
func StartNATS(t testing.TB, extra ...string) *NATSProcess {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		if bin, err = exec.LookPath("/usr/sbin/nats-server"); err != nil {
			t.Skip("nats-server not installed (.ci/run installs it)")
		}
	}
	port := strconv.Itoa(FreePort(t))
	p := &NATSProcess{
		t:    t,
		bin:  bin,
		args: append([]string{"-a", "127.0.0.1", "-p", port, "-js", "-sd", t.TempDir()}, extra...),
		addr: net.JoinHostPort("127.0.0.1", port),
	}
	p.URL = "nats://" + p.addr
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start starts the process again after Stop, on the same port and store.
func (p *NATSProcess) Start() {
	p.t.Helper()
	p.out = new(Buffer)
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start nats-server: %v", err)
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(p.cmd)
	Eventually(p.t, 10*time.Second, func() bool {
		select {
		case <-done:
			p.t.Fatalf("nats-server exited early:\n%s", p.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}, "nats-server listening on %s", p.addr)
}

// Stop kills the process and waits for it to exit. Stopping twice is a no-op.
func (p *NATSProcess) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
