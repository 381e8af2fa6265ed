package apigw

import (
	"net/http"
	"net/url"
)

// headerSpelling restores the header names API Gateway sends where Go's
// canonical form differs ("Sec-Websocket-Key").
var headerSpelling = map[string]string{
	"Sec-Websocket-Key":        "Sec-WebSocket-Key",
	"Sec-Websocket-Version":    "Sec-WebSocket-Version",
	"Sec-Websocket-Extensions": "Sec-WebSocket-Extensions",
	"Sec-Websocket-Protocol":   "Sec-WebSocket-Protocol",
	"Sec-Websocket-Accept":     "Sec-WebSocket-Accept",
}

// Headers renders request headers as API Gateway passes them to functions:
// a single-value map (the last value) and a multi-value map, with names in
// AWS's spelling. It returns nils for no headers.
func Headers(h http.Header) (map[string]string, map[string][]string) {
	return flatten(h, headerSpelling)
}

// Query renders a query string the same way; nils when there is none, since
// API Gateway then omits queryStringParameters.
func Query(q url.Values) (map[string]string, map[string][]string) {
	return flatten(q, nil)
}

func flatten[M ~map[string][]string](m M, rename map[string]string) (map[string]string, map[string][]string) {
	if len(m) == 0 {
		return nil, nil
	}
	single := make(map[string]string, len(m))
	multi := make(map[string][]string, len(m))
	for k, vs := range m {
		if len(vs) == 0 {
			continue
		}
		if r, ok := rename[k]; ok {
			k = r
		}
		single[k] = vs[len(vs)-1]
		multi[k] = append([]string(nil), vs...)
	}
	return single, multi
}
