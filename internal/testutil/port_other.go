//go:build !unix

package testutil

// reservePort reserves nothing where there is no flock: FreePort falls
// back to the kernel's pick.
func reservePort(string) (func(), bool) { return nil, false }
