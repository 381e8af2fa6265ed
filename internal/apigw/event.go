package apigw

// Event is the Lambda proxy event of a WebSocket route, with the JSON names
// and omissions API Gateway uses: headers and query parameters only on
// $connect (query only when the URL had one), body only on messages,
// authorizer only when an authorizer ran, disconnect fields only on
// $disconnect. aws-lambda-go decodes it as events.APIGatewayWebsocketProxyRequest.
type Event struct {
	Headers                         map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders,omitempty"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters,omitempty"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters,omitempty"`
	RequestContext                  RequestContext      `json:"requestContext"`
	Body                            *string             `json:"body,omitempty"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
}

// RequestContext is the event's requestContext.
type RequestContext struct {
	RouteKey             string         `json:"routeKey"`
	EventType            string         `json:"eventType"`
	ExtendedRequestID    string         `json:"extendedRequestId"`
	RequestTime          string         `json:"requestTime"`
	MessageDirection     string         `json:"messageDirection"`
	Stage                string         `json:"stage"`
	ConnectedAt          int64          `json:"connectedAt"`
	RequestTimeEpoch     int64          `json:"requestTimeEpoch"`
	Identity             Identity       `json:"identity"`
	RequestID            string         `json:"requestId"`
	DomainName           string         `json:"domainName"`
	ConnectionID         string         `json:"connectionId"`
	APIID                string         `json:"apiId"`
	MessageID            string         `json:"messageId,omitempty"`
	Authorizer           map[string]any `json:"authorizer,omitempty"`
	DisconnectStatusCode int            `json:"disconnectStatusCode,omitempty"`
	DisconnectReason     *string        `json:"disconnectReason,omitempty"`
}

// Identity is requestContext.identity.
type Identity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}
