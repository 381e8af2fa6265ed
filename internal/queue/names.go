package queue

import (
	"fmt"
	"strings"
)

// CheckName reports whether name is a standard queue's name as SQS allows
// it: 1 to 80 letters, digits, hyphens and underscores. FIFO queues (a
// ".fifo" name) are not supported and are refused with the reason.
func CheckName(name string) error {
	if strings.HasSuffix(name, ".fifo") {
		return fmt.Errorf("%w: queue %q: FIFO queues are not supported", ErrInvalid, name)
	}
	if name == "" || len(name) > 80 {
		return fmt.Errorf("%w: queue name %q: want 1 to 80 characters", ErrInvalid, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: queue name %q: only letters, digits, - and _ are allowed", ErrInvalid, name)
		}
	}
	return nil
}
