package wsconn_test

import (
	"crypto/tls"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }

// testTLS trusts httptest's certificate.
func testTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // test server
