// Command probe is the health check of the compose demo's FROM-scratch
// images, which have no shell, curl or redis-cli. It checks one target and
// exits 0 when it is healthy, 1 otherwise:
//
//	probe http://127.0.0.1:9901/readyz   an HTTP GET that answers 2xx
//	probe redis://127.0.0.1:6379         a Redis server that answers PING with PONG
//	probe tcp://127.0.0.1:8443           a TCP port that accepts connections
//
// With -print it writes an HTTP answer's body to standard output, so that
// `docker compose exec GATEWAY /probe -print http://127.0.0.1:9901/v1/status`
// shows a gateway's status from inside its scratch container.
//
// Every check gives up after -timeout (default 2s).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	printBody := fs.Bool("print", false, "write an HTTP answer's body to standard output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: probe [-timeout D] http://HOST:PORT/PATH | redis://HOST:PORT | tcp://HOST:PORT")
		return 2
	}
	var body io.Writer = io.Discard
	if *printBody {
		body = os.Stdout
	}
	if err := check(fs.Arg(0), *timeout, body); err != nil {
		fmt.Fprintln(stderr, "probe:", err)
		return 1
	}
	return 0
}

func check(target string, timeout time.Duration, body io.Writer) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http":
		c := &http.Client{Timeout: timeout}
		resp, err := c.Get(target)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(body, io.LimitReader(resp.Body, 16<<20))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", target, resp.Status)
		}
		return nil
	case "redis", "tcp":
		conn, err := net.DialTimeout("tcp", u.Host, timeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		if u.Scheme == "tcp" {
			return nil
		}
		_ = conn.SetDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
			return err
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != "+PONG" {
			return fmt.Errorf("%s answered PING with %q", u.Host, strings.TrimSpace(line))
		}
		return nil
	default:
		return fmt.Errorf("unsupported target %q: want http://, redis:// or tcp://", target)
	}
}
