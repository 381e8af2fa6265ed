package queue

import (
	"fmt"
	"strings"
)

// Check reports the first problem of a configuration's queues: a name SQS
// does not allow, a queue declared twice, attributes outside SQS's limits,
// a dead-letter queue that is not declared or is the queue itself.
// Store.Declare refuses what Check refuses.
func Check(decls []Declaration) error {
	names := map[string]Attributes{}
	for _, d := range decls {
		if err := CheckName(d.Name); err != nil {
			return err
		}
		if _, dup := names[d.Name]; dup {
			return fmt.Errorf("%w: queue %q is declared twice", ErrInvalid, d.Name)
		}
		if err := d.Attributes.Check(); err != nil {
			return fmt.Errorf("queue %q: %w", d.Name, err)
		}
		names[d.Name] = d.Attributes
	}
	for _, d := range decls {
		dl := d.Attributes.DeadLetter
		if dl == "" {
			continue
		}
		if _, ok := names[dl]; !ok {
			return fmt.Errorf("%w: queue %q: its dead-letter queue %q is not declared", ErrInvalid, d.Name, dl)
		}
		if dl == d.Name {
			return fmt.Errorf("%w: queue %q is its own dead-letter queue", ErrInvalid, d.Name)
		}
	}
	return nil
}

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
