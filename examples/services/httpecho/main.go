// Command httpecho is a sample HTTP backend for svidgate. It answers every
// request with a JSON document describing what it received: method, path,
// query, host, protocol and all request headers, so a caller can see which
// identity svidgate passed upstream in X-Forwarded-Client-Cert.
//
// It serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on a TCP address
// or a unix socket:
//
//	httpecho -listen 127.0.0.1:8080
//	httpecho -listen unix:///run/httpecho.sock
//
// A request with the query parameter status=N is answered with status N.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/svidgate/svidgate/examples/services/internal/endpoint"
)

// Echo is the JSON document httpecho answers with.
type Echo struct {
	Service  string              `json:"service"`
	Method   string              `json:"method"`
	Host     string              `json:"host"`
	Path     string              `json:"path"`
	RawQuery string              `json:"raw_query,omitempty"`
	Proto    string              `json:"proto"`
	Headers  map[string][]string `json:"headers"`
	BodySize int64               `json:"body_size"`
	// XFCC repeats the X-Forwarded-Client-Cert header values for convenience.
	XFCC []string `json:"xfcc"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("httpecho", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to listen on: host:port or unix:///path.sock")
	name := fs.String("name", "httpecho", "service `name` reported in every answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	ln, err := endpoint.Listen(*listen)
	if err != nil {
		log.Error("listen", "address", *listen, "error", err)
		return 1
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           handler(*name),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "address", ln.Addr().String())

	select {
	case err := <-errc:
		log.Error("serve", "error", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shutdown", "error", err)
		return 1
	}
	return 0
}

func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 16<<20))
		e := Echo{
			Service:  name,
			Method:   r.Method,
			Host:     r.Host,
			Path:     r.URL.Path,
			RawQuery: r.URL.RawQuery,
			Proto:    r.Proto,
			Headers:  r.Header,
			BodySize: n,
			XFCC:     r.Header.Values("X-Forwarded-Client-Cert"),
		}
		if e.XFCC == nil {
			e.XFCC = []string{}
		}
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			if v, err := strconv.Atoi(s); err == nil && v >= 200 && v <= 599 {
				status = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e)
	})
}
