// Package sqs serves the SQS API on the gateway's listener, as the current
// AWS SDKs speak it (AWS JSON 1.0, X-Amz-Target: AmazonSQS.<Operation>),
// over a queue.Store: SendMessage, SendMessageBatch, ReceiveMessage,
// DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility(Batch),
// GetQueueUrl, GetQueueAttributes, ListQueues, ListDeadLetterSourceQueues
// and StartMessageMoveTask (a redrive), with SQS's error shapes
// and codes, checksums and limits. It owns the wire format only;
// credentials are checked by whoever serves it.
package sqs

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// TargetPrefix starts the X-Amz-Target of every operation this API serves.
const TargetPrefix = "AmazonSQS."

// maxBody bounds a request's body: a batch of the largest messages and
// their JSON encoding.
const maxBody = 3 * queue.MaxMessageBytes

// Options configures the API. The zero value of every field but Store works.
type Options struct {
	// Store keeps the queues. Required.
	Store queue.Store
	// Region and Account make the queues' ARNs and URLs. Empty means
	// us-east-1 and 123456789012, as local emulators use.
	Region, Account string
	// Stopping, once done, ends the long polls waiting, which answer with
	// no messages, so that a shutdown need not wait for them. Nil: never.
	Stopping context.Context
}

// API serves the SQS operations. It is safe for concurrent use.
type API struct{ opts Options }

// New returns the API.
func New(opts Options) *API {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	return &API{opts: opts}
}

// ARN is a queue's ARN.
func ARN(region, account, name string) string {
	return "arn:aws:sqs:" + region + ":" + account + ":" + name
}

// NameFromARN returns the queue name of an SQS ARN, or "" when arn is not one.
func NameFromARN(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "sqs" {
		return parts[5]
	}
	return ""
}

// apiError is an answer in SQS's AWS JSON 1.0 error shape: the modelled
// type in __type, and the code the query protocol used in
// X-Amzn-Query-Error, which the SDKs report as the error's code.
type apiError struct {
	status int
	typ    string // the shape's name, after com.amazonaws.sqs#
	code   string // the query error code
	msg    string
}

func (e *apiError) Error() string { return "sqs: " + e.code + ": " + e.msg }

func errInvalid(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterValue", "InvalidParameterValue", fmt.Sprintf(format, args...)}
}

func errMissing(name string) *apiError {
	return &apiError{http.StatusBadRequest, "MissingParameter", "MissingParameter", "The request must contain the parameter " + name + "."}
}

var errNoQueue = &apiError{http.StatusBadRequest, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."}

// storeError maps a store's error to SQS's.
func storeError(err error) error {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return errNoQueue
	case errors.Is(err, queue.ErrReceiptHandle):
		return &apiError{http.StatusNotFound, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", "The input receipt handle is invalid."}
	case errors.Is(err, queue.ErrNotInFlight):
		return &apiError{http.StatusBadRequest, "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "The message referred to is not in flight."}
	case errors.Is(err, queue.ErrFull):
		return &apiError{http.StatusForbidden, "OverLimit", "OverLimit", strings.TrimPrefix(err.Error(), "queue: ")}
	case errors.Is(err, queue.ErrInvalid):
		return errInvalid("%s", strings.TrimPrefix(err.Error(), "queue: invalid parameter: "))
	}
	return err
}

// ServeHTTP serves POST / with an X-Amz-Target of TargetPrefix.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", apigw.NewUUID())
	out, err := a.serve(w, r)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "InternalError", "InternalError", err.Error()}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				ae = &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "ServiceUnavailable", "the request ended before it was served"}
			}
		}
		fault := "Sender"
		if ae.status >= 500 {
			fault = "Receiver"
		}
		w.Header().Set("X-Amzn-Query-Error", ae.code+";"+fault)
		w.WriteHeader(ae.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + ae.typ, "message": ae.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) (any, error) {
	op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		if strings.HasSuffix(op, "Batch") {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", "The request is over the size limit."}
		}
		return nil, errInvalid("One or more parameters are invalid. Reason: the request is over the size limit of %d bytes.", maxBody)
	}
	if err != nil {
		return nil, errInvalid("reading the request: %v", err)
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	decode := func(v any) error {
		if err := json.Unmarshal(body, v); err != nil {
			return &apiError{http.StatusBadRequest, "InvalidParameterValue", "SerializationException", "the request is not the operation's JSON: " + err.Error()}
		}
		return nil
	}
	ctx := r.Context()
	switch op {
	case "SendMessage":
		var in sendMessageInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return a.sendMessage(ctx, in)
	case "SendMessageBatch":
		var in sendBatchInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return a.sendBatch(ctx, in)
	case "ReceiveMessage":
		var in receiveInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return a.receive(ctx, in)
	case "DeleteMessage":
		var in deleteInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		name, err := a.receiptQueue(in.QueueURL, in.ReceiptHandle)
		if err != nil {
			return nil, err
		}
		return struct{}{}, storeError(a.opts.Store.Delete(ctx, name, in.ReceiptHandle))
	case "DeleteMessageBatch":
		var in deleteBatchInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return a.deleteBatch(ctx, in)
	case "ChangeMessageVisibility":
		var in changeVisibilityInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		name, err := a.receiptQueue(in.QueueURL, in.ReceiptHandle)
		if err != nil {
			return nil, err
		}
		if in.VisibilityTimeout == nil {
			return nil, errMissing("VisibilityTimeout")
		}
		err = a.opts.Store.ChangeVisibility(ctx, name, in.ReceiptHandle, time.Duration(*in.VisibilityTimeout)*time.Second)
		return struct{}{}, storeError(err)
	case "ChangeMessageVisibilityBatch":
		var in changeVisibilityBatchInput
		if err := decode(&in); err != nil {
			return nil, err
		}
		return a.changeVisibilityBatch(ctx, in)
	case "ListDeadLetterSourceQueues":
		var in struct {
			QueueURL string `json:"QueueUrl"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		name, err := a.queueName(in.QueueURL)
		if err != nil {
			return nil, err
		}
		info, err := a.opts.Store.Info(ctx, name)
		if err != nil {
			return nil, storeError(err)
		}
		urls := []string{}
		for _, n := range info.Sources {
			urls = append(urls, a.queueURL(r, n))
		}
		return map[string][]string{"queueUrls": urls}, nil
	case "StartMessageMoveTask":
		var in struct {
			SourceArn      string `json:"SourceArn"`
			DestinationArn string `json:"DestinationArn"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		name := NameFromARN(in.SourceArn)
		if name == "" {
			return nil, errInvalid("SourceArn %q is not a queue's ARN.", in.SourceArn)
		}
		if in.DestinationArn != "" {
			return nil, errInvalid("DestinationArn is not supported: messages move back to the queues they came from.")
		}
		if _, err := a.opts.Store.Redrive(ctx, name); err != nil {
			if errors.Is(err, queue.ErrNoDeadLetter) {
				return nil, errInvalid("Source queue must be configured as a Dead Letter Queue.")
			}
			if errors.Is(err, queue.ErrNotFound) {
				return nil, &apiError{http.StatusNotFound, "ResourceNotFoundException", "ResourceNotFoundException", "The resource that you specified for the SourceArn parameter doesn't exist."}
			}
			return nil, storeError(err)
		}
		// The move is done by the time the call answers.
		return map[string]string{"TaskHandle": apigw.NewUUID()}, nil
	case "GetQueueUrl":
		var in struct {
			QueueName string `json:"QueueName"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		if in.QueueName == "" {
			return nil, errMissing("QueueName")
		}
		if _, err := a.opts.Store.Info(ctx, in.QueueName); err != nil {
			return nil, storeError(err)
		}
		return map[string]string{"QueueUrl": a.queueURL(r, in.QueueName)}, nil
	case "ListQueues":
		var in struct {
			QueueNamePrefix string `json:"QueueNamePrefix"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		names, err := a.opts.Store.Queues(ctx)
		if err != nil {
			return nil, storeError(err)
		}
		urls := []string{}
		for _, n := range names {
			if strings.HasPrefix(n, in.QueueNamePrefix) {
				urls = append(urls, a.queueURL(r, n))
			}
		}
		return map[string][]string{"QueueUrls": urls}, nil
	case "GetQueueAttributes":
		var in struct {
			QueueURL       string   `json:"QueueUrl"`
			AttributeNames []string `json:"AttributeNames"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		return a.attributes(ctx, in.QueueURL, in.AttributeNames)
	case "":
		return nil, &apiError{http.StatusBadRequest, "InvalidAction", "InvalidAction", "the request names no operation in X-Amz-Target"}
	}
	return nil, &apiError{http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
		fmt.Sprintf("operation %s is not supported: queues are declared by the configuration (docs/events.md)", op)}
}

// queueName reads a QueueUrl: the SDKs' forms
// (https://sqs.us-east-1.amazonaws.com/123456789012/name, this listener's
// http://127.0.0.1:3001/123456789012/name, an emulator's /queue/name) all
// end with the name.
func (a *API) queueName(raw string) (string, error) {
	if raw == "" {
		return "", errMissing("QueueUrl")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", &apiError{http.StatusNotFound, "InvalidAddress", "InvalidAddress", "The address " + raw + " is not valid for this endpoint."}
	}
	path := strings.TrimRight(u.Path, "/")
	name := path[strings.LastIndexByte(path, '/')+1:]
	if name == "" {
		return "", &apiError{http.StatusNotFound, "InvalidAddress", "InvalidAddress", "The address " + raw + " is not valid for this endpoint."}
	}
	return name, nil
}

// queueURL is the URL of a queue on the listener r came in on.
func (a *API) queueURL(r *http.Request, name string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + a.opts.Account + "/" + name
}

type attributeValue struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

type sendMessageInput struct {
	QueueURL          string                    `json:"QueueUrl"`
	MessageBody       *string                   `json:"MessageBody"`
	DelaySeconds      *int                      `json:"DelaySeconds"`
	MessageAttributes map[string]attributeValue `json:"MessageAttributes"`
	// FIFO parameters, refused: the queues are standard ones.
	MessageGroupID         string `json:"MessageGroupId"`
	MessageDeduplicationID string `json:"MessageDeduplicationId"`
}

type sendMessageOutput struct {
	MessageID              string `json:"MessageId"`
	MD5OfMessageBody       string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes string `json:"MD5OfMessageAttributes,omitempty"`
}

// outgoing checks one message and makes it a queue.Outgoing.
func outgoing(in sendMessageInput) (queue.Outgoing, error) {
	if in.MessageBody == nil {
		return queue.Outgoing{}, errMissing("MessageBody")
	}
	if *in.MessageBody == "" {
		return queue.Outgoing{}, errInvalid("The request must contain the parameter MessageBody.")
	}
	if err := checkBody(*in.MessageBody); err != nil {
		return queue.Outgoing{}, err
	}
	if in.MessageGroupID != "" || in.MessageDeduplicationID != "" {
		return queue.Outgoing{}, errInvalid("The request includes a parameter that is not valid for this queue type: MessageGroupId and MessageDeduplicationId are for FIFO queues.")
	}
	out := queue.Outgoing{Body: *in.MessageBody}
	if in.DelaySeconds != nil {
		if *in.DelaySeconds < 0 || *in.DelaySeconds > 900 {
			return queue.Outgoing{}, errInvalid("Value %d for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.", *in.DelaySeconds)
		}
		d := time.Duration(*in.DelaySeconds) * time.Second
		out.Delay = &d
	}
	if len(in.MessageAttributes) > 10 {
		return queue.Outgoing{}, errInvalid("Number of message attributes [%d] exceeds the allowed maximum [10].", len(in.MessageAttributes))
	}
	for name, v := range in.MessageAttributes {
		a, err := messageAttribute(name, v)
		if err != nil {
			return queue.Outgoing{}, err
		}
		if out.Attributes == nil {
			out.Attributes = map[string]queue.MessageAttribute{}
		}
		out.Attributes[name] = a
	}
	return out, nil
}

// checkBody refuses characters SQS does not accept in a body: those
// outside #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
func checkBody(s string) error {
	for _, c := range s {
		ok := c == 0x9 || c == 0xA || c == 0xD || c >= 0x20 && c <= 0xD7FF || c >= 0xE000 && c <= 0xFFFD || c >= 0x10000 && c <= 0x10FFFF
		if !ok {
			return errInvalid("Invalid binary character '#x%X' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF", c)
		}
	}
	return nil
}

func messageAttribute(name string, v attributeValue) (queue.MessageAttribute, error) {
	if name == "" || len(name) > 256 || strings.HasPrefix(strings.ToLower(name), "aws.") || strings.HasPrefix(strings.ToLower(name), "amazon.") {
		return queue.MessageAttribute{}, errInvalid("Message attribute name '%s' is invalid.", name)
	}
	base, _, _ := strings.Cut(v.DataType, ".")
	a := queue.MessageAttribute{DataType: v.DataType}
	switch base {
	case "String", "Number":
		if v.StringValue == nil {
			return a, errInvalid("The message attribute '%s' with type '%s' must use field 'String'.", name, base)
		}
		a.StringValue = *v.StringValue
		if base == "Number" {
			if _, err := strconv.ParseFloat(a.StringValue, 64); err != nil {
				return a, errInvalid("Can't cast the value of message (user) attribute '%s' to a number.", name)
			}
		}
	case "Binary":
		if v.BinaryValue == nil {
			return a, errInvalid("The message attribute '%s' with type 'Binary' must use field 'Binary'.", name)
		}
		a.BinaryValue = v.BinaryValue
	default:
		return a, errInvalid("The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
	}
	return a, nil
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// MD5OfAttributes is SQS's checksum of message attributes: each, sorted
// by name, as the length-prefixed name and type, a transport byte (1 for
// strings, 2 for binary) and the length-prefixed value. Empty for none.
func MD5OfAttributes(attrs map[string]queue.MessageAttribute) string {
	if len(attrs) == 0 {
		return ""
	}
	h := md5.New()
	put := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := attrs[n]
		put([]byte(n))
		put([]byte(a.DataType))
		if strings.HasPrefix(a.DataType, "Binary") {
			h.Write([]byte{2})
			put(a.BinaryValue)
		} else {
			h.Write([]byte{1})
			put([]byte(a.StringValue))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (a *API) sendMessage(ctx context.Context, in sendMessageInput) (any, error) {
	name, err := a.queueName(in.QueueURL)
	if err != nil {
		return nil, err
	}
	m, err := outgoing(in)
	if err != nil {
		return nil, err
	}
	sent, err := a.opts.Store.Send(ctx, name, []queue.Outgoing{m})
	if err != nil {
		return nil, storeError(err)
	}
	return sendMessageOutput{MessageID: sent[0].ID, MD5OfMessageBody: md5Hex(m.Body), MD5OfMessageAttributes: MD5OfAttributes(m.Attributes)}, nil
}

type sendBatchInput struct {
	QueueURL string       `json:"QueueUrl"`
	Entries  []batchEntry `json:"Entries"`
}

type batchEntry struct {
	ID string `json:"Id"`
	sendMessageInput
}

type batchFailure struct {
	ID          string `json:"Id"`
	SenderFault bool   `json:"SenderFault"`
	Code        string `json:"Code"`
	Message     string `json:"Message"`
}

type sendBatchSuccess struct {
	ID string `json:"Id"`
	sendMessageOutput
}

// checkBatch applies SQS's rules for a batch's entries' IDs and count.
func checkBatch(ids []string) error {
	switch {
	case len(ids) == 0:
		return &apiError{http.StatusBadRequest, "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one entry in the request."}
	case len(ids) > queue.MaxBatch:
		return &apiError{http.StatusBadRequest, "TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
			fmt.Sprintf("Maximum number of entries per request are 10. You have sent %d.", len(ids))}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || len(id) > 80 || strings.IndexFunc(id, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
		}) >= 0 {
			return &apiError{http.StatusBadRequest, "InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
				"A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."}
		}
		if seen[id] {
			return &apiError{http.StatusBadRequest, "BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id " + id + " repeated."}
		}
		seen[id] = true
	}
	return nil
}

func entryFailure(id string, err error) batchFailure {
	var ae *apiError
	if errors.As(storeError(err), &ae) {
		return batchFailure{ID: id, SenderFault: ae.status < 500, Code: ae.code, Message: ae.msg}
	}
	return batchFailure{ID: id, Code: "InternalError", Message: err.Error()}
}

func (a *API) sendBatch(ctx context.Context, in sendBatchInput) (any, error) {
	name, err := a.queueName(in.QueueURL)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.ID
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	info, err := a.opts.Store.Info(ctx, name)
	if err != nil {
		return nil, storeError(err)
	}
	total := 0
	msgs := make([]queue.Outgoing, len(in.Entries))
	errs := make([]error, len(in.Entries))
	for i, e := range in.Entries {
		msgs[i], errs[i] = outgoing(e.sendMessageInput)
		n := msgs[i].Size()
		total += n
		if errs[i] == nil && n > info.Attributes.MaxMessageBytes {
			// SQS fails only the entry over the queue's limit.
			errs[i] = errInvalid("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", info.Attributes.MaxMessageBytes)
		}
	}
	if total > queue.MaxMessageBytes {
		return nil, &apiError{http.StatusBadRequest, "BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong",
			fmt.Sprintf("Batch requests cannot be longer than %d bytes. You have sent %d bytes.", queue.MaxMessageBytes, total)}
	}
	out := struct {
		Successful []sendBatchSuccess `json:"Successful"`
		Failed     []batchFailure     `json:"Failed"`
	}{Successful: []sendBatchSuccess{}, Failed: []batchFailure{}}
	// The valid entries are sent in one call, so that a receive sees all
	// of them or none; a failure of that call (a full queue) fails each
	// of them. An entry refused on its own (its size, its attributes) is
	// not stored and does not hold back the others.
	var valid []queue.Outgoing
	for i := range in.Entries {
		if errs[i] == nil {
			valid = append(valid, msgs[i])
		}
	}
	var sent []queue.Sent
	if len(valid) > 0 {
		sent, err = a.opts.Store.Send(ctx, name, valid)
		if errors.Is(err, queue.ErrNotFound) {
			return nil, errNoQueue
		}
	}
	for i, e := range in.Entries {
		switch {
		case errs[i] != nil:
			out.Failed = append(out.Failed, entryFailure(e.ID, errs[i]))
		case err != nil:
			out.Failed = append(out.Failed, entryFailure(e.ID, err))
		default:
			out.Successful = append(out.Successful, sendBatchSuccess{ID: e.ID, sendMessageOutput: sendMessageOutput{
				MessageID: sent[0].ID, MD5OfMessageBody: md5Hex(msgs[i].Body), MD5OfMessageAttributes: MD5OfAttributes(msgs[i].Attributes)}})
			sent = sent[1:]
		}
	}
	return out, nil
}

type receiveInput struct {
	QueueURL                    string   `json:"QueueUrl"`
	AttributeNames              []string `json:"AttributeNames"`
	MessageSystemAttributeNames []string `json:"MessageSystemAttributeNames"`
	MessageAttributeNames       []string `json:"MessageAttributeNames"`
	MaxNumberOfMessages         *int     `json:"MaxNumberOfMessages"`
	VisibilityTimeout           *int     `json:"VisibilityTimeout"`
	WaitTimeSeconds             *int     `json:"WaitTimeSeconds"`
}

type messageOutput struct {
	MessageID              string                    `json:"MessageId"`
	ReceiptHandle          string                    `json:"ReceiptHandle"`
	MD5OfBody              string                    `json:"MD5OfBody"`
	Body                   string                    `json:"Body"`
	Attributes             map[string]string         `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string                    `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]attributeValue `json:"MessageAttributes,omitempty"`
}

// SystemAttributes are a received message's attributes as SQS names
// them, for ReceiveMessage and the SQS event; DeadLetterQueueSourceArn
// is among them for a message moved to a dead-letter queue.
func SystemAttributes(m queue.Message, region, account string) map[string]string {
	out := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.ReceiveCount),
		"SentTimestamp":                    strconv.FormatInt(m.SentAt.UnixMilli(), 10),
		"SenderId":                         account,
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.FirstReceivedAt.UnixMilli(), 10),
	}
	if m.DeadLetterSource != "" {
		out["DeadLetterQueueSourceArn"] = ARN(region, account, m.DeadLetterSource)
	}
	return out
}

func (a *API) receive(ctx context.Context, in receiveInput) (any, error) {
	name, err := a.queueName(in.QueueURL)
	if err != nil {
		return nil, err
	}
	opts := queue.ReceiveOptions{Max: 1}
	if in.MaxNumberOfMessages != nil {
		if *in.MaxNumberOfMessages < 1 || *in.MaxNumberOfMessages > queue.MaxBatch {
			return nil, errInvalid("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", *in.MaxNumberOfMessages)
		}
		opts.Max = *in.MaxNumberOfMessages
	}
	if in.VisibilityTimeout != nil {
		if *in.VisibilityTimeout < 0 || *in.VisibilityTimeout > int(queue.MaxVisibilityTimeout/time.Second) {
			return nil, errInvalid("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", *in.VisibilityTimeout)
		}
		d := time.Duration(*in.VisibilityTimeout) * time.Second
		opts.Visibility = &d
	}
	if in.WaitTimeSeconds != nil {
		if *in.WaitTimeSeconds < 0 || *in.WaitTimeSeconds > int(queue.MaxWait/time.Second) {
			return nil, errInvalid("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *in.WaitTimeSeconds)
		}
		opts.Wait = time.Duration(*in.WaitTimeSeconds) * time.Second
	} else {
		opts.QueueWait = true // the queue's ReceiveMessageWaitTimeSeconds
	}
	if stopping := a.opts.Stopping; stopping != nil && (opts.Wait > 0 || opts.QueueWait) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(stopping, cancel)()
	}
	msgs, err := a.opts.Store.Receive(ctx, name, opts)
	if err != nil && a.opts.Stopping != nil && a.opts.Stopping.Err() != nil {
		msgs, err = nil, nil // the gateway is stopping: the wait ends empty
	}
	if err != nil {
		return nil, storeError(err)
	}
	sysNames := append(slices.Clone(in.AttributeNames), in.MessageSystemAttributeNames...)
	out := struct {
		Messages []messageOutput `json:"Messages,omitempty"`
	}{}
	for _, m := range msgs {
		mo := messageOutput{MessageID: m.ID, ReceiptHandle: m.ReceiptHandle, MD5OfBody: md5Hex(m.Body), Body: m.Body}
		if attrs := selectNames(SystemAttributes(m, a.opts.Region, a.opts.Account), sysNames); len(attrs) > 0 {
			mo.Attributes = attrs
		}
		if user := selectUser(m.Attributes, in.MessageAttributeNames); len(user) > 0 {
			mo.MD5OfMessageAttributes = MD5OfAttributes(user)
			mo.MessageAttributes = wireAttributes(user)
		}
		out.Messages = append(out.Messages, mo)
	}
	return out, nil
}

// selectNames keeps the attributes names asks for ("All" for every one).
func selectNames(attrs map[string]string, names []string) map[string]string {
	if slices.Contains(names, "All") {
		return attrs
	}
	out := map[string]string{}
	for _, n := range names {
		if v, ok := attrs[n]; ok {
			out[n] = v
		}
	}
	return out
}

// selectUser keeps the message attributes names asks for: "All", ".*",
// a name, or a prefix ending in ".*".
func selectUser(attrs map[string]queue.MessageAttribute, names []string) map[string]queue.MessageAttribute {
	out := map[string]queue.MessageAttribute{}
	for k, v := range attrs {
		for _, n := range names {
			if n == "All" || n == ".*" || n == k || strings.HasSuffix(n, ".*") && strings.HasPrefix(k, strings.TrimSuffix(n, "*")) {
				out[k] = v
				break
			}
		}
	}
	return out
}

// wireAttributes are message attributes as the JSON protocol has them.
func wireAttributes(attrs map[string]queue.MessageAttribute) map[string]attributeValue {
	out := make(map[string]attributeValue, len(attrs))
	for k, v := range attrs {
		av := attributeValue{DataType: v.DataType}
		if strings.HasPrefix(v.DataType, "Binary") {
			av.BinaryValue = v.BinaryValue
		} else {
			s := v.StringValue
			av.StringValue = &s
		}
		out[k] = av
	}
	return out
}

type deleteInput struct {
	QueueURL      string `json:"QueueUrl"`
	ReceiptHandle string `json:"ReceiptHandle"`
}

type deleteBatchInput struct {
	QueueURL string `json:"QueueUrl"`
	Entries  []struct {
		ID            string `json:"Id"`
		ReceiptHandle string `json:"ReceiptHandle"`
	} `json:"Entries"`
}

func (a *API) deleteBatch(ctx context.Context, in deleteBatchInput) (any, error) {
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.ID
	}
	return a.eachEntry(in.QueueURL, ids, func(name string, i int) error {
		return a.opts.Store.Delete(ctx, name, in.Entries[i].ReceiptHandle)
	})
}

// receiptQueue is the name of the queue at url, for a call on one of its
// messages by its receipt handle, which must be given.
func (a *API) receiptQueue(url, handle string) (string, error) {
	name, err := a.queueName(url)
	if err != nil {
		return "", err
	}
	if handle == "" {
		return "", errMissing("ReceiptHandle")
	}
	return name, nil
}

// eachEntry runs do on each entry of a batch (DeleteMessageBatch,
// ChangeMessageVisibilityBatch) of the queue at url, once the batch's IDs
// pass checkBatch, and answers which entries succeeded and which failed,
// each with its own error; a queue that does not exist fails the batch.
func (a *API) eachEntry(url string, ids []string, do func(name string, i int) error) (any, error) {
	name, err := a.queueName(url)
	if err != nil {
		return nil, err
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	type success struct {
		ID string `json:"Id"`
	}
	out := struct {
		Successful []success      `json:"Successful"`
		Failed     []batchFailure `json:"Failed"`
	}{Successful: []success{}, Failed: []batchFailure{}}
	for i, id := range ids {
		err := do(name, i)
		if errors.Is(err, queue.ErrNotFound) {
			return nil, errNoQueue
		}
		if err != nil {
			out.Failed = append(out.Failed, entryFailure(id, err))
			continue
		}
		out.Successful = append(out.Successful, success{id})
	}
	return out, nil
}

type changeVisibilityBatchInput struct {
	QueueURL string `json:"QueueUrl"`
	Entries  []struct {
		ID                string `json:"Id"`
		ReceiptHandle     string `json:"ReceiptHandle"`
		VisibilityTimeout int    `json:"VisibilityTimeout"`
	} `json:"Entries"`
}

func (a *API) changeVisibilityBatch(ctx context.Context, in changeVisibilityBatchInput) (any, error) {
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.ID
	}
	return a.eachEntry(in.QueueURL, ids, func(name string, i int) error {
		e := in.Entries[i]
		return a.opts.Store.ChangeVisibility(ctx, name, e.ReceiptHandle, time.Duration(e.VisibilityTimeout)*time.Second)
	})
}

type changeVisibilityInput struct {
	QueueURL          string `json:"QueueUrl"`
	ReceiptHandle     string `json:"ReceiptHandle"`
	VisibilityTimeout *int   `json:"VisibilityTimeout"`
}

func (a *API) attributes(ctx context.Context, rawURL string, names []string) (any, error) {
	name, err := a.queueName(rawURL)
	if err != nil {
		return nil, err
	}
	in, err := a.opts.Store.Info(ctx, name)
	if err != nil {
		return nil, storeError(err)
	}
	at := in.Attributes
	all := map[string]string{
		"QueueArn":                              ARN(a.opts.Region, a.opts.Account, name),
		"ApproximateNumberOfMessages":           strconv.Itoa(in.Visible),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(in.InFlight),
		"ApproximateNumberOfMessagesDelayed":    strconv.Itoa(in.Delayed),
		"VisibilityTimeout":                     strconv.Itoa(int(at.VisibilityTimeout / time.Second)),
		"DelaySeconds":                          strconv.Itoa(int(at.Delay / time.Second)),
		"MessageRetentionPeriod":                strconv.Itoa(int(at.Retention / time.Second)),
		"MaximumMessageSize":                    strconv.Itoa(at.MaxMessageBytes),
		"ReceiveMessageWaitTimeSeconds":         strconv.Itoa(int(at.ReceiveWait / time.Second)),
		"CreatedTimestamp":                      strconv.FormatInt(in.CreatedAt.Unix(), 10),
		"LastModifiedTimestamp":                 strconv.FormatInt(in.CreatedAt.Unix(), 10),
		"SqsManagedSseEnabled":                  "false",
	}
	if at.DeadLetter != "" {
		rp, _ := json.Marshal(map[string]any{"deadLetterTargetArn": ARN(a.opts.Region, a.opts.Account, at.DeadLetter), "maxReceiveCount": at.MaxReceiveCount})
		all["RedrivePolicy"] = string(rp)
	}
	return map[string]map[string]string{"Attributes": selectNames(all, names)}, nil
}
