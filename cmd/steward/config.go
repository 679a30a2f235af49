package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is Steward's configuration: defaults, then the file named by --config
// (or STEWARD_CONFIG), then STEWARD_* environment variables, then flags, then
// Validate. An empty or zero value means the key's default.
type Config struct {
	Addr         string `yaml:"addr"`               // listen address, default 127.0.0.1:8080 (STEWARD_ADDR)
	Data         string `yaml:"data"`               // data directory, default ./data (STEWARD_DATA)
	Database     string `yaml:"database"`           // data store: empty for SQLite in Data, or postgres://… (STEWARD_DATABASE)
	KeysDatabase string `yaml:"keys_database"`      // key store: empty for SQLite in Data, or postgres://… of another database (STEWARD_KEYS_DATABASE)
	KeyFile      string `yaml:"key_file"`           // key file, default DATA/steward.key (STEWARD_KEY_FILE)
	Declaration  string `yaml:"declaration"`        // declaration file; empty for the embedded default (STEWARD_DECLARATION)
	DevSink      string `yaml:"dev_sink"`           // development message sink file, default DATA/messages.jsonl (STEWARD_DEV_SINK)
	LogLevel     string `yaml:"log_level"`          // debug, info, warn, error (STEWARD_LOG_LEVEL)
	Synchronous  string `yaml:"sqlite_synchronous"` // FULL (default) or NORMAL (STEWARD_SQLITE_SYNCHRONOUS)
	OTP          struct {
		PerPhonePerHour  int           `yaml:"per_phone_per_hour"`  // STEWARD_OTP_PER_PHONE_PER_HOUR
		PerClientPerHour int           `yaml:"per_client_per_hour"` // STEWARD_OTP_PER_CLIENT_PER_HOUR
		ResendInterval   time.Duration `yaml:"resend_interval"`     // STEWARD_OTP_RESEND_INTERVAL
	} `yaml:"otp"`
	TrustProxy bool `yaml:"trust_proxy"` // take the client address from X-Forwarded-For (STEWARD_TRUST_PROXY)
	// WeChatAppID and WeChatAppSecret, both or neither, turn sign-in with WeChat on
	// (STEWARD_WECHAT_APP_ID, STEWARD_WECHAT_APP_SECRET); printing redacts the secret.
	WeChatAppID     string `yaml:"wechat_app_id"`
	WeChatAppSecret string `yaml:"wechat_app_secret"`
	// PublicURL is the scheme and host tracked and unsubscribe links are built on,
	// e.g. https://s.example.com (STEWARD_PUBLIC_URL); empty: each request's own host.
	PublicURL string `yaml:"public_url"`
	// KeyBackupRetention is how long backups of the key store are kept; deletion
	// certificates promise erased keys are gone from every backup after it.
	// Default 168h, at least 1h (STEWARD_KEY_BACKUP_RETENTION).
	KeyBackupRetention time.Duration `yaml:"key_backup_retention"`
	// NoticeDeadline is how long a recipient has to acknowledge a notice.
	// Default 168h, at least 1h (STEWARD_RECIPIENT_NOTICE_DEADLINE).
	NoticeDeadline time.Duration `yaml:"recipient_notice_deadline"`
	// MaintenanceInterval is how often serve runs retention and releases expired
	// legal holds. Default 1h, from 1m to 24h (STEWARD_MAINTENANCE_INTERVAL).
	MaintenanceInterval time.Duration `yaml:"maintenance_interval"`
}

func defaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", Data: "data", LogLevel: "info", Synchronous: "FULL"}
}

// setting is one configuration key: its name in the file (dotted below a
// section), its environment variable and the field it sets.
type setting struct {
	key, env string
	ptr      any // *string, *int, *bool or *time.Duration
}

// settings lists every key of c; the file decoder, the environment and
// validation messages all take key names from here.
func (c *Config) settings() []setting {
	return []setting{
		{"addr", "STEWARD_ADDR", &c.Addr},
		{"data", "STEWARD_DATA", &c.Data},
		{"database", "STEWARD_DATABASE", &c.Database},
		{"keys_database", "STEWARD_KEYS_DATABASE", &c.KeysDatabase},
		{"key_file", "STEWARD_KEY_FILE", &c.KeyFile},
		{"declaration", "STEWARD_DECLARATION", &c.Declaration},
		{"dev_sink", "STEWARD_DEV_SINK", &c.DevSink},
		{"log_level", "STEWARD_LOG_LEVEL", &c.LogLevel},
		{"sqlite_synchronous", "STEWARD_SQLITE_SYNCHRONOUS", &c.Synchronous},
		{"otp.per_phone_per_hour", "STEWARD_OTP_PER_PHONE_PER_HOUR", &c.OTP.PerPhonePerHour},
		{"otp.per_client_per_hour", "STEWARD_OTP_PER_CLIENT_PER_HOUR", &c.OTP.PerClientPerHour},
		{"otp.resend_interval", "STEWARD_OTP_RESEND_INTERVAL", &c.OTP.ResendInterval},
		{"trust_proxy", "STEWARD_TRUST_PROXY", &c.TrustProxy},
		{"wechat_app_id", "STEWARD_WECHAT_APP_ID", &c.WeChatAppID},
		{"wechat_app_secret", "STEWARD_WECHAT_APP_SECRET", &c.WeChatAppSecret},
		{"public_url", "STEWARD_PUBLIC_URL", &c.PublicURL},
		{"key_backup_retention", "STEWARD_KEY_BACKUP_RETENTION", &c.KeyBackupRetention},
		{"recipient_notice_deadline", "STEWARD_RECIPIENT_NOTICE_DEADLINE", &c.NoticeDeadline},
		{"maintenance_interval", "STEWARD_MAINTENANCE_INTERVAL", &c.MaintenanceInterval},
	}
}

// source is where a key's value came from, so that a refusal points there.
type source struct {
	file string // config file, with line
	line int
	env  string // environment variable
	flag string // command-line flag, without dashes
}

// sources maps keys to where their values came from; keys absent from it
// hold their defaults.
type sources map[string]source

// name returns the prefix of a message about key: "config FILE:LINE: key",
// "config: STEWARD_KEY (key)", "config: --flag (key)" or "config: key".
func (s sources) name(key string) string {
	src := s[key]
	switch {
	case src.env != "":
		return "config: " + src.env + " (" + key + ")"
	case src.flag != "":
		return "config: --" + src.flag + " (" + key + ")"
	case src.file != "":
		return fmt.Sprintf("config %s:%d: %s", src.file, src.line, key)
	}
	return "config: " + key
}

// registerConfigFlags registers the flags every command that opens the stores takes:
// --config, --data, --database, --keys-database, --key-file, --declaration;
// serve and config add --addr.
func registerConfigFlags(fs *flag.FlagSet) *string {
	fs.String("data", "", "data directory (SQLite files, key file, development sink); env STEWARD_DATA; default ./data")
	fs.String("database", "", "data store: postgres://… URL; empty for SQLite in the data directory; env STEWARD_DATABASE")
	fs.String("keys-database", "", "key store: postgres://… URL of a database other than --database; env STEWARD_KEYS_DATABASE")
	fs.String("key-file", "", "key file; env STEWARD_KEY_FILE; default DATA/steward.key")
	fs.String("declaration", "", "declaration (YAML); env STEWARD_DECLARATION; default: the embedded default")
	return fs.String("config", os.Getenv("STEWARD_CONFIG"), "configuration file (YAML); env STEWARD_CONFIG")
}

// loadConfig builds a command's configuration: defaults, then the file at
// configPath (if any), then STEWARD_* variables, then the flags set in fs;
// then Validate.
func loadConfig(fs *flag.FlagSet, configPath string) (Config, error) {
	return loadConfigEnv(fs, configPath, os.Getenv)
}

// loadConfigEnv is loadConfig reading the environment through getenv. An
// empty variable counts as unset.
func loadConfigEnv(fs *flag.FlagSet, configPath string, getenv func(string) string) (Config, error) {
	c := defaultConfig()
	from := sources{}
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := c.decodeFile(configPath, b, from); err != nil {
			return c, err
		}
	}
	var errs []error
	for _, s := range c.settings() {
		v := getenv(s.env)
		if v == "" {
			continue
		}
		from[s.key] = source{env: s.env}
		if err := setFromEnv(s.ptr, v); err != nil {
			errs = append(errs, fmt.Errorf("%s %v", from.name(s.key), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	flagKeys := map[string]*string{
		"addr": &c.Addr, "data": &c.Data, "database": &c.Database, "keys-database": &c.KeysDatabase,
		"key-file": &c.KeyFile, "declaration": &c.Declaration,
	}
	fs.Visit(func(f *flag.Flag) {
		if dst, ok := flagKeys[f.Name]; ok {
			*dst = f.Value.String()
			from[strings.ReplaceAll(f.Name, "-", "_")] = source{flag: f.Name}
		}
	})
	return c, c.validate(from)
}

// setFromEnv parses an environment variable's value v into ptr.
func setFromEnv(ptr any, v string) error {
	switch p := ptr.(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("must be a whole number")
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("must be a duration such as 90s, 10m or 168h")
		}
		*p = d
	case *bool:
		switch v {
		case "true", "1":
			*p = true
		case "false", "0":
			*p = false
		default:
			return errors.New("must be true, false, 1 or 0")
		}
	default:
		panic(fmt.Sprintf("config: no parser for %T", ptr))
	}
	return nil
}

// decodeFile decodes the YAML configuration b, read from file, over c, and
// records in from the line each key was set on. Messages name the file, the
// line and the key, never a Go type: an unknown key is refused as
// `config FILE:LINE: unknown key "otp.per_phone_hour"`.
func (c *Config) decodeFile(file string, b []byte, from sources) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				if _, err := strconv.Atoi(n); err == nil {
					return fmt.Errorf("config %s:%s: %s", file, n, after)
				}
			}
		}
		return fmt.Errorf("config %s: %s", file, msg)
	}
	if len(doc.Content) == 0 {
		return nil // empty, or only comments
	}
	known := map[string]setting{}
	sections := map[string]bool{}
	for _, s := range c.settings() {
		known[s.key] = s
		if i := strings.LastIndexByte(s.key, '.'); i >= 0 {
			sections[s.key[:i]] = true
		}
	}
	var walk func(prefix string, n *yaml.Node) error
	walk = func(prefix string, n *yaml.Node) error {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			if prefix == "" {
				return fmt.Errorf("config %s:%d: the file must be a mapping of keys to values", file, n.Line)
			}
			return fmt.Errorf("config %s:%d: %s must be a mapping of keys to values", file, n.Line, strings.TrimSuffix(prefix, "."))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := prefix + k.Value
			if line, ok := seen[k.Value]; ok {
				return fmt.Errorf("config %s:%d: %s is set twice, first at line %d", file, k.Line, key, line)
			}
			seen[k.Value] = k.Line
			if strings.Contains(k.Value, ".") {
				// otp.resend_interval is written nested, under otp:.
				return fmt.Errorf("config %s:%d: unknown key %q", file, k.Line, key)
			}
			if sections[key] {
				if err := walk(key+".", v); err != nil {
					return err
				}
				continue
			}
			s, ok := known[key]
			if !ok {
				return fmt.Errorf("config %s:%d: unknown key %q", file, k.Line, key)
			}
			from[key] = source{file: file, line: v.Line}
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			_, isInt := s.ptr.(*int)
			// yaml.v3 would truncate 5.5 into an int.
			notInt := isInt && v.ShortTag() != "!!int" && v.ShortTag() != "!!null"
			if err := v.Decode(s.ptr); err != nil || notInt {
				want := "a string"
				switch s.ptr.(type) {
				case *int:
					want = "a whole number"
				case *time.Duration:
					want = "a duration such as 90s, 10m or 168h"
				case *bool:
					want = "true or false"
				}
				return fmt.Errorf("%s must be %s", from.name(key), want)
			}
		}
		return nil
	}
	return walk("", doc.Content[0])
}

// Validate fills derived defaults and checks the configuration. An empty or
// zero value means the key's default; a value out of bounds is refused with
// a message naming the key.
func (c *Config) Validate() error {
	return c.validate(nil)
}

func (c *Config) validate(from sources) error {
	d := defaultConfig()
	if c.Data == "" {
		c.Data = d.Data
	}
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if err := checkAddr(c.Addr); err != nil {
		return fmt.Errorf("%s must be HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:8080 (got %q)", from.name("addr"), c.Addr)
	}
	if c.LogLevel == "" {
		c.LogLevel = d.LogLevel
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
		c.LogLevel = strings.ToLower(c.LogLevel)
	default:
		return fmt.Errorf("%s must be debug, info, warn or error (got %q)", from.name("log_level"), c.LogLevel)
	}
	if c.Synchronous == "" {
		c.Synchronous = d.Synchronous
	}
	switch c.Synchronous {
	case "FULL", "NORMAL":
	default:
		return fmt.Errorf("%s must be FULL or NORMAL (got %q)", from.name("sqlite_synchronous"), c.Synchronous)
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.Data, "steward.key")
	}
	if c.DevSink == "" {
		c.DevSink = filepath.Join(c.Data, "messages.jsonl")
	}

	// The limits in force (steward.OTPPolicy's defaults for the one-time code
	// limits), so that `steward config` shows what applies.
	ints := []struct {
		key           string
		v             *int
		def, min, max int
	}{
		{"otp.per_phone_per_hour", &c.OTP.PerPhonePerHour, 5, 1, 1000},
		{"otp.per_client_per_hour", &c.OTP.PerClientPerHour, 20, 1, 100000},
	}
	for _, b := range ints {
		switch {
		case *b.v == 0:
			*b.v = b.def
		case *b.v < 0:
			return fmt.Errorf("%s must not be negative", from.name(b.key))
		case *b.v < b.min || *b.v > b.max:
			return fmt.Errorf("%s must be from %d to %d (got %d)", from.name(b.key), b.min, b.max, *b.v)
		}
	}
	const day = 24 * time.Hour
	durations := []struct {
		key           string
		v             *time.Duration
		def, min, max time.Duration // max 0: no upper bound
	}{
		{"otp.resend_interval", &c.OTP.ResendInterval, time.Minute, time.Second, time.Hour},
		{"key_backup_retention", &c.KeyBackupRetention, 7 * day, time.Hour, 0},
		{"recipient_notice_deadline", &c.NoticeDeadline, 7 * day, time.Hour, 0},
		{"maintenance_interval", &c.MaintenanceInterval, time.Hour, time.Minute, day},
	}
	for _, b := range durations {
		switch {
		case *b.v == 0:
			*b.v = b.def
		case *b.v < 0:
			return fmt.Errorf("%s must not be negative", from.name(b.key))
		case b.max == 0 && *b.v < b.min:
			return fmt.Errorf("%s must be at least %s (got %s)", from.name(b.key), shortDuration(b.min), shortDuration(*b.v))
		case b.max != 0 && (*b.v < b.min || *b.v > b.max):
			return fmt.Errorf("%s must be from %s to %s (got %s)", from.name(b.key), shortDuration(b.min), shortDuration(b.max), shortDuration(*b.v))
		}
	}

	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("%s must be a scheme and host such as https://s.example.com", from.name("public_url"))
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if (c.WeChatAppID == "") != (c.WeChatAppSecret == "") {
		return errors.New("config: wechat_app_id and wechat_app_secret go together: set both to turn WeChat sign-in on, or neither")
	}
	// Database URLs hold passwords: messages about them never quote them, nor
	// wrap url.Parse's errors, which do.
	for _, key := range []string{"database", "keys_database"} {
		v := c.Database
		if key == "keys_database" {
			v = c.KeysDatabase
		}
		if v == "" {
			continue
		}
		if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
			return fmt.Errorf("%s must be a postgres:// URL, or empty for SQLite in the data directory", from.name(key))
		}
		if _, err := url.Parse(v); err != nil {
			return fmt.Errorf("%s is not a valid URL (a password with %%, # or / in it must be percent-encoded)", from.name(key))
		}
	}
	if c.Database != "" && c.KeysDatabase == "" {
		// The key store must be a database of its own: derive NAME_keys.
		u, _ := url.Parse(c.Database)
		u.Path = u.Path + "_keys"
		c.KeysDatabase = u.String()
	}
	if c.KeysDatabase != "" && c.KeysDatabase == c.Database {
		return errors.New("config: keys_database must be a different database from database, so that destroying a key reaches every copy of the data")
	}
	return nil
}

// checkAddr reports whether addr is HOST:PORT with a numeric port from 0 to
// 65535; HOST may be empty (every interface).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	if n < 0 || n > 65535 {
		return errors.New("port out of range")
	}
	return nil
}

// shortDuration formats d as time.Duration.String does, without the zero
// minutes and seconds: 1h, 24h, 1m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// DataDSN returns the data store's DSN.
func (c *Config) DataDSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.Data, "steward.db")
}

// KeysDSN returns the key store's DSN.
func (c *Config) KeysDSN() string {
	if c.KeysDatabase != "" {
		return c.KeysDatabase
	}
	return filepath.Join(c.Data, "keys.db")
}

// Redacted returns the configuration as YAML with the WeChat app secret and
// the passwords in database URLs (in the user info and in password-like query
// parameters such as password and sslpassword) replaced by REDACTED.
func (c Config) Redacted() string {
	c.Database, c.KeysDatabase = redactURL(c.Database), redactURL(c.KeysDatabase)
	if c.WeChatAppSecret != "" {
		c.WeChatAppSecret = "REDACTED"
	}
	b, _ := yaml.Marshal(c)
	return string(b)
}

// redactURL hides the password in s's user info and the values of its
// password-like query parameters, keeping their order. A URL that does not
// parse is hidden whole: where its secret is cannot be told.
func redactURL(s string) string {
	if s == "" {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "REDACTED"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	if u.RawQuery != "" {
		params := strings.Split(u.RawQuery, "&")
		for i, p := range params {
			k, _, _ := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil || secretParam(name) {
				params[i] = k + "=REDACTED"
			}
		}
		u.RawQuery = strings.Join(params, "&")
	}
	return u.String()
}

// secretParam reports whether a connection-string parameter holds a secret:
// password and sslpassword (libpq, pgx), and any other whose name says
// password, secret or token.
func secretParam(name string) bool {
	name = strings.ToLower(name)
	return strings.Contains(name, "password") || strings.Contains(name, "secret") || strings.Contains(name, "token")
}
