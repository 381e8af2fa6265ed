package wsconn_test

import (
	"crypto/tls"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTLS trusts httptest's certificate.
func testTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // test server
