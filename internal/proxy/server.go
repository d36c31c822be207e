package proxy

import (
	"bytes"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/reload"
)

// NewServer returns the HTTP server of one listener, ready for Serve (an
// outbound listener) or ServeTLS with empty file names (an inbound one: its
// TLSConfig carries the live SVID). holder is the inbound listener's policy.
func NewServer(lc config.Listener, holder *reload.Holder, deps Deps) *http.Server {
	h := newHandler(lc, holder, deps)
	handshakes := deps.Metrics.TLSHandshakes
	srv := &http.Server{
		Addr:              lc.Address,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          250,
			MaxReceiveBufferPerConnection: 1 << 20,
			MaxReceiveBufferPerStream:     256 << 10,
		},
		ErrorLog: log.New(&serverLog{
			log:    deps.Log.With("listener", lc.Name),
			failed: func() { handshakes.WithLabelValues(lc.Name, "error").Inc() },
		}, "", 0),
		Protocols: new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	switch lc.Mode {
	case config.Inbound:
		srv.Protocols.SetHTTP2(true)
		tds := make([]spiffeid.TrustDomain, 0, len(lc.TrustDomains))
		for _, td := range lc.TrustDomains {
			tds = append(tds, td.TrustDomain)
		}
		if len(tds) == 0 {
			tds = append(tds, deps.Identity.ID().TrustDomain())
		}
		ok := handshakes.WithLabelValues(lc.Name, "ok")
		srv.TLSConfig = deps.Identity.ServerConfig(identity.AuthorizeMembers(tds), ok.Inc)
	case config.Outbound:
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv
}

// serverLog turns net/http's error log into slog lines, counting failed TLS
// handshakes on the way. Handshake failures are a caller's problem, not
// ours, so they log at debug level.
type serverLog struct {
	log    *slog.Logger
	failed func()
}

func (l *serverLog) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	if bytes.Contains(p, []byte("TLS handshake error")) {
		l.failed()
		l.log.Debug("TLS handshake failed", "detail", msg)
	} else {
		l.log.Warn("http server", "detail", msg)
	}
	return len(p), nil
}
