package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Request/reply envelope. The payload is the caller's bytes untouched; the
// envelope lives in NATS message headers so that handler errors travel back
// as data instead of being indistinguishable from silence (a timeout).
const (
	hdrRequestID = "Up-Request-Id" // set by Call, echoed by the handler
	hdrTimeoutMS = "Up-Timeout-Ms" // the caller's per-attempt timeout
	hdrError     = "Up-Error"      // handler error message (reply only)
	hdrErrorCode = "Up-Error-Code" // optional machine-readable code
)

// maxInflightPerHandler bounds the handler goroutines of one Handle call.
// Beyond it the subscription stops reading, which pushes back on callers.
const maxInflightPerHandler = 64

// Handler serves one request. ctx is cancelled when the handler is stopped
// and carries the caller's per-attempt deadline; an error returned after ctx
// ended is not sent back (the caller has timed out and may retry).
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// CallOptions tunes Call.
type CallOptions struct {
	// Timeout bounds each attempt; default 5 s.
	Timeout time.Duration
	// Retries is the number of extra attempts after a timeout or when no
	// handler is subscribed. Remote errors are never retried.
	Retries int
	// Backoff is the pause before the first retry, doubled on each further
	// retry up to 16x; default 100 ms.
	Backoff time.Duration
}

var (
	// ErrTimeout means no reply arrived within CallOptions.Timeout.
	ErrTimeout = errors.New("transport: request timed out")
	// ErrNoResponders means no handler was subscribed to the subject.
	ErrNoResponders = errors.New("transport: no responders for request")
)

// CodeBadRequest is the RemoteError.Code of requests a JSON handler could not decode.
const CodeBadRequest = "bad_request"

// RemoteError is a handler's error, received by Call.
type RemoteError struct {
	Subject   string
	RequestID string
	Code      string // from WithCode, or "" if the handler gave none
	Message   string
}

func (e *RemoteError) Error() string {
	code := ""
	if e.Code != "" {
		code = " [" + e.Code + "]"
	}
	return fmt.Sprintf("transport: remote error from %s (request %s)%s: %s", e.Subject, e.RequestID, code, e.Message)
}

type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// WithCode attaches a machine-readable code to a handler error; the caller
// sees it as RemoteError.Code.
func WithCode(code string, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// Handle serves requests on subject. With a non-empty queue, handlers on the
// same subject and queue share the load (each request goes to one of them).
// Requests run concurrently (up to 64 at a time per Handle). stop
// unsubscribes, cancels running handlers' contexts and waits for them.
func (c *Conn) Handle(subject, queue string, h Handler) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu     sync.Mutex
		closed bool
		wg     sync.WaitGroup
		sem    = make(chan struct{}, maxInflightPerHandler)
	)
	cb := func(m *nats.Msg) {
		sem <- struct{}{}
		mu.Lock()
		if closed {
			mu.Unlock()
			<-sem
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.serve(ctx, m, h)
		}()
	}
	var sub *nats.Subscription
	if queue == "" {
		sub, err = c.nc.Subscribe(subject, cb)
	} else {
		sub, err = c.nc.QueueSubscribe(subject, queue, cb)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("transport: handle %s: %w", subject, err)
	}
	// Make sure the server knows about the handler before we report success,
	// so a Call issued right after Handle returns finds it.
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil {
		c.log.Warn("flush after subscribe failed", "subject", subject, "err", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			closed = true
			mu.Unlock()
			_ = sub.Unsubscribe()
			cancel()
			wg.Wait()
		})
	}, nil
}

type requestIDKey struct{}

// RequestID returns the ID of the request a Handler is serving ("" outside a
// handler). All retries of one Call share it.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func (c *Conn) serve(base context.Context, m *nats.Msg, h Handler) {
	ctx := context.WithValue(base, requestIDKey{}, m.Header.Get(hdrRequestID))
	if c.roster != nil {
		id, err := c.verify(m, time.Now())
		if err != nil {
			c.log.Warn("refusing a request", "subject", m.Subject, "err", err)
			c.reply(m, nil, WithCode(CodeUnauthorized, err))
			return
		}
		ctx = context.WithValue(ctx, callerKey{}, id)
	}
	if ms, err := strconv.ParseInt(m.Header.Get(hdrTimeoutMS), 10, 64); err == nil && ms > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		defer cancel()
	}
	resp, herr := runHandler(ctx, h, m.Data)
	if m.Reply == "" {
		if herr != nil {
			c.log.Warn("handler error on a request without reply subject", "subject", m.Subject, "err", herr)
		}
		return
	}
	if herr != nil && ctx.Err() != nil {
		// The caller's deadline passed or the handler is being stopped: the
		// caller has given up (or will retry, maybe on another queue member),
		// and an error reply would only race with its timeout.
		c.log.Debug("not replying after context end", "subject", m.Subject, "err", herr)
		return
	}
	c.reply(m, resp, herr)
}

// reply answers m with resp or, if herr is set, with herr's message and code.
func (c *Conn) reply(m *nats.Msg, resp []byte, herr error) {
	if m.Reply == "" {
		return
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(hdrRequestID, m.Header.Get(hdrRequestID))
	if herr == nil && len(resp)+512 > c.MaxPayload() {
		herr = fmt.Errorf("reply of %d bytes exceeds the server's max payload %d", len(resp), c.MaxPayload())
	}
	if herr != nil {
		setErrorHeaders(out.Header, herr)
	} else {
		out.Data = resp
	}
	if err := m.RespondMsg(out); err != nil {
		c.log.Warn("sending reply failed", "subject", m.Subject, "err", err)
	}
}

// runHandler turns a handler panic into an error reply: one bad request must
// not take the whole shard down.
func runHandler(ctx context.Context, h Handler, req []byte) (resp []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return h(ctx, req)
}

func setErrorHeaders(h nats.Header, err error) {
	msg := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, err.Error())
	if len(msg) > 4096 {
		msg = msg[:4096] + "..."
	}
	if msg == "" {
		msg = "error without message"
	}
	h.Set(hdrError, msg)
	var ce *codedError
	if errors.As(err, &ce) && ce.code != "" {
		h.Set(hdrErrorCode, ce.code)
	}
}

func (o CallOptions) withDefaults() CallOptions {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	return o
}

// Call sends req to the handler of subject and returns its reply. A handler
// error is returned as *RemoteError without retrying. Timeouts and missing
// handlers are retried opt.Retries times with the same request ID; the final
// error wraps ErrTimeout or ErrNoResponders.
//
// Retrying means a handler may see the same request more than once (e.g. when
// only its reply was lost): with retries, delivery is at least once. Making
// that harmless is the caller's job: send idempotent requests, or have the
// handler dedupe on RequestID(ctx), which is the same for every attempt.
func (c *Conn) Call(ctx context.Context, subject string, req []byte, opt CallOptions) ([]byte, error) {
	opt = opt.withDefaults()
	id := nuid.Next()
	backoff := opt.Backoff
	var lastErr error
	for attempt := 0; attempt <= opt.Retries; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, backoff); err != nil {
				return nil, fmt.Errorf("transport: call %s (request %s): %w (last attempt: %v)", subject, id, err, lastErr)
			}
			backoff = min(2*backoff, 16*opt.Backoff)
		}
		resp, err := c.callOnce(ctx, subject, id, req, opt.Timeout)
		if err == nil || !(errors.Is(err, ErrTimeout) || errors.Is(err, ErrNoResponders)) {
			return resp, err
		}
		lastErr = err
		c.log.Debug("call attempt failed", "subject", subject, "request", id, "attempt", attempt+1, "err", err)
	}
	return nil, fmt.Errorf("transport: call %s (request %s) failed after %d attempt(s): %w",
		subject, id, opt.Retries+1, lastErr)
}

func (c *Conn) callOnce(ctx context.Context, subject, id string, req []byte, timeout time.Duration) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := nats.NewMsg(subject)
	msg.Data = req
	msg.Header.Set(hdrRequestID, id)
	msg.Header.Set(hdrTimeoutMS, strconv.FormatInt(timeout.Milliseconds(), 10))
	if err := c.sign(msg); err != nil {
		return nil, err
	}
	m, err := c.nc.RequestMsgWithContext(actx, msg)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("transport: call %s (request %s): %w", subject, id, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("%w after %v", ErrTimeout, timeout)
	case errors.Is(err, nats.ErrNoResponders):
		return nil, ErrNoResponders
	default:
		return nil, fmt.Errorf("transport: call %s (request %s): %w", subject, id, err)
	}
	if got := m.Header.Get(hdrRequestID); got != id {
		return nil, fmt.Errorf("transport: call %s: reply carries request id %q, want %q (handler not using this package?)",
			subject, got, id)
	}
	if e := m.Header.Get(hdrError); e != "" {
		return nil, &RemoteError{Subject: subject, RequestID: id, Code: m.Header.Get(hdrErrorCode), Message: e}
	}
	return m.Data, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CallJSON marshals req, calls subject and unmarshals the reply into resp
// (which may be nil to ignore the reply).
func CallJSON(ctx context.Context, c *Conn, subject string, req, resp any, opt CallOptions) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("transport: call %s: encode request: %w", subject, err)
	}
	out, err := c.Call(ctx, subject, b, opt)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("transport: call %s: decode reply: %w", subject, err)
	}
	return nil
}

// HandleJSON is Handle with JSON-encoded request and reply. A request that
// does not decode into Req is answered with a RemoteError of code
// CodeBadRequest without calling h.
func HandleJSON[Req, Resp any](c *Conn, subject, queue string,
	h func(ctx context.Context, req Req) (Resp, error)) (stop func(), err error) {
	return c.Handle(subject, queue, func(ctx context.Context, b []byte) ([]byte, error) {
		var req Req
		if err := json.Unmarshal(b, &req); err != nil {
			return nil, WithCode(CodeBadRequest, fmt.Errorf("decode %T: %w", req, err))
		}
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	})
}
