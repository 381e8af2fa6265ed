package testutil

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
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
	store := t.TempDir()
	// FreePort's port is reserved against other tests, not against every
	// process on the machine: one may take it before nats-server binds it,
	// and then a dial would reach that one.
	// A start that does not end with nats-server itself answering on the
	// port is made again on another.
	for attempt := 1; ; attempt++ {
		port := strconv.Itoa(FreePort(t))
		p := &NATSProcess{
			t:    t,
			bin:  bin,
			args: append([]string{"-a", "127.0.0.1", "-p", port, "-js", "-sd", store}, extra...),
			addr: net.JoinHostPort("127.0.0.1", port),
		}
		p.URL = "nats://" + p.addr
		err := p.start()
		if err == nil {
			t.Cleanup(p.Stop)
			return p
		}
		p.Stop()
		if attempt == 3 {
			t.Fatalf("start nats-server: %v", err)
		}
	}
}

// Start starts the process again after Stop, on the same port and store.
func (p *NATSProcess) Start() {
	p.t.Helper()
	if err := p.start(); err != nil {
		p.t.Fatalf("start nats-server again: %v", err)
	}
}

// start runs the process and waits, for at most ten seconds, until it says
// it is ready and a NATS server answers on its port: its own, as it did not
// exit for want of the port.
func (p *NATSProcess) start() error {
	p.out = new(Buffer)
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return err
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(p.cmd)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("nats-server exited early:\n%s", p.out.String())
		default:
		}
		if strings.Contains(p.out.String(), "Server is ready") && p.answers() {
			return nil
		}
	}
	return fmt.Errorf("nats-server not answering on %s after 10s:\n%s", p.addr, p.out.String())
}

// answers reports whether a NATS server answers on p.addr: its INFO line.
func (p *NATSProcess) answers() bool {
	c, err := net.DialTimeout("tcp", p.addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	var b [5]byte
	_, err = io.ReadFull(c, b[:])
	return err == nil && string(b[:]) == "INFO "
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
