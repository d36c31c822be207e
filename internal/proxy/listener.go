package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/listener"
	"github.com/svidgate/svidgate/internal/reload"
)

// Listener is an HTTP listener (inbound, outbound or edge): the request
// pipeline of its mode behind an http.Server. It implements
// listener.Listener.
type Listener struct {
	srv     *http.Server
	handler *handler
	addr    atomic.Pointer[string]
}

// Setup is what the gateway provisioned for one listener.
type Setup struct {
	// Policy is the listener's policy (inbound, edge); nil for outbound.
	Policy *reload.Holder
	// EdgeCertificate is an edge listener's certificate for public names
	// (tls_cert_file); nil: it presents the gateway's X509-SVID.
	EdgeCertificate *tls.Certificate
}

// New returns the listener lc describes, ready for Serve.
func New(lc config.Listener, setup Setup, deps Deps) *Listener {
	h := newHandler(lc, setup, deps)
	handshakes := deps.Metrics.TLSHandshakes
	hs := &handshakeAudit{listener: lc.Name, mode: string(lc.Mode), deps: deps}
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
			failed: handshakes.WithLabelValues(lc.Name, "error").Inc,
			audit:  hs,
		}, "", 0),
		Protocols: new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if t, ok := h.proxy.Transport.(interface{ CloseIdleConnections() }); ok {
		srv.RegisterOnShutdown(t.CloseIdleConnections)
	}
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
		srv.TLSConfig = hs.wrap(deps.Identity.ServerConfig(identity.AuthorizeMembers(tds), ok.Inc))
	case config.Edge:
		srv.Protocols.SetHTTP2(true)
		srv.TLSConfig = edgeTLS(setup.EdgeCertificate, deps.Identity)
	case config.Outbound:
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return &Listener{srv: srv, handler: h}
}

// Serve serves on ln until Shutdown or Close; then it returns nil.
func (l *Listener) Serve(ln net.Listener) error {
	addr := ln.Addr().String()
	l.addr.Store(&addr)
	var err error
	if l.srv.TLSConfig != nil { // inbound and edge; the config carries the certificate
		err = l.srv.ServeTLS(ln, "", "")
	} else {
		err = l.srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for requests in flight until ctx
// ends (HTTP/2 connections get GOAWAY).
func (l *Listener) Shutdown(ctx context.Context) error { return l.srv.Shutdown(ctx) }

// Close closes every connection at once.
func (l *Listener) Close() error { return l.srv.Close() }

// Status reports the listener for /v1/status.
func (l *Listener) Status() listener.Status {
	st := listener.Status{Name: l.handler.name, Mode: string(l.handler.mode), Policy: l.handler.policy}
	if a := l.addr.Load(); a != nil {
		st.Address = *a
	}
	return st
}

// Handler is the listener's request pipeline, for tests and benchmarks
// that drive it without a socket.
func (l *Listener) Handler() http.Handler { return l.handler }

// edgeTLS is the TLS of a north-south listener: no client certificate (the
// caller proves itself with a JWT-SVID), the configured certificate for
// public names or else our X509-SVID. TLS 1.2 is allowed for clients outside
// the mesh.
func edgeTLS(cert *tls.Certificate, src *identity.Source) *tls.Config {
	var cfg *tls.Config
	if cert != nil {
		cfg = &tls.Config{Certificates: []tls.Certificate{*cert}}
	} else {
		cfg = tlsconfig.TLSServerConfig(src)
	}
	cfg.MinVersion = tls.VersionTLS12
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg
}

// serverLog turns net/http's error log into slog lines. A failed TLS
// handshake is counted and audited; it is a caller's problem, not ours, so
// it logs at debug level.
type serverLog struct {
	log    *slog.Logger
	failed func()
	audit  *handshakeAudit
}

const handshakeError = "http: TLS handshake error from "

func (l *serverLog) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	if rest, ok := strings.CutPrefix(msg, handshakeError); ok {
		l.failed()
		addr, reason, _ := strings.Cut(rest, ": ")
		l.audit.refused(addr, reason)
		l.log.Debug("TLS handshake failed", "remote", addr, "reason", reason)
	} else {
		l.log.Warn("http server", "detail", msg)
	}
	return len(p), nil
}

// handshakeAudit writes an audit record for every refused handshake,
// naming the SPIFFE ID the peer presented when its certificate could be
// parsed. net/http reports the failure after the handshake, by remote
// address; the verifier, which saw the certificate, leaves the presented ID
// here under the same address.
type handshakeAudit struct {
	listener, mode string
	deps           Deps
	presented      sync.Map // remote address → presented URI SAN
}

// wrap makes each connection's config note the presented ID of a
// certificate that fails verification.
func (a *handshakeAudit) wrap(base *tls.Config) *tls.Config {
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		addr := hello.Conn.RemoteAddr().String()
		c := base.Clone()
		c.GetConfigForClient = nil
		verify := c.VerifyPeerCertificate
		c.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			err := verify(raw, chains)
			if err != nil && len(raw) > 0 {
				if cert, perr := x509.ParseCertificate(raw[0]); perr == nil && len(cert.URIs) > 0 {
					a.presented.Store(addr, cert.URIs[0].String())
				}
			}
			return err
		}
		return c, nil
	}
	return base
}

func (a *handshakeAudit) refused(addr, reason string) {
	var presented string
	if v, ok := a.presented.LoadAndDelete(addr); ok {
		presented = v.(string)
	}
	if a.deps.Audit == nil {
		return
	}
	rec := audit.Record{
		Time: time.Now().UTC(), ID: a.deps.Audit.NextID(), Listener: a.listener, Mode: a.mode,
		Source:      audit.Source{Addr: addr}, // never the presented ID: source.spiffe_id is the verified caller
		Destination: audit.Destination{SPIFFEID: a.deps.Identity.ID().String()},
		TLS:         audit.TLS{Reason: reason, PresentedSPIFFEID: presented},
		Decision:    audit.Decision{Result: audit.ResultDeny, Reason: "TLS handshake refused: " + reason},
	}
	_ = a.deps.Audit.Enqueue(&rec) // a failure is counted by the writer
}

var _ listener.Listener = (*Listener)(nil)
