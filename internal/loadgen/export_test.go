package loadgen

import "time"

// Internals exercised by the tests in package loadgen_test.
var (
	ParsePayloadForTest   = parsePayload
	AppendPayloadForTest  = appendPayload
	ParseStatCPUForTest   = parseStatCPU
	ParseSchedstatForTest = parseSchedstat
	UsedCPUForTest        = usedCPU
	CPUTimeForTest        = cpuTime
)

// HistogramForTest records durations and answers quantiles.
type HistogramForTest struct{ h histogram }

func (h *HistogramForTest) Record(d time.Duration)           { h.h.record(d) }
func (h *HistogramForTest) Quantile(q float64) time.Duration { return h.h.quantile(q) }

// The centrifuge protocol's frame reading.
var (
	EachMessageForTest     = eachMessage
	IsCfPingForTest        = isCfPing
	ParseCfReplyForTest    = parseCfReply
	ProtoCentrifugeForTest = protoCentrifuge
)
