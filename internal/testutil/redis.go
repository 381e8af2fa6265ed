package testutil

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a redis-server process started by a test on a loopback
// port. Kill, Stop, Cont and Start let a test make the engine fail and come
// back on the same address.
type RedisServer struct {
	// Addr is host:port on 127.0.0.1.
	Addr string

	t    testing.TB
	bin  string
	args []string
	out  *Buffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedis starts Debian's redis-server on a free loopback port, with no
// persistence, and stops it at the end of the test. extra arguments are
// passed on (e.g. "--requirepass", "secret"). The test is skipped when
// redis-server is not installed (.ci/run installs it).
func StartRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	port := FreePort(t)
	s := &RedisServer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		t:    t,
		bin:  bin,
		out:  &Buffer{},
		args: append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no"}, extra...),
	}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Start starts the server again on the same address after Kill and waits
// until it accepts connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("redis-server on %s already running", s.Addr)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for !redisAnswers(s.Addr) {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s not answering after 10s; output:\n%s", s.Addr, s.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill ends the server with SIGKILL and waits for it to exit. Killing a
// stopped server is a no-op.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Stop freezes the server with SIGSTOP: connections stay open but nothing
// is answered or delivered until Cont.
func (s *RedisServer) Stop() { s.signal(syscall.SIGSTOP) }

// Cont resumes a server frozen by Stop.
func (s *RedisServer) Cont() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// redisAnswers reports whether a server on addr answers a PING with any
// reply (PONG, or an authentication error when a password is required).
func redisAnswers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && len(line) > 0 && (line[0] == '+' || line[0] == '-')
}
