// Command fn is the chat tutorial as one Go Lambda function, unmodified from
// what runs on AWS: it uses aws-lambda-go and the AWS SDK for Go v2, and
// reaches the gateway's management API at the endpoint in APIG_ENDPOINT.
//
// Routes: $connect and $disconnect log; sendMessage broadcasts "data" to
// every connection (listed through Switchboard's GET /@connections extension,
// so no table of connection IDs is needed); whoami posts the event it
// received back to the caller; echo answers with the message (two-way).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatalf("aws config: %v", err)
	}
	endpoint := os.Getenv("APIG_ENDPOINT")
	api := apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	h := &handler{api: api, endpoint: endpoint}
	lambda.Start(h.handle)
}

type handler struct {
	api      *apigatewaymanagementapi.Client
	endpoint string
}

func (h *handler) handle(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	switch rc.RouteKey {
	case "$connect":
		log.Printf("connect %s from %s", rc.ConnectionID, rc.Identity.SourceIP)
		if ev.QueryStringParameters["deny"] == "1" {
			return events.APIGatewayProxyResponse{StatusCode: http.StatusUnauthorized}, nil
		}
	case "$disconnect":
		log.Printf("disconnect %s (%d)", rc.ConnectionID, rc.DisconnectStatusCode)
	case "sendMessage":
		var msg struct {
			Data string `json:"data"`
		}
		if err := json.Unmarshal([]byte(ev.Body), &msg); err != nil {
			return events.APIGatewayProxyResponse{StatusCode: http.StatusBadRequest}, err
		}
		if err := h.broadcast(ctx, []byte(msg.Data)); err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
	case "echo": // a two-way route: the body goes back to the caller
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: ev.Body}, nil
	case "whoami":
		b, err := json.Marshal(ev)
		if err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
		if _, err := h.api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
			ConnectionId: aws.String(rc.ConnectionID), Data: b,
		}); err != nil {
			return events.APIGatewayProxyResponse{}, fmt.Errorf("post to %s: %w", rc.ConnectionID, err)
		}
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
}

// broadcast posts data to every connection; connections that left meanwhile
// (GoneException) are skipped, as the AWS tutorial does.
func (h *handler) broadcast(ctx context.Context, data []byte) error {
	ids, err := h.connections(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		_, err := h.api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: data})
		var gone *types.GoneException
		if err != nil && !errors.As(err, &gone) {
			return fmt.Errorf("post to %s: %w", id, err)
		}
	}
	return nil
}

// connections lists connection IDs through the gateway's GET /@connections.
func (h *handler) connections(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.endpoint+"/@connections?limit=1000", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []struct {
			ConnectionID string `json:"connectionId"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	ids := make([]string, 0, len(page.Items))
	for _, it := range page.Items {
		ids = append(ids, it.ConnectionID)
	}
	return ids, nil
}
