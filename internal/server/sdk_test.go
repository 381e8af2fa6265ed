package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// sdkClient is the AWS SDK for Go v2 management client, signing with dummy keys.
func sdkClient(endpoint string) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func TestAWSSDKManagementClient(t *testing.T) {
	t.Parallel()
	for _, suffix := range []string{"", "/dev"} {
		t.Run("endpoint"+suffix, func(t *testing.T) {
			t.Parallel()
			_, wsURL, base := start(t, "")
			c := testutil.Dial(t, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {"sdk-test/1.0"}}})
			id := onlyConnID(t, base)
			api := sdkClient(base + suffix)
			ctx := context.Background()

			before := time.Now()
			if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
				ConnectionId: aws.String(id), Data: []byte("from the backend"),
			}); err != nil {
				t.Fatalf("PostToConnection: %v", err)
			}
			if got := testutil.ReadText(t, c); got != "from the backend" {
				t.Errorf("client got %q", got)
			}

			got, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
			if err != nil {
				t.Fatalf("GetConnection: %v", err)
			}
			if got.Identity == nil || aws.ToString(got.Identity.SourceIp) != "127.0.0.1" || aws.ToString(got.Identity.UserAgent) != "sdk-test/1.0" {
				t.Errorf("GetConnection identity = %+v, want 127.0.0.1 and sdk-test/1.0", got.Identity)
			}
			if got.ConnectedAt == nil || got.LastActiveAt == nil {
				t.Fatalf("GetConnection times missing: %+v", got)
			}
			if got.ConnectedAt.After(before) || got.LastActiveAt.Before(*got.ConnectedAt) {
				t.Errorf("connectedAt %v, lastActiveAt %v: want connectedAt before the post at %v and lastActiveAt after it",
					got.ConnectedAt, got.LastActiveAt, before)
			}

			big := []byte(strings.Repeat("x", 131073))
			_, err = api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: big})
			var tooLarge *types.PayloadTooLargeException
			if !errors.As(err, &tooLarge) {
				t.Errorf("PostToConnection of 131073 bytes: err = %v, want *types.PayloadTooLargeException", err)
			}

			if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
				t.Fatalf("DeleteConnection: %v", err)
			}
			if code, reason := testutil.CloseCode(t, c, 5*time.Second); code != websocket.StatusNormalClosure || reason != "Connection Closed Normally" {
				t.Errorf("client saw close %d %q, want 1000 \"Connection Closed Normally\"", code, reason)
			}

			testutil.Eventually(t, 5*time.Second, func() bool {
				_, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("late")})
				var gone *types.GoneException
				return errors.As(err, &gone)
			}, "PostToConnection after delete returns *types.GoneException")
			for name, call := range map[string]func() error{
				"GetConnection": func() error {
					_, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
					return err
				},
				"DeleteConnection": func() error {
					_, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)})
					return err
				},
				"PostToConnection unknown": func() error {
					_, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String("AAAAAAAAAAAAAAA="), Data: []byte("x")})
					return err
				},
			} {
				var gone *types.GoneException
				if err := call(); !errors.As(err, &gone) {
					t.Errorf("%s on a closed connection: err = %v, want *types.GoneException", name, err)
				}
			}
		})
	}
}

// An SDK pointed at a stage the gateway does not have gets the
// ForbiddenException API Gateway answers with, not a parse failure.
func TestAWSSDKUnknownStage(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	testutil.Dial(t, wsURL, nil)
	id := onlyConnID(t, base)
	_, err := sdkClient(base+"/prod").PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(id), Data: []byte("x"),
	})
	var forbidden *types.ForbiddenException
	if !errors.As(err, &forbidden) {
		t.Fatalf("PostToConnection at /prod = %v, want ForbiddenException", err)
	}
}
