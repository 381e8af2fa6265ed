package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// manageText is the paragraph of every management command's help.
const manageText = `Calls the management API of a gateway (or of API Gateway itself): post sends
DATA to one connection ("-" reads DATA from stdin, as for publish and
broadcast), or, given IDs separated by commas, to each of them in one call
(POST /@connections, a Switchboard extension) and names those that were
gone or slow, get prints a connection's details as indented JSON, delete closes
it with 1000, publish sends DATA to a topic's subscribers, broadcast sends it
to every connection, and list prints the open connections as JSON, one page or,
with --all, every page. users prints a page of the users online as JSON; user
send sends DATA to every connection of a user and says how many got it, user
list prints its connections as JSON, user disconnect closes them all with
1000; presence prints how many connections subscribe to TOPIC and a page of
them as JSON (Switchboard extensions). The API is at --endpoint (env SWITCHBOARD_ENDPOINT,
default ` + defaultEndpoint + `). With --token (env SWITCHBOARD_TOKEN, or the gateway's SWITCHBOARD_MANAGEMENT_TOKEN) each
request carries "Authorization: Bearer TOKEN"; otherwise, given an access key
(--access-key-id and --secret-access-key, or AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN), each request is signed with
SigV4 for the service execute-api in --region (env AWS_REGION, default
us-east-1). For an https:// endpoint, --cacert adds a CA to trust (the gateway's
local CA: 'switchboard ca') and --insecure skips the verification, saying so
on stderr. A refused call fails with its HTTP status, error type and message.`

// manageExamples are each management command's examples. CONNECTION_ID
// and OTHER_ID stand for IDs of open connections ('switchboard list').
var manageExamples = map[string][]string{
	"post": {
		`switchboard post CONNECTION_ID 'hello'`,
		`echo '{"status":"shipped"}' | switchboard post CONNECTION_ID -`,
		`switchboard post CONNECTION_ID,OTHER_ID 'hello to both'`,
		`switchboard post CONNECTION_ID 'hello' --endpoint http://127.0.0.1:3001/dev`,
	},
	"get":    {`switchboard get CONNECTION_ID`},
	"delete": {`switchboard delete CONNECTION_ID`},
	"publish": {
		`switchboard publish order-42 '{"status":"shipped"}'`,
	},
	"broadcast": {`switchboard broadcast 'to everyone'`},
	"list": {
		`switchboard list`,
		`switchboard list --all`,
		`switchboard list --limit 10 --endpoint http://127.0.0.1:3001`,
	},
	"users":           {`switchboard users`, `switchboard users --limit 10`},
	"user send":       {`switchboard user send alice 'hello, every tab'`},
	"user list":       {`switchboard user list alice`},
	"user disconnect": {`switchboard user disconnect alice`},
	"presence":        {`switchboard presence chat`},
	// Only list runs against a gateway without queues, as every example
	// must; show and redrive take a queue of the configuration.
	"queues list": {`switchboard queues list`, `switchboard queues list --endpoint http://127.0.0.1:3001`},
}

// userHelp is the help text of `switchboard user`, whose verb comes first.
func userHelp() *Help {
	h := &Help{Usage: []string{"switchboard user send|list|disconnect [flags] USER_ID [DATA]"}, Text: manageText}
	for _, verb := range []string{"send", "list", "disconnect"} {
		h.Examples = append(h.Examples, manageExamples["user "+verb]...)
	}
	return h
}

// ManageHelp returns the help text of a management command.
func ManageHelp(command string) *Help {
	names := manageArgs[command]
	text := manageText
	if strings.HasPrefix(command, "queues ") {
		text = queuesText
	}
	return &Help{
		Usage:    []string{"switchboard " + strings.TrimSpace(command+" [flags] "+strings.Join(names, " "))},
		Text:     text,
		Examples: manageExamples[command],
	}
}

const (
	// defaultEndpoint is the management API of `switchboard serve` run
	// without configuration.
	defaultEndpoint = "http://127.0.0.1:3001/dev"
	defaultRegion   = "us-east-1"
	signingService  = "execute-api"
	requestTimeout  = 30 * time.Second
	maxResponseBody = 64 << 20 // a list page of 1000 connections is well under 1 MiB
)

// The management commands: their positional arguments.
var manageArgs = map[string][]string{
	"post":      {"CONNECTION_ID", "DATA"},
	"get":       {"CONNECTION_ID"},
	"delete":    {"CONNECTION_ID"},
	"publish":   {"TOPIC", "DATA"},
	"broadcast": {"DATA"},
	"list":      nil,

	"users":           nil,
	"user send":       {"USER_ID", "DATA"},
	"user list":       {"USER_ID"},
	"user disconnect": {"USER_ID"},
	"presence":        {"TOPIC"},

	"queues list":    {},
	"queues show":    {"QUEUE"},
	"queues redrive": {"QUEUE"},
}

// Manage runs the management command named by command ("post", "get",
// "delete", "publish", "broadcast" or "list"); args are its flags and
// arguments. Results go to stdout; a refused call returns an error naming
// the HTTP status, x-amzn-ErrorType and message ("410 GoneException: the
// connection is gone"). DATA "-" is read from the process's standard input.
// Secrets (token, secret access key) are never printed, not even as flag
// defaults in the help text.
func Manage(ctx context.Context, command string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return manage(ctx, command, args, getenv, os.Stdin, stdout, stderr)
}

func manage(ctx context.Context, command string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if command == "user" || command == "queues" { // its verb is the first argument
		h := userHelp()
		if command == "queues" {
			h = queuesHelp()
		}
		if len(args) > 0 && WantsHelp(args[:1]) {
			h.Write(stdout, nil)
			return flag.ErrHelp
		}
		if len(args) == 0 || manageArgs[command+" "+args[0]] == nil {
			return Usagef("usage: %s", h.Usage[0])
		}
		command, args = command+" "+args[0], args[1:]
	}
	names, ok := manageArgs[command]
	if !ok {
		return Usagef("unknown management command %q", command)
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	fs := NewFlagSet(command)
	var o clientOptions
	// Defaults stay empty and the environment is read after parsing, so
	// that -h never prints a secret taken from the environment.
	fs.StringVar(&o.endpoint, "endpoint", "", "management API base URL (env SWITCHBOARD_ENDPOINT; default "+defaultEndpoint+")")
	fs.StringVar(&o.token, "token", "", "send \"Authorization: Bearer TOKEN\"; wins over signing keys (env SWITCHBOARD_TOKEN)")
	fs.StringVar(&o.accessKeyID, "access-key-id", "", "sign requests with SigV4 using this access key ID (env AWS_ACCESS_KEY_ID)")
	fs.StringVar(&o.secretAccessKey, "secret-access-key", "", "secret access key for --access-key-id (env AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&o.region, "region", "", "SigV4 signing region (env AWS_REGION; default "+defaultRegion+")")
	fs.StringVar(&o.caFile, "cacert", "", "PEM file of a CA to trust for an https:// endpoint, besides the system's roots (the gateway's local CA: 'switchboard ca')")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify an https:// endpoint's TLS certificate; a warning goes to stderr")
	var limit int
	var all bool
	var cursor string
	if command == "users" || command == "presence" {
		fs.IntVar(&limit, "limit", 0, "items per page (0: the server's default, 100)")
		fs.StringVar(&cursor, "cursor", "", "start after this cursor, a nextCursor of an earlier page")
	}
	if command == "list" {
		fs.IntVar(&limit, "limit", 0, "connections per page (0: the server's default, 100)")
		fs.StringVar(&cursor, "cursor", "", "start after this cursor, a nextCursor of an earlier page")
		fs.BoolVar(&all, "all", false, "follow nextCursor to list every connection")
	}
	help := ManageHelp(command)
	synopsis := help.Usage[0]
	pos, err := parseArgs(fs, args)
	if err != nil {
		return parseError(err, fs, help, stdout)
	}
	if len(pos) != len(names) || (len(names) > 0 && names[0] != "DATA" && pos[0] == "") {
		if a, ok := unknownFlag(pos); ok && len(pos) > len(names) {
			return Usagef("flag provided but not defined: %s (usage: %s)", a, synopsis)
		}
		return Usagef("usage: %s", synopsis)
	}
	if limit < 0 {
		return Usagef("--limit must not be negative")
	}
	c, err := newClient(o, getenv)
	if err != nil {
		return err
	}
	defer c.close()
	if o.insecure {
		fmt.Fprintln(stderr, "Warning: --insecure: the server's TLS certificate is not verified")
	}

	data := func(arg string) ([]byte, error) {
		if arg != "-" {
			return []byte(arg), nil
		}
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	switch command {
	case "post":
		id := pos[0]
		body, err := data(pos[1])
		if err != nil {
			return err
		}
		if ids := strings.Split(id, ","); len(ids) > 1 {
			return postMany(ctx, c, ids, body, stdout)
		}
		if _, err := c.do(ctx, http.MethodPost, "/@connections/"+escapeSegment(id), nil, body); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		fmt.Fprintf(stdout, "sent %s to %s\n", plural(len(body), "byte"), id)
	case "get":
		id := pos[0]
		resp, err := c.do(ctx, http.MethodGet, "/@connections/"+escapeSegment(id), nil, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, bytes.TrimSpace(resp), "", "  "); err != nil {
			return fmt.Errorf("%s: the answer is not JSON: %w", id, err)
		}
		out.WriteByte('\n')
		_, _ = out.WriteTo(stdout)
	case "delete":
		id := pos[0]
		if _, err := c.do(ctx, http.MethodDelete, "/@connections/"+escapeSegment(id), nil, nil); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		fmt.Fprintf(stdout, "deleted %s\n", id)
	case "publish", "broadcast":
		path, op := "/@broadcast", "broadcast"
		if command == "publish" {
			path, op = "/@topics/"+escapeSegment(pos[0]), pos[0]
		}
		body, err := data(pos[len(pos)-1])
		if err != nil {
			return err
		}
		resp, err := c.do(ctx, http.MethodPost, path, nil, body)
		if err != nil {
			if command == "broadcast" {
				return err
			}
			return fmt.Errorf("%s: %w", op, err)
		}
		var d struct {
			Recipients *int `json:"recipients"`
		}
		if err := json.Unmarshal(resp, &d); err != nil || d.Recipients == nil {
			return fmt.Errorf("unexpected answer %.200q", resp)
		}
		fmt.Fprintf(stdout, "delivered to %s\n", plural(*d.Recipients, "connection"))
	case "list":
		page, err := c.list(ctx, limit, cursor, all)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(page, "", "  ")
		if err != nil {
			return err
		}
		_, _ = stdout.Write(append(b, '\n'))
	case "queues list", "queues show", "queues redrive":
		return manageQueues(ctx, c, command, pos, stdout)
	default:
		return manageUsers(ctx, c, command, pos, data, limit, cursor, stdout)
	}
	return nil
}

// postMany sends body to every connection of ids with one POST
// /@connections, and prints what became of them.
func postMany(ctx context.Context, c *client, ids []string, body []byte, stdout io.Writer) error {
	req, err := json.Marshal(struct {
		IDs  []string `json:"connectionIds"`
		Data string   `json:"data"`
	}{ids, string(body)})
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/@connections", nil, req)
	if err != nil {
		return fmt.Errorf("to %s: %w", plural(len(ids), "connection"), err)
	}
	return printDelivery(resp, fmt.Sprintf("sent %s to", plural(len(body), "byte")), "", stdout)
}

// printDelivery prints an answer of POST /@connections or of POST and
// DELETE /@users/{user}: "VERB N connections[ of WHOSE]", then the IDs that
// were gone, slow (and closed) or failed, a line each.
func printDelivery(resp []byte, verb, whose string, stdout io.Writer) error {
	var r struct {
		Delivered *int     `json:"delivered"`
		Gone      []string `json:"gone"`
		Slow      []string `json:"slow"`
		Failed    []string `json:"failed"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || r.Delivered == nil {
		return fmt.Errorf("unexpected answer %.200q", resp)
	}
	line := verb + " " + plural(*r.Delivered, "connection")
	if whose != "" {
		line += " of " + whose
	}
	fmt.Fprintln(stdout, line)
	for _, l := range []struct {
		name string
		ids  []string
	}{{"gone", r.Gone}, {"slow, closed", r.Slow}, {"failed", r.Failed}} {
		if len(l.ids) > 0 {
			fmt.Fprintf(stdout, "%s: %s\n", l.name, strings.Join(l.ids, " "))
		}
	}
	return nil
}

// clientOptions are the flags common to the management commands.
type clientOptions struct {
	endpoint, token                      string
	accessKeyID, secretAccessKey, region string
	caFile                               string // --cacert
	insecure                             bool
}

// client calls the management API. It signs requests when it has
// credentials, else sends the bearer token, when there is one.
type client struct {
	endpoint string // base URL without a trailing slash
	token    string
	creds    *aws.Credentials
	region   string
	signer   *v4.Signer
	tr       *http.Transport
	http     *http.Client
}

// newClient resolves flags, then the environment, then defaults.
func newClient(o clientOptions, getenv func(string) string) (*client, error) {
	or := func(v, env string) string {
		if v != "" {
			return v
		}
		return getenv(env)
	}
	endpoint := or(o.endpoint, "SWITCHBOARD_ENDPOINT")
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, Usagef("--endpoint %q: want http(s)://host[:port][/stage]", endpoint)
	}
	endpoint = strings.TrimSuffix(strings.TrimRight(endpoint, "/"), "/@connections")

	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tr.TLSClientConfig, err = tlsConfig(o.caFile, o.insecure); err != nil {
		return nil, err
	}
	c := &client{
		endpoint: endpoint,
		// The gateway's own variable works too, so one environment serves both.
		token: cmp.Or(or(o.token, "SWITCHBOARD_TOKEN"), getenv("SWITCHBOARD_MANAGEMENT_TOKEN")),
		tr:    tr,
		http: &http.Client{
			Transport: tr,
			Timeout:   requestTimeout,
			// A redirect is shown, not followed: a signed request is for one URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	id, secret := o.accessKeyID, o.secretAccessKey
	session := ""
	if id == "" && secret == "" {
		// A session token belongs to the environment's key pair, not to keys given as flags.
		id, secret, session = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
	}
	switch {
	case c.token != "":
		// The token wins: signing keys in the environment are common and may be meant for AWS.
	case id != "" && secret != "":
		c.creds = &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: session}
		c.signer = v4.NewSigner()
		c.region = o.region
		if c.region == "" {
			c.region = or(getenv("AWS_REGION"), "AWS_DEFAULT_REGION")
		}
		if c.region == "" {
			c.region = defaultRegion
		}
	case id != "" || secret != "":
		return nil, Usagef("signing needs both --access-key-id and --secret-access-key")
	}
	return c, nil
}

// close releases the client's idle connections.
func (c *client) close() { c.tr.CloseIdleConnections() }

// do sends one request and returns the body of a 2xx answer, or an *HTTPError.
// path is already escaped.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body []byte) ([]byte, error) {
	u := c.endpoint + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.creds != nil:
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		if err := c.signer.SignHTTP(ctx, *c.creds, req, hash, signingService, c.region, time.Now()); err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	return nil, newAPIError(resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), b)
}

// newAPIError reads an AWS-style error answer: {"message": "..."} (or
// "Message"), the type in x-amzn-ErrorType.
func newAPIError(status int, typ string, body []byte) *HTTPError {
	typ, _, _ = strings.Cut(typ, ":")
	e := &HTTPError{Status: status, Type: strings.TrimSpace(typ)}
	var m struct {
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	if json.Unmarshal(body, &m) == nil {
		e.Message = m.Message
		if e.Message == "" {
			e.Message = m.MessageU
		}
	} else if s := strings.TrimSpace(string(body)); s != "" {
		e.Message = printable(s[:min(len(s), 200)])
	}
	if e.Message == "" && e.Type == "GoneException" { // API Gateway sends it with an empty body
		e.Message = "the connection is gone"
	}
	return e
}

// listPage is GET /@connections's answer. Items are kept as they came, so
// that fields this client does not know are printed too.
type listPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// list fetches one page, or every page from cursor on when all is set.
func (c *client) list(ctx context.Context, limit int, cursor string, all bool) (*listPage, error) {
	out := &listPage{Items: []json.RawMessage{}}
	seen := map[string]bool{}
	for {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := c.do(ctx, http.MethodGet, "/@connections", q, nil)
		if err != nil {
			return nil, err
		}
		var page listPage
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("the answer is not a page of connections: %w", err)
		}
		out.Items = append(out.Items, page.Items...)
		if !all {
			out.NextCursor = page.NextCursor
			return out, nil
		}
		if page.NextCursor == "" {
			return out, nil
		}
		if seen[page.NextCursor] {
			return nil, fmt.Errorf("the server sent cursor %q twice", page.NextCursor)
		}
		seen[page.NextCursor] = true
		cursor = page.NextCursor
	}
}

// escapeSegment escapes a connection ID or topic for the path as the AWS
// SDKs escape path labels: every byte but RFC 3986's unreserved characters,
// so "=" becomes %3D.
func escapeSegment(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
