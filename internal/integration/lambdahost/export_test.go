package lambdahost

// WaitingForTest is how many invocations wait in line for a process.
func (f *Function) WaitingForTest() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waitq)
}

// ProcsForTest is how many processes run or start, and how many are idle.
func (f *Function) ProcsForTest() (procs, idle int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nprocs, len(f.idle)
}

// WaitingForWorkForTest is how many requests for work (GET /next) of the
// function's processes wait for an invocation.
func (f *Function) WaitingForWorkForTest() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for p := range f.procs {
		n += int(p.waiting.Load())
	}
	return n
}
