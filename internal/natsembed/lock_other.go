//go:build !unix

package natsembed

import "os"

// lockStore takes no lock where flock(2) is missing: a store directory
// must then not be given to two servers.
func lockStore(string) (*os.File, error) { return nil, nil }
