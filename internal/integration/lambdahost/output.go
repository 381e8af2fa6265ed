package lambdahost

import (
	"bytes"
	"io"
	"sync"
)

// outputMu serialises writes to every Options.Output, so that lines from
// different processes, and from functions sharing a writer, never interleave.
var outputMu sync.Mutex

// maxLine is the longest line kept whole; a longer one is cut into lines of
// this size.
const maxLine = 64 << 10

// lineWriter copies one stream of one process to the output, line by line,
// each line prefixed. Write is called by one goroutine at a time (os/exec's
// copier); flush after the process has exited.
type lineWriter struct {
	w      io.Writer
	prefix string
	buf    []byte // the line so far, prefix included
}

func (lw *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if len(lw.buf) == 0 {
			lw.buf = append(lw.buf, lw.prefix...)
		}
		chunk := b
		if room := maxLine - (len(lw.buf) - len(lw.prefix)); len(chunk) > room {
			chunk = chunk[:room]
		}
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			lw.buf = append(lw.buf, chunk[:i+1]...)
			lw.emit()
			b = b[i+1:]
			continue
		}
		lw.buf = append(lw.buf, chunk...)
		b = b[len(chunk):]
		if len(lw.buf)-len(lw.prefix) >= maxLine {
			lw.flush()
		}
	}
	return n, nil // output trouble must not stop the function
}

// flush writes a pending partial line, ending it with a newline.
func (lw *lineWriter) flush() {
	if len(lw.buf) > len(lw.prefix) {
		lw.buf = append(lw.buf, '\n')
		lw.emit()
	}
	lw.buf = lw.buf[:0]
}

func (lw *lineWriter) emit() {
	outputMu.Lock()
	_, _ = lw.w.Write(lw.buf)
	outputMu.Unlock()
	lw.buf = lw.buf[:0]
}
