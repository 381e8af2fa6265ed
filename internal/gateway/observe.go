package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// noRoute labels messages that matched no route (the Forbidden frame).
const noRoute = "(none)"

func authResult(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return metrics.ConnectUnauthorized
	case http.StatusForbidden:
		return metrics.ConnectForbidden
	}
	return metrics.ConnectFailed
}

// disconnectReason labels how a connection ended.
func disconnectReason(ci wsconn.CloseInfo) string {
	switch ci.Reason {
	case ReasonDeleted:
		return "deleted"
	case wsconn.ReasonGoingAway:
		if !ci.ByPeer {
			return "drain"
		}
	case wsconn.ReasonIdle:
		return "idle"
	case wsconn.ReasonLifetime:
		return "lifetime"
	case wsconn.ReasonSlowConsumer:
		return "slow_consumer"
	case wsconn.ReasonTooBig, wsconn.ReasonFragments:
		return "too_big"
	case wsconn.ReasonInvalidUTF8:
		return "invalid_utf8"
	case wsconn.ReasonPingTimeout:
		return "ping_timeout"
	case wsconn.ReasonPingFlood:
		return "ping_flood"
	case wsconn.ReasonFrameFlood:
		return "frame_flood"
	case wsconn.ReasonFrameTimeout:
		return "frame_timeout"
	case wsconn.ReasonWriteTimeout:
		return "write_timeout"
	case wsconn.ReasonWatchFailed:
		return "watch_failed"
	}
	switch {
	case ci.ByPeer && ci.Code == wsconn.StatusAbnormal:
		return "abnormal"
	case ci.ByPeer:
		return "client"
	case ci.Code == wsconn.StatusProtocolError:
		return "protocol_error"
	}
	return "error"
}

func errorKind(err error) string {
	var ce *integration.ClientError
	switch {
	case errors.As(err, &ce):
		return "client"
	case errors.Is(err, ErrIntegrationTimeout):
		return "timeout"
	}
	return "error"
}

// contextVarRE matches $context.name and $context.a.b in an access log format.
var contextVarRE = regexp.MustCompile(`\$context\.[A-Za-z]+(?:\.[A-Za-z]+)?`)

// accessLog writes one line for an invocation, with API Gateway's
// $context variable names, or rendered from format when it is not empty.
// It costs nothing when the logger drops info lines.
func (g *Gateway) accessLog(format string, req *integration.Request, status int, latency time.Duration, err error) {
	ctx := context.Background()
	if !g.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	errMsg := ""
	if err != nil {
		errMsg = err.Error()
	}
	if format != "" {
		vars := contextVars(req, status, latency, errMsg)
		line := contextVarRE.ReplaceAllStringFunc(format, func(v string) string {
			if s, ok := vars[v]; ok && s != "" {
				return s
			}
			return "-"
		})
		g.log.LogAttrs(ctx, slog.LevelInfo, line)
		return
	}
	attrs := []slog.Attr{
		slog.String("requestId", req.RequestID),
		slog.String("connectionId", req.Conn.ID),
		slog.String("routeKey", req.RouteKey),
		slog.String("eventType", req.EventType),
		slog.Int("status", status),
		slog.Int64("integrationLatency", latency.Milliseconds()), // milliseconds, as API Gateway's
		slog.String("sourceIp", req.Conn.SourceIP),
		slog.String("requestTime", apigw.RequestTime(req.Time)),
	}
	if errMsg != "" { // no empty fields
		attrs = append(attrs, slog.String("error", errMsg))
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
}

// contextVars are the $context variables of an access log format.
func contextVars(req *integration.Request, status int, latency time.Duration, errMsg string) map[string]string {
	return map[string]string{
		"$context.requestId":              req.RequestID,
		"$context.extendedRequestId":      req.RequestID,
		"$context.connectionId":           req.Conn.ID,
		"$context.routeKey":               req.RouteKey,
		"$context.eventType":              req.EventType,
		"$context.messageId":              req.MessageID,
		"$context.status":                 strconv.Itoa(status),
		"$context.integrationLatency":     strconv.FormatInt(latency.Milliseconds(), 10),
		"$context.requestTime":            apigw.RequestTime(req.Time),
		"$context.requestTimeEpoch":       strconv.FormatInt(req.Time.UnixMilli(), 10),
		"$context.identity.sourceIp":      req.Conn.SourceIP,
		"$context.identity.userAgent":     req.Conn.UserAgent,
		"$context.stage":                  req.Conn.Stage,
		"$context.apiId":                  req.Conn.APIID,
		"$context.domainName":             req.Conn.DomainName,
		"$context.connectedAt":            strconv.FormatInt(req.Conn.ConnectedAt.UnixMilli(), 10),
		"$context.authorizer.principalId": req.Conn.Principal,
		"$context.error.message":          errMsg,
		"$context.disconnectStatusCode":   strconv.Itoa(req.DisconnectStatusCode),
	}
}
