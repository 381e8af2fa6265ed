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
