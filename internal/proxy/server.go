package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/reload"
)

// NewServer returns the HTTP server of one listener, ready for Serve (an
// outbound listener) or ServeTLS with empty file names (inbound and edge:
// the TLSConfig carries the certificate). holder is the listener's policy.
func NewServer(lc config.Listener, holder *reload.Holder, deps Deps) (*http.Server, error) {
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
	case config.Edge:
		srv.Protocols.SetHTTP2(true)
		cfg, err := edgeTLS(lc, deps.Identity)
		if err != nil {
			return nil, err
		}
		srv.TLSConfig = cfg
	case config.Outbound:
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv, nil
}

// edgeTLS is the TLS of a north-south listener: no client certificate (the
// caller proves itself with a JWT-SVID), the configured certificate for
// public names or else our X509-SVID. TLS 1.2 is allowed for clients outside
// the mesh.
func edgeTLS(lc config.Listener, src *identity.Source) (*tls.Config, error) {
	var cfg *tls.Config
	if lc.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(lc.TLSCertFile, lc.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("listener %q: loading tls_cert_file and tls_key_file: %w", lc.Name, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else {
		cfg = tlsconfig.TLSServerConfig(src)
	}
	cfg.MinVersion = tls.VersionTLS12
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, nil
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
