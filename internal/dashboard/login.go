package dashboard

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// SessionCookie is the name of the cookie that carries a dashboard session.
const SessionCookie = "switchboard_session"

// DefaultSessionTTL is how long a dashboard session lasts unless
// LoginOptions.SessionTTL says otherwise.
const DefaultSessionTTL = 12 * time.Hour

// Credentials are what the sign-in form carries: a management token, or an
// access key ID and its secret.
type Credentials struct {
	Token           string
	AccessKeyID     string
	SecretAccessKey string
}

// Refusal is why the sign-in refused a request, for metrics and logs.
type Refusal string

const (
	RefusedCredentials Refusal = "login_failed" // the credentials are not among the configured ones
	RefusedRate        Refusal = "login_rate"   // too many sign-in attempts from the address
	RefusedOrigin      Refusal = "cross_origin" // a POST whose Origin is not the gateway's own
)

// LoginOptions configures the sign-in in front of the dashboard. The zero
// value signs nobody in; set Check and SameOrigin.
type LoginOptions struct {
	// Check reports whether c are credentials the management API accepts.
	// It must take as long for wrong credentials as for right ones. Nil
	// accepts none.
	Check func(c Credentials) bool
	// SameOrigin reports whether a request's Origin is the gateway's own.
	// Every POST of a signed-in page, sign-in and sign-out included, must
	// pass it: SameSite=Strict keeps the cookie from other sites, and this
	// keeps other origins of the same site (another port of localhost) out.
	// Nil refuses every POST.
	SameOrigin func(r *http.Request) bool
	// Tokens and AccessKeys say which forms the sign-in page offers.
	Tokens, AccessKeys bool
	// SessionTTL is how long a session lasts from sign-in. Zero or less
	// means DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions held; signing in past it ends the
	// session closest to its expiry. Zero or less means 1000.
	MaxSessions int
	// Attempts is how many sign-in attempts one address may make per
	// minute, right or wrong, in bursts of as many. Zero or less means 10.
	Attempts int
	// Refused, when set, is told of each refused sign-in or refused POST.
	Refused func(r *http.Request, reason Refusal)
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// maxTrackedAddrs bounds the addresses whose sign-in attempts are counted;
// past it, an address that has not used up its attempts is forgotten, and
// when none is, a new address's attempt is refused.
const maxTrackedAddrs = 10000

func (o LoginOptions) withDefaults() LoginOptions {
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1000
	}
	if o.Attempts <= 0 {
		o.Attempts = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Check == nil {
		o.Check = func(Credentials) bool { return false }
	}
	if o.SameOrigin == nil {
		o.SameOrigin = func(*http.Request) bool { return false }
	}
	return o
}

// Login is the sign-in in front of the dashboard when the management API
// needs credentials: a page that exchanges a token or an access key for a
// session cookie, and the sessions, held in memory with their expiry (a
// restart signs everyone out). A session opens the dashboard and its
// /_/api/ calls only: the management API itself keeps asking for
// credentials on every call. Safe for concurrent use.
type Login struct {
	opts LoginOptions
	page *template.Template

	mu       sync.Mutex
	sessions map[[sha256.Size]byte]time.Time // SHA-256 of the session ID -> expiry
	attempts map[string]*rate.Limiter        // source address -> its sign-in attempts
}

// NewLogin returns the sign-in.
func NewLogin(opts LoginOptions) *Login {
	body, err := assets.ReadFile("assets/login.html")
	if err != nil {
		panic("dashboard: missing embedded asset login.html") // a build error, not a runtime one
	}
	return &Login{
		opts:     opts.withDefaults(),
		page:     template.Must(template.New("login").Parse(string(body))),
		sessions: make(map[[sha256.Size]byte]time.Time),
		attempts: make(map[string]*rate.Limiter),
	}
}

// Serve handles r when it is the sign-in's to answer, and reports whether
// it did; when it did not, the caller checks r's credentials as for any
// management request. It answers:
//
//	GET  /_/login, and any page under /_/ without a session or credentials:
//	     the sign-in page (401 but for /_/login itself)
//	POST /_/login   sign in: a session cookie and 303 to the dashboard
//	POST /_/logout  sign out: the session ends, 303 to the sign-in page
//	GET  /_/style.css, GET /_: the sign-in page's stylesheet, the redirect to /_/
//	GET  /_/api/session with a session: {"expiresAt": ...}
//
// and sends a request with a valid session to next, once its Origin passed
// SameOrigin if it is not a GET or HEAD. A request under /_/api/ without a
// session, or with an Authorization header or a token in its query, is left
// to the caller.
func (l *Login) Serve(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch p := r.URL.Path; {
	case p == "/_/login":
		switch {
		case safe:
			l.render(w, http.StatusOK, "")
		case r.Method == http.MethodPost:
			l.login(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
		return true
	case p == "/_/logout":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return true
		}
		l.logout(w, r)
		return true
	case safe && (p == "/_/style.css" || p == "/_"):
		next.ServeHTTP(w, r)
		return true
	}
	if expires, ok := l.session(r); ok {
		if !safe && !l.opts.SameOrigin(r) {
			l.refused(r, RefusedOrigin)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"Forbidden: the request did not come from the dashboard's page"}` + "\n"))
			return true
		}
		if r.URL.Path == "/_/api/session" && safe {
			writeJSON(w, map[string]time.Time{"expiresAt": expires.UTC()})
			return true
		}
		next.ServeHTTP(w, r)
		return true
	}
	q := r.URL.Query()
	if r.Header.Get("Authorization") != "" || q.Has("access_token") || q.Has("X-Amz-Signature") {
		return false
	}
	if safe && !strings.HasPrefix(r.URL.Path, "/_/api/") {
		l.render(w, http.StatusUnauthorized, "")
		return true
	}
	return false
}

// session returns the expiry of r's session, if it has a current one.
func (l *Login) session(r *http.Request) (time.Time, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return time.Time{}, false
	}
	key := sha256.Sum256([]byte(c.Value)) // a lookup by hash: its timing tells nothing of the IDs held
	l.mu.Lock()
	defer l.mu.Unlock()
	expires, ok := l.sessions[key]
	if !ok {
		return time.Time{}, false
	}
	if !l.opts.Now().Before(expires) {
		delete(l.sessions, key)
		return time.Time{}, false
	}
	return expires, true
}

func (l *Login) login(w http.ResponseWriter, r *http.Request) {
	if !l.opts.SameOrigin(r) {
		l.refused(r, RefusedOrigin)
		l.render(w, http.StatusForbidden, "The sign-in was refused: it was not sent from this gateway's own page.")
		return
	}
	if !l.allow(sourceAddr(r)) {
		l.refused(r, RefusedRate)
		w.Header().Set("Retry-After", "60")
		l.render(w, http.StatusTooManyRequests, fmt.Sprintf("Too many sign-in attempts from your address: at most %d a minute. Wait a minute and try again.", l.opts.Attempts))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		l.render(w, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	c := Credentials{
		Token:           strings.TrimSpace(r.PostForm.Get("token")),
		AccessKeyID:     strings.TrimSpace(r.PostForm.Get("accessKeyId")),
		SecretAccessKey: strings.TrimSpace(r.PostForm.Get("secretAccessKey")),
	}
	if c == (Credentials{}) {
		l.render(w, http.StatusBadRequest, "Enter a token, or an access key ID and its secret.")
		return
	}
	if !l.opts.Check(c) {
		l.refused(r, RefusedCredentials)
		what := "That token is not"
		if c.Token == "" {
			what = "That access key ID and secret are not"
		}
		l.render(w, http.StatusUnauthorized, what+" accepted by this gateway.")
		return
	}
	id := make([]byte, 32) // 256 bits
	_, _ = rand.Read(id)   // never fails (crypto/rand)
	value := base64.RawURLEncoding.EncodeToString(id)
	expires := l.opts.Now().Add(l.opts.SessionTTL)
	l.add(sha256.Sum256([]byte(value)), expires)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/_/", MaxAge: int(l.opts.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "./") // /_/, relative so that a path prefix keeps working
	w.WriteHeader(http.StatusSeeOther)
}

func (l *Login) logout(w http.ResponseWriter, r *http.Request) {
	if !l.opts.SameOrigin(r) {
		l.refused(r, RefusedOrigin)
		l.render(w, http.StatusForbidden, "The sign-out was refused: it was not sent from this gateway's own page.")
		return
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		key := sha256.Sum256([]byte(c.Value))
		l.mu.Lock()
		delete(l.sessions, key)
		l.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/_/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "login")
	w.WriteHeader(http.StatusSeeOther)
}

// add keeps a session, ending the expired ones and, at MaxSessions, the
// one closest to its expiry.
func (l *Login) add(key [sha256.Size]byte, expires time.Time) {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sessions) >= l.opts.MaxSessions {
		var first [sha256.Size]byte
		var firstAt time.Time
		for k, at := range l.sessions {
			if !now.Before(at) {
				delete(l.sessions, k)
			} else if firstAt.IsZero() || at.Before(firstAt) {
				first, firstAt = k, at
			}
		}
		if len(l.sessions) >= l.opts.MaxSessions {
			delete(l.sessions, first)
		}
	}
	l.sessions[key] = expires
}

// Sessions returns how many sessions are held, expired ones included until
// they are next looked at.
func (l *Login) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

// allow takes one sign-in attempt of addr from its allowance.
func (l *Login) allow(addr string) bool {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.attempts[addr]
	if !ok {
		if len(l.attempts) >= maxTrackedAddrs {
			for a, other := range l.attempts {
				if other.TokensAt(now) >= float64(l.opts.Attempts) {
					delete(l.attempts, a) // back to a full allowance: nothing to remember
				}
			}
			if len(l.attempts) >= maxTrackedAddrs {
				return false
			}
		}
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.opts.Attempts)), l.opts.Attempts)
		l.attempts[addr] = lim
	}
	return lim.AllowN(now, 1)
}

func (l *Login) refused(r *http.Request, reason Refusal) {
	if l.opts.Refused != nil {
		l.opts.Refused(r, reason)
	}
}

// sourceAddr is the address a request came from, without its port.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginPage is what the sign-in page shows.
type loginPage struct {
	TTL                string
	Error              string
	Tokens, AccessKeys bool
}

func (l *Login) render(w http.ResponseWriter, status int, msg string) {
	var b bytes.Buffer
	err := l.page.Execute(&b, loginPage{TTL: humanDuration(l.opts.SessionTTL), Error: msg, Tokens: l.opts.Tokens, AccessKeys: l.opts.AccessKeys})
	if err != nil {
		http.Error(w, "sign-in page: "+err.Error(), http.StatusInternalServerError) // a template bug
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[".html"])
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", referrerPolicy)
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// humanDuration writes d in whole hours or minutes when it is one.
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	return d.String()
}
