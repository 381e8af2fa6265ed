package netpoll

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchboard-gateway/switchboard/internal/workers"
)

// A Watcher owns one socket taken over from the Go runtime (see Watch) and
// tells when it is readable or writable. Each side fires at most once per
// arming: after onReadable has read all it could, until the socket had
// nothing more (EAGAIN), Rearm asks for the next bytes; after a Writev
// that found the socket full, ArmWrite asks to be told when it takes more.
// All methods are safe for concurrent use; after Close no callback starts
// and no method touches the descriptor, whose number the kernel may give
// to a new socket at once.
//
// Reading is edge-triggered: the socket is registered once, and the
// kernel reports new bytes, not bytes waiting, so arming for reading costs
// no system call. A reader has read all the socket held when a read
// returned EAGAIN, or returned less than it asked for while HungUp is
// false (epoll(7)): bytes that arrive after such a read fire again. Bytes
// that arrive while reading is not armed are noted (readPending), and
// Rearm tells the reader to read again. Writing is armed with a system
// call, which reports a socket already writable at once; a writer stalls
// far less often than a reader waits.
type Watcher struct {
	p          *poller
	fd         int32
	gen        int32 // tells this registration from an earlier one of the same fd
	onReadable func()
	onWritable func()

	mu          sync.Mutex // guards the arming below; taken before fdMu
	wantRead    bool
	wantWrite   bool
	readPending bool // the socket reported bytes while reading was not armed
	stopped     bool

	hungUp atomic.Bool // the peer closed its side, or the socket failed: see HungUp

	fdMu   sync.RWMutex // held (shared) by every use of fd; Close takes it whole
	closed bool
}

// poller is the process's epoll instance. Its goroutine runs only while a
// connection is watched: the last Stop wakes it through an eventfd to exit.
//
// The goroutine does not block in epoll_wait: it asks without waiting, and
// when nothing is ready it parks on the epoll descriptor itself through
// the runtime's network poller (an epoll instance is readable while it has
// events), as a goroutine reading a socket does. A thread blocked in
// epoll_wait would lose its P on every wait and hand each readiness to
// another thread when it woke; a parked goroutine is woken on whichever
// thread polled, with the tasks it starts.
type poller struct {
	epfd, wakefd int
	file         *os.File        // epfd as the runtime polls it; kept so that its finalizer never closes epfd
	rc           syscall.RawConn // file's, to wait for epfd to have events

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
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	// A non-blocking descriptor is registered with the runtime's poller.
	file := os.NewFile(uintptr(epfd), "epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		unix.Close(wakefd)
		return nil, err
	}
	return &poller{epfd: epfd, wakefd: wakefd, file: file, rc: rc, watchers: make(map[int32]*Watcher)}, nil
}

// Watch takes c's socket over and registers it, not yet armed: after
// Rearm, onReadable runs on a worker (package workers) when the socket has
// bytes to read, was closed by the peer, or failed; after ArmWrite,
// onWritable runs likewise when it takes bytes again. c is closed: the Watcher keeps a
// duplicate of its descriptor, so that the runtime frees what it held for
// c (its poll descriptor with two timers, its addresses: half a kilobyte
// per connection). c must be a socket (*net.TCPConn, *net.UnixConn);
// anything else returns ErrUnsupported and is left open.
func Watch(c net.Conn, onReadable, onWritable func()) (*Watcher, error) {
	p, err := shared()
	if err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(f uintptr) {
		// The duplicate shares the socket and its non-blocking flag.
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || dupErr != nil || fd < 0 {
		return nil, errors.Join(ErrUnsupported, err, dupErr)
	}
	p.mu.Lock()
	p.gen++
	w := &Watcher{p: p, fd: int32(fd), gen: p.gen, onReadable: onReadable, onWritable: onWritable}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, w.event()); err != nil {
		p.mu.Unlock()
		unix.Close(fd)
		return nil, errors.Join(ErrUnsupported, err)
	}
	p.watchers[w.fd] = w
	if !p.running {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
	_ = c.Close() // the duplicate keeps the socket open
	return w, nil
}

// event is the registration: reading always, edge-triggered; writing from
// the first ArmWrite on. Writing stays registered once it fired (taking it
// out would cost a system call per stall): a socket that once stalled may
// wake the poller for write space nobody waits for, which fired ignores.
// w.mu is held (or w is not yet shared).
func (w *Watcher) event() *unix.EpollEvent {
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET)
	if w.wantWrite {
		ev |= unix.EPOLLOUT
	}
	return &unix.EpollEvent{Events: ev, Fd: w.fd, Pad: w.gen}
}

// Rearm asks for the next readiness to read, and reports whether bytes
// arrived since the last one: then reading is not armed, and the caller
// reads again instead of waiting. The reader must have read all the socket
// held (see Watcher): bytes it left fire only when more arrive.
func (w *Watcher) Rearm() (again bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	if w.readPending {
		w.readPending = false
		return true
	}
	w.wantRead = true
	return false
}

// HungUp reports whether a readiness told of the peer's end of the stream
// or of a failure: then a read that returned less than it asked for may
// not have reached the end, which fires no readiness of its own, and the
// reader reads on until EAGAIN or the end.
func (w *Watcher) HungUp() bool { return w.hungUp.Load() }

// ArmWrite asks to be told (onWritable) when the socket takes bytes again;
// a socket that already does fires at once. An error means it will not be
// told: the owner must close the socket.
func (w *Watcher) ArmWrite() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return nil
	}
	w.wantWrite = true
	if err := unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_MOD, int(w.fd), w.event()); err != nil {
		w.wantWrite = false
		return fmt.Errorf("%w: epoll_ctl: %w", ErrRearm, err)
	}
	return nil
}

// UnregisterForTest takes the socket out of the epoll set behind the
// Watcher's back, as a kernel that lost the registration would: the next
// ArmWrite fails.
func (w *Watcher) UnregisterForTest() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_DEL, int(w.fd), nil)
}

// Close unregisters the socket and closes it; a blocked peer sees the end
// of the stream, or a reset if it sent bytes not read.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	_ = unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_DEL, int(w.fd), nil)
	w.mu.Unlock()
	p := w.p
	p.mu.Lock()
	if p.watchers[w.fd] == w {
		delete(p.watchers, w.fd)
	}
	if len(p.watchers) == 0 {
		var one = [8]byte{1}
		_, _ = unix.Write(p.wakefd, one[:]) // host byte order: 1 on little-endian, 2^56 on big, both nonzero
	}
	p.mu.Unlock()
	w.fdMu.Lock()
	defer w.fdMu.Unlock()
	w.closed = true
	return unix.Close(int(w.fd))
}

// Read reads what the socket holds, without waiting: unix.EAGAIN means it
// holds nothing now (see Rearm), io.EOF that the peer closed its side.
func (w *Watcher) Read(p []byte) (int, error) {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.closed {
		return 0, net.ErrClosed
	}
	for {
		n, err := unix.Read(int(w.fd), p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Buffered returns how many bytes the socket holds, ready to be read
// (SIOCINQ); 0 when it cannot tell.
func (w *Watcher) Buffered() int {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.closed {
		return 0
	}
	n, err := unix.IoctlGetInt(int(w.fd), unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return n
}

// A Prober tells how many bytes wait in the socket of a connection that is
// not watched (a TLS connection is looked through to its socket, whose
// bytes are still encrypted: a little more than what they carry). It is
// made once per connection, so that asking allocates nothing. Not safe for
// concurrent use.
type Prober struct {
	rc    syscall.RawConn
	n     int
	ioctl func(fd uintptr)
}

// NewProber returns the Prober of c; one for a connection that is not a
// socket answers 0.
func NewProber(c net.Conn) *Prober {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	p := &Prober{}
	if sc, ok := c.(syscall.Conn); ok {
		p.rc, _ = sc.SyscallConn()
	}
	p.ioctl = func(fd uintptr) { p.n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }
	return p
}

// Waiting returns how many bytes the socket holds, ready to be read; 0
// when it cannot tell.
func (p *Prober) Waiting() int {
	if p.rc == nil {
		return 0
	}
	p.n = 0
	if p.rc.Control(p.ioctl) != nil {
		return 0
	}
	return p.n
}

// CloseWrite shuts the sending side: the peer reads the end of the stream
// after what was written.
func (w *Watcher) CloseWrite() error {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.closed {
		return net.ErrClosed
	}
	return unix.Shutdown(int(w.fd), unix.SHUT_WR)
}

// maxIovecs is Linux's IOV_MAX: the most buffers one writev takes.
const maxIovecs = 1024

var iovecs = sync.Pool{New: func() any { return new([maxIovecs]unix.Iovec) }}

// Writev writes what it can of bufs with one writev that never waits, and
// returns how many bytes went out; unix.EAGAIN means the socket takes no
// more for now (see ArmWrite). Unlike net.Buffers, it keeps no iovec array
// on the connection: that array, sized by the largest batch a connection
// ever wrote, would stay with every idle connection.
func (w *Watcher) Writev(bufs [][]byte) (int, error) {
	iov := iovecs.Get().(*[maxIovecs]unix.Iovec)
	defer iovecs.Put(iov)
	n := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if n == maxIovecs {
			break
		}
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		n++
	}
	if n == 0 {
		return 0, nil
	}
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if w.closed {
		clear(iov[:n])
		return 0, net.ErrClosed
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(w.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
		if e == unix.EINTR {
			continue
		}
		clear(iov[:n]) // the pool must not keep messages alive
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	var tasks []func()
	var pollErr error
	// poll takes what is ready without waiting and hands it to workers,
	// until an epoll_wait returns fewer events than it had room for: it
	// took all that were ready, and one that comes later makes epfd
	// readable to the runtime's poller again. It then returns false, and
	// the goroutine parks until then; true ends the loop. The whole loop
	// is one RawRead, so that a readiness that came while it handed out
	// tasks is still flagged when it parks, which then returns at once (a
	// new RawRead starts by clearing the flag, and would have to begin
	// with an epoll_wait): it can park without an epoll_wait that would
	// only find nothing.
	poll := func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				pollErr = err
				return true
			}
			tasks = tasks[:0]
			p.mu.Lock()
			for _, ev := range events[:n] {
				if ev.Fd == -1 {
					var buf [8]byte
					_, _ = unix.Read(p.wakefd, buf[:])
					continue
				}
				if w := p.watchers[ev.Fd]; w != nil && w.gen == ev.Pad {
					tasks = w.fired(ev.Events, tasks)
				}
			}
			if len(p.watchers) == 0 {
				p.running = false
				p.mu.Unlock()
				return true
			}
			p.mu.Unlock()
			for i, f := range tasks {
				workers.Go(f)
				tasks[i] = nil
			}
			if n < len(events) {
				return false
			}
		}
	}
	err := p.rc.Read(poll)
	if err == nil {
		err = pollErr
	}
	if err != nil {
		panic("netpoll: epoll_wait: " + err.Error()) // only EBADF/EFAULT/EINVAL: a broken invariant
	}
}

// fired notes an event: the sides it answers are no longer wanted, and
// their callbacks are appended to tasks. Bytes reported while reading is
// not armed are noted for the next Rearm: the edge will not come again. A
// writable socket while writing is not wanted needs no note: ArmWrite asks
// the kernel, which answers with the socket's state.
func (w *Watcher) fired(events uint32, tasks []func()) []func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return tasks
	}
	const failed = unix.EPOLLHUP | unix.EPOLLERR
	if events&(unix.EPOLLRDHUP|failed) != 0 {
		w.hungUp.Store(true) // before the reader it starts can look
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|failed) != 0 {
		if w.wantRead {
			w.wantRead = false
			tasks = append(tasks, w.onReadable)
		} else {
			w.readPending = true
		}
	}
	if w.wantWrite && events&(unix.EPOLLOUT|failed) != 0 {
		w.wantWrite = false
		tasks = append(tasks, w.onWritable)
	}
	return tasks
}
