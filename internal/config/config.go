package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/jwtauth"
	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/tomlpos"
)

// Config is gateway.toml.
type Config struct {
	ShutdownTimeout Duration   `toml:"shutdown_timeout"`
	Identity        Identity   `toml:"identity"`
	Log             Log        `toml:"log"`
	Admin           Admin      `toml:"admin"`
	Audit           Audit      `toml:"audit"`
	JWT             JWT        `toml:"jwt"`
	RateLimit       RateLimit  `toml:"ratelimit"`
	Listeners       []Listener `toml:"listener"`

	// File is the path the configuration was read from.
	File string `toml:"-"`
	// loc finds keys in File for Errorf; nil for a Config not parsed.
	loc *tomlpos.Locator
}

// Identity says where the SPIFFE Workload API is.
type Identity struct {
	Socket         string   `toml:"socket"`
	InitialTimeout Duration `toml:"initial_timeout"`
	RefreshMargin  Duration `toml:"refresh_margin"`
}

// Log configures svidgate's own log (not the audit trail).
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Admin configures the admin listener.
type Admin struct {
	Address          string `toml:"address"`
	AllowNonLoopback bool   `toml:"allow_non_loopback"`
}

// Audit configures the audit trail.
type Audit struct {
	Path         string    `toml:"path"`
	QueueSize    int       `toml:"queue_size"`
	SyncInterval Duration  `toml:"sync_interval"`
	OnFailure    OnFailure `toml:"on_failure"`
	// MaxBytes rotates the file when it would grow past this size; 0
	// never rotates (use SIGHUP with an external rotation tool).
	MaxBytes int64 `toml:"max_bytes"`
	// Keep is how many rotated files are kept.
	Keep int `toml:"keep"`
}

// JWT configures JWT-SVID validation.
type JWT struct {
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway Duration `toml:"leeway"`
	// MaxTokenBytes bounds a token before it is parsed.
	MaxTokenBytes int `toml:"max_token_bytes"`
	// CacheSize bounds the validated-token cache.
	CacheSize int `toml:"cache_size"`
}

// RateLimit configures where limits are counted.
type RateLimit struct {
	Backend Backend `toml:"backend"`
	// MaxTracked bounds the local tables (buckets, in-flight, abuse).
	MaxTracked int         `toml:"max_tracked"`
	Redis      RedisConfig `toml:"redis"`
	Abuse      Abuse       `toml:"abuse"`
}

// RedisConfig is the shared backend.
type RedisConfig struct {
	Address string `toml:"address"`
	// PasswordFile holds the password, so that it is never in the config.
	PasswordFile string   `toml:"password_file"`
	Timeout      Duration `toml:"timeout"`
	// OnFailure: "open" allows requests while Redis is unreachable,
	// "closed" refuses them with 503.
	OnFailure string `toml:"on_failure"`
	Prefix    string `toml:"prefix"`
}

// Abuse blocks callers denied too often. Off unless Threshold > 0.
type Abuse struct {
	Threshold int      `toml:"threshold"`
	Window    Duration `toml:"window"`
	Cooldown  Duration `toml:"cooldown"`
}

// Listener is one [[listener]] table.
type Listener struct {
	Name             string        `toml:"name"`
	Mode             Mode          `toml:"mode"`
	Address          string        `toml:"address"`
	Upstream         Upstream      `toml:"upstream"`
	UpstreamSPIFFEID SPIFFEID      `toml:"upstream_spiffe_id"`
	Policy           string        `toml:"policy"`
	TrustDomains     []TrustDomain `toml:"trust_domains"`
	// UpstreamTimeout bounds the wait for the upstream's response headers.
	UpstreamTimeout Duration `toml:"upstream_timeout"`
	// JWTAudience: on an edge listener, the audience every token must
	// carry; on an outbound listener, the audience of the JWT-SVID
	// attached to every request.
	JWTAudience string `toml:"jwt_audience"`
	// TLSCertFile and TLSKeyFile: an edge listener's certificate for
	// public names. Without them it presents the gateway's X509-SVID.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
}

// Defaults applied by Load where a key is absent. Where a package has a
// default of its own for the same setting, that is the one: the config
// names it rather than repeating its value.
const (
	DefaultShutdownTimeout = 15 * time.Second
	DefaultInitialTimeout  = 30 * time.Second
	DefaultRefreshMargin   = 5 * time.Minute
	DefaultUpstreamTimeout = 30 * time.Second
	DefaultAdminAddress    = "127.0.0.1:9901"
	DefaultAuditQueueSize  = audit.DefaultQueueSize
	DefaultJWTLeeway       = jwtauth.DefaultLeeway
	DefaultMaxTokenBytes   = jwtauth.DefaultMaxTokenBytes
	DefaultJWTCacheSize    = jwtauth.DefaultCacheSize
	DefaultMaxTracked      = 100000
)

// Load reads, decodes and validates the file at path. Relative paths inside
// it are resolved against its directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates data read from file.
func Parse(file string, data []byte) (*Config, error) {
	// Listeners are decoded one at a time: the decoder remembers one
	// position per key name, so an error inside the third [[listener]]
	// would otherwise point at the last one.
	var raw struct {
		Config
		Listeners []toml.Primitive `toml:"listener"`
	}
	loc := tomlpos.Locate(string(data))
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, decodeError(file, loc, err, -1)
	}
	c := &raw.Config
	c.File, c.loc = file, loc
	for i, p := range raw.Listeners {
		var l Listener
		if err := md.PrimitiveDecode(p, &l); err != nil {
			return nil, decodeError(file, loc, err, i)
		}
		c.Listeners = append(c.Listeners, l)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		// The decoder names the key without the index of its [[listener]]:
		// point at the first place it is written.
		p := loc.Key(loc.First(strings.Join(k, ".")))
		errs = append(errs, fmt.Errorf("%s:%d:%d: unknown key %q (see docs/CONFIG.md for the keys of each table)", file, p.Line, p.Col, k.String()))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// lastKey finds the key named in the decoder's own error text.
var lastKey = regexp.MustCompile(`last key "([^"]+)"\): (.*)$`)

// Errorf returns an error that points at the key at path in File, as
// file:line:col: message. It points at the value of the key (inside its
// quotes, as the decoder's own errors do) or, for an absent key, at its
// table. path is a dotted key ("ratelimit.redis.password_file"), or one
// made by ListenerKey.
func (c *Config) Errorf(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if c.loc == nil {
		return fmt.Errorf("%s: %s", c.File, msg)
	}
	p := c.loc.Inner(path)
	return fmt.Errorf("%s:%d:%d: %s", c.File, p.Line, p.Col, msg)
}

// ListenerKey is the path of key k in the index-th [[listener]] table, for
// Errorf; k "" is the table itself.
func ListenerKey(index int, k string) string { return listenerPath(k, index) }

// CheckEndpoint reports a missing Workload API endpoint. It is not part of
// Load: whether $SPIFFE_ENDPOINT_SOCKET is set is a property of the process
// that runs the gateway, not of the file (validate never needs the agent).
func (c *Config) CheckEndpoint() error {
	if c.Identity.Socket == "" && os.Getenv("SPIFFE_ENDPOINT_SOCKET") == "" {
		return c.Errorf("identity", "no Workload API endpoint: set identity.socket or the SPIFFE_ENDPOINT_SOCKET environment variable")
	}
	return nil
}

// listenerPath is the tomlpos path of key k (with or without its
// "listener." prefix) inside the index-th [[listener]]; k "" is the table.
func listenerPath(k string, index int) string {
	path := tomlpos.Index("listener", index)
	if k == "" || k == "listener" {
		return path
	}
	return tomlpos.Join(path, strings.TrimPrefix(k, "listener."))
}

// decodeError gives a decoding error its file:line:col. index is the
// [[listener]] being decoded, or -1.
func decodeError(file string, loc *tomlpos.Locator, err error, index int) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if index < 0 || pe.LastKey == "" {
			return fmt.Errorf("%s:%d:%d: %s", file, pe.Position.Line, pe.Position.Col, pe.Message)
		}
		p := loc.Inner(listenerPath(pe.LastKey, index))
		return fmt.Errorf("%s:%d:%d: %s", file, p.Line, p.Col, pe.Message)
	}
	if m := lastKey.FindStringSubmatch(err.Error()); m != nil {
		path := loc.First(m[1])
		if index >= 0 {
			path = listenerPath(m[1], index)
		}
		p := loc.Inner(path)
		return fmt.Errorf("%s:%d:%d: %s", file, p.Line, p.Col, m[2])
	}
	return fmt.Errorf("%s: %w", file, err)
}

func (c *Config) defaults() {
	set := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	set(&c.ShutdownTimeout, DefaultShutdownTimeout)
	set(&c.Identity.InitialTimeout, DefaultInitialTimeout)
	set(&c.Identity.RefreshMargin, DefaultRefreshMargin)
	set(&c.Audit.SyncInterval, audit.DefaultSyncInterval)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Admin.Address == "" {
		c.Admin.Address = DefaultAdminAddress
	}
	if c.Audit.QueueSize == 0 {
		c.Audit.QueueSize = DefaultAuditQueueSize
	}
	if c.Audit.OnFailure == "" {
		c.Audit.OnFailure = Block
	}
	if c.Audit.Keep == 0 {
		c.Audit.Keep = 10
	}
	set(&c.JWT.Leeway, DefaultJWTLeeway)
	if c.JWT.MaxTokenBytes == 0 {
		c.JWT.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.JWT.CacheSize == 0 {
		c.JWT.CacheSize = DefaultJWTCacheSize
	}
	if c.RateLimit.Backend == "" {
		c.RateLimit.Backend = Local
	}
	if c.RateLimit.MaxTracked == 0 {
		c.RateLimit.MaxTracked = DefaultMaxTracked
	}
	set(&c.RateLimit.Redis.Timeout, 500*time.Millisecond)
	if c.RateLimit.Redis.OnFailure == "" {
		c.RateLimit.Redis.OnFailure = "closed"
	}
	set(&c.RateLimit.Abuse.Window, time.Minute)
	set(&c.RateLimit.Abuse.Cooldown, 5*time.Minute)

	dir := filepath.Dir(c.File)
	if p := c.RateLimit.Redis.PasswordFile; p != "" && !filepath.IsAbs(p) {
		c.RateLimit.Redis.PasswordFile = filepath.Join(dir, p)
	}
	if c.Audit.Path != "" && c.Audit.Path != "-" && !filepath.IsAbs(c.Audit.Path) {
		c.Audit.Path = filepath.Join(dir, c.Audit.Path)
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		set(&l.UpstreamTimeout, DefaultUpstreamTimeout)
		if l.Policy != "" && !filepath.IsAbs(l.Policy) {
			l.Policy = filepath.Join(dir, l.Policy)
		}
		if l.Upstream.Scheme == "unix" && !filepath.IsAbs(l.Upstream.Addr) {
			l.Upstream.Addr = filepath.Join(dir, l.Upstream.Addr)
		}
		for _, f := range []*string{&l.TLSCertFile, &l.TLSKeyFile} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(dir, *f)
			}
		}
	}
}

// validate checks what spans keys. Every error names the key it concerns.
// Errors point at the value of the key concerned (inside its quotes, as
// the decoder's do) or, for a missing key, at the header of its table.
func (c *Config) validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, c.Errorf(path, format, args...))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "log level %q: expected debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "log format %q: expected json or text", c.Log.Format)
	}
	if err := checkAddr(c.Admin.Address, !c.Admin.AllowNonLoopback); err != nil {
		bad("admin.address", "admin address: %v (the admin listener serves status and metrics; set allow_non_loopback = true to expose it)", err)
	}
	if c.Audit.Path == "" {
		bad("audit", "audit.path is required: a file path, or \"-\" for standard output")
	}
	if c.Audit.QueueSize < 0 {
		bad("audit.queue_size", "audit.queue_size %d: expected a positive number of records", c.Audit.QueueSize)
	}
	if c.Identity.Socket != "" && !strings.HasPrefix(c.Identity.Socket, "unix://") && !strings.HasPrefix(c.Identity.Socket, "tcp://") {
		bad("identity.socket", "identity.socket %q: expected unix:///path/to/agent.sock or tcp://host:port", c.Identity.Socket)
	}
	if c.JWT.MaxTokenBytes < 0 || c.JWT.CacheSize < 0 {
		bad("jwt", "jwt.max_token_bytes and jwt.cache_size must be positive")
	}
	if c.RateLimit.Backend == Redis && c.RateLimit.Redis.Address == "" {
		bad("ratelimit", "ratelimit backend \"redis\" needs [ratelimit.redis] address = \"host:port\"")
	}
	if f := c.RateLimit.Redis.OnFailure; f != "open" && f != "closed" {
		bad("ratelimit.redis.on_failure", "ratelimit.redis.on_failure %q: expected \"open\" (allow while Redis is down) or \"closed\" (refuse with 503)", f)
	}
	if t := c.RateLimit.Abuse.Threshold; t < 0 || t > ratelimit.MaxThreshold {
		bad("ratelimit.abuse.threshold", "ratelimit.abuse.threshold %d: expected 1 to %d (0 turns abuse blocking off)", t, ratelimit.MaxThreshold)
	}
	if c.RateLimit.MaxTracked < 0 {
		bad("ratelimit.max_tracked", "ratelimit.max_tracked %d: expected a positive number of tracked callers", c.RateLimit.MaxTracked)
	}
	if c.Audit.MaxBytes < 0 {
		bad("audit.max_bytes", "audit.max_bytes %d: expected a size in bytes, or 0 never to rotate", c.Audit.MaxBytes)
	}
	if c.Audit.Keep < 0 {
		bad("audit.keep", "audit.keep %d: expected how many rotated files to keep", c.Audit.Keep)
	}
	if len(c.Listeners) == 0 {
		errs = append(errs, fmt.Errorf("%s:1:1: no [[listener]] defined: svidgate needs at least one", c.File))
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		if l.Name != "" && names[l.Name] {
			bad(listenerPath("name", i), "listener name %q is used twice; names must be unique", l.Name)
		}
		names[l.Name] = true
		errs = append(errs, c.validateListener(i, l)...)
	}
	return errors.Join(errs...)
}

// validateListener checks the index-th [[listener]]: the keys its mode
// needs, and no key that belongs to another mode.
func (c *Config) validateListener(i int, l Listener) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, c.Errorf(path, format, args...))
	}
	key := func(k string) string { return listenerPath(k, i) }
	if l.Name == "" {
		bad(key(""), "listener %d: name is required", i+1)
	}
	if l.Mode == "" {
		bad(key(""), "listener %q: mode is required: \"inbound\", \"outbound\" or \"edge\"", l.Name)
	}
	if l.Upstream.Scheme == "" {
		bad(key(""), "listener %q: upstream is required", l.Name)
	}
	switch l.Mode {
	case Inbound:
		if err := checkAddr(l.Address, false); err != nil {
			bad(key("address"), "listener %q address: %v", l.Name, err)
		}
		if l.Policy == "" {
			bad(key(""), "listener %q: an inbound listener needs a policy file (deny by default: without one nothing could pass)", l.Name)
		}
		if l.Upstream.Scheme == "https" {
			bad(key("upstream"), "listener %q: an inbound listener forwards plain HTTP to the local app: use http:// or unix://, not https://", l.Name)
		}
		if !l.UpstreamSPIFFEID.IsZero() {
			bad(key("upstream_spiffe_id"), "listener %q: upstream_spiffe_id belongs to outbound and edge listeners", l.Name)
		}
		if l.JWTAudience != "" {
			bad(key("jwt_audience"), "listener %q: an inbound listener requires JWT-SVIDs per rule, with [rule.jwt] in its policy; jwt_audience belongs to edge and outbound listeners", l.Name)
		}
	case Edge:
		if err := checkAddr(l.Address, false); err != nil {
			bad(key("address"), "listener %q address: %v", l.Name, err)
		}
		if l.Policy == "" {
			bad(key(""), "listener %q: an edge listener needs a policy file (deny by default: without one nothing could pass)", l.Name)
		}
		if l.JWTAudience == "" {
			bad(key(""), "listener %q: jwt_audience is required: every request at the edge must carry a JWT-SVID for this audience", l.Name)
		}
		if l.Upstream.Scheme == "https" && l.UpstreamSPIFFEID.IsZero() {
			bad(key(""), "listener %q: an https:// upstream needs upstream_spiffe_id: the SPIFFE ID the internal service must present", l.Name)
		}
		if l.Upstream.Scheme != "https" && !l.UpstreamSPIFFEID.IsZero() {
			bad(key("upstream_spiffe_id"), "listener %q: upstream_spiffe_id needs an https:// upstream (mTLS)", l.Name)
		}
		if (l.TLSCertFile == "") != (l.TLSKeyFile == "") {
			bad(key(""), "listener %q: tls_cert_file and tls_key_file go together", l.Name)
		}
		if len(l.TrustDomains) > 0 {
			bad(key("trust_domains"), "listener %q: an edge listener asks for no client certificate; trust domains are those of the JWT bundles", l.Name)
		}
	case Outbound:
		if err := checkAddr(l.Address, true); err != nil {
			bad(key("address"), "listener %q address: %v (an outbound listener accepts plain text from the local app and must not be reachable from elsewhere)", l.Name, err)
		}
		if l.Upstream.Scheme != "" && l.Upstream.Scheme != "https" {
			bad(key("upstream"), "listener %q: an outbound listener originates mTLS: upstream must be https://host:port", l.Name)
		}
		if l.UpstreamSPIFFEID.IsZero() {
			bad(key(""), "listener %q: upstream_spiffe_id is required: the SPIFFE ID the upstream must present", l.Name)
		}
		if l.Policy != "" {
			bad(key("policy"), "listener %q: outbound listeners take no policy; authorize on the upstream's inbound listener", l.Name)
		}
		if len(l.TrustDomains) > 0 {
			bad(key("trust_domains"), "listener %q: trust_domains belongs to inbound listeners", l.Name)
		}
	}
	if l.Mode != Edge && (l.TLSCertFile != "" || l.TLSKeyFile != "") {
		bad(key("tls_cert_file"), "listener %q: tls_cert_file and tls_key_file belong to edge listeners; mesh listeners present the X509-SVID", l.Name)
	}
	return errs
}

// validPort is a decimal port number, 0 (any free port) to 65535.
func validPort(p string) bool {
	_, err := strconv.ParseUint(p, 10, 16)
	return err == nil
}

// checkAddr requires host:port with an IP or "localhost"; loopbackOnly
// further requires a loopback address.
func checkAddr(addr string, loopbackOnly bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !validPort(port) {
		return fmt.Errorf("%q: expected host:port with a port from 0 to 65535, such as \"127.0.0.1:8443\"", addr)
	}
	if host == "localhost" {
		return nil
	}
	if host == "" {
		if loopbackOnly {
			return fmt.Errorf("%q listens on every interface; expected a loopback address such as 127.0.0.1", addr)
		}
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%q: expected an IP address or localhost, got host %q", addr, host)
	}
	if loopbackOnly && !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}
