// Command goecho is the Go function the server's benchmarks host: an
// ordinary aws-lambda-go program that answers a WebSocket message with its
// body, as a two-way route's function does.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(_ context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return events.APIGatewayProxyResponse{StatusCode: 200, Body: req.Body}, nil
}

func main() { lambda.Start(handle) }
