package netpoll

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/switchboard-gateway/switchboard/internal/workers"
)

// A Watcher stands for one watched connection. It fires at most once per
// arming: after onReady has consumed what it wanted, Rearm asks for the next
// readiness. Rearm and Stop are safe for concurrent use; after Stop no
// further onReady starts, and Stop must come before the connection is
// closed, because the descriptor's number may be reused at once.
type Watcher struct {
	p       *poller
	fd      int32
	gen     int32 // tells this registration from an earlier one of the same fd
	onReady func()

	mu      sync.Mutex
	stopped bool
}

// poller is the process's epoll instance. Its goroutine runs only while a
// connection is watched: the last Stop wakes it through an eventfd to exit.
type poller struct {
	epfd, wakefd int

	mu       sync.Mutex // guards the fields below
	watchers map[int32]*Watcher
	gen      int32
	running  bool
}

var shared = sync.OnceValues(newPoller)

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return &poller{epfd: epfd, wakefd: wakefd, watchers: make(map[int32]*Watcher)}, nil
}

// Watch registers c, armed: onReady runs on a worker (package workers) when c has
// bytes to read, was closed by the peer, or failed. c must be a socket
// (*net.TCPConn, *net.UnixConn); anything else returns ErrUnsupported.
func Watch(c net.Conn, onReady func()) (*Watcher, error) {
	p, err := shared()
	if err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	sc, ok := c.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return nil, ErrUnsupported
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	w := &Watcher{p: p, fd: int32(fd), gen: p.gen, onReady: onReady}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, w.event()); err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	p.watchers[w.fd] = w
	if !p.running {
		p.running = true
		go p.run()
	}
	return w, nil
}

func (w *Watcher) event() *unix.EpollEvent {
	return &unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     w.fd,
		Pad:    w.gen,
	}
}

// Rearm asks for the next readiness. Data already waiting fires at once.
func (w *Watcher) Rearm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		_ = unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_MOD, int(w.fd), w.event())
	}
}

// Stop unregisters the connection. Call it before closing the connection.
func (w *Watcher) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	_ = unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_DEL, int(w.fd), nil)
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watchers[w.fd] == w {
		delete(p.watchers, w.fd)
	}
	if len(p.watchers) == 0 {
		var one = [8]byte{1}
		_, _ = unix.Write(p.wakefd, one[:]) // host byte order: 1 on little-endian, 2^56 on big, both nonzero
	}
}

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	var ready []*Watcher
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			panic("netpoll: epoll_wait: " + err.Error()) // only EBADF/EFAULT/EINVAL: a broken invariant
		}
		ready = ready[:0]
		p.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == -1 {
				var buf [8]byte
				_, _ = unix.Read(p.wakefd, buf[:])
				continue
			}
			if w := p.watchers[ev.Fd]; w != nil && w.gen == ev.Pad {
				ready = append(ready, w)
			}
		}
		if len(p.watchers) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, w := range ready {
			workers.Go(w.onReady)
			ready[i] = nil
		}
	}
}
