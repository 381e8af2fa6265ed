package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/auth"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, http.StatusOK},
		{"unauthorized", auth.Unauthorized("Unauthorized"), http.StatusUnauthorized},
		{"forbidden", auth.Forbidden("Forbidden"), http.StatusForbidden},
		{"wrapped", fmt.Errorf("authorize: %w", auth.Forbidden("Forbidden")), http.StatusForbidden},
		{"broken authorizer", &auth.DeniedError{Status: http.StatusInternalServerError, Reason: "x"}, http.StatusInternalServerError},
		{"zero status", &auth.DeniedError{Reason: "x"}, http.StatusInternalServerError},
		{"any other error", errors.New("boom"), http.StatusInternalServerError},
		{"cancelled", context.Canceled, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := auth.Status(tt.err); got != tt.want {
				t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	t.Parallel()
	if got, want := auth.Unauthorized("invalid token: expired").Error(), "auth: denied (401): invalid token: expired"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func ExampleStatus() {
	var a auth.Authorizer = auth.Func(func(ctx context.Context, req *auth.ConnectRequest) (*auth.Identity, error) {
		if req.Header.Get("X-Api-Key") != "let-me-in" {
			return nil, auth.Forbidden("Forbidden")
		}
		return &auth.Identity{Principal: "me", Context: map[string]any{"principalId": "me"}}, nil
	})
	_, err := a.Authorize(context.Background(), &auth.ConnectRequest{Header: http.Header{}})
	fmt.Println(auth.Status(err), err)
	// Output: 403 auth: denied (403): Forbidden
}
