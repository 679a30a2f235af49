package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is Steward's configuration: defaults, then the file named by --config
// (or STEWARD_CONFIG), then STEWARD_* environment variables, then flags.
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
	// certificates promise erased keys are gone from every backup after it. Default 168h.
	KeyBackupRetention time.Duration `yaml:"key_backup_retention"`
	// NoticeDeadline is how long a recipient has to acknowledge a notice. Default 168h.
	NoticeDeadline time.Duration `yaml:"recipient_notice_deadline"`
	// MaintenanceInterval is how often serve runs retention and releases expired
	// legal holds. Default 1h.
	MaintenanceInterval time.Duration `yaml:"maintenance_interval"`
}

func defaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", Data: "data", LogLevel: "info", Synchronous: "FULL"}
}

// loadConfig builds the configuration for a command from its flag set. Flags
// registered: --config, --data, --database, --keys-database, --key-file,
// --declaration; serve adds its own.
func registerConfigFlags(fs *flag.FlagSet) *string {
	fs.String("data", "", "data directory (SQLite files, key file, development sink); env STEWARD_DATA; default ./data")
	fs.String("database", "", "data store: postgres://… URL; empty for SQLite in the data directory; env STEWARD_DATABASE")
	fs.String("keys-database", "", "key store: postgres://… URL of a database other than --database; env STEWARD_KEYS_DATABASE")
	fs.String("key-file", "", "key file; env STEWARD_KEY_FILE; default DATA/steward.key")
	fs.String("declaration", "", "declaration (YAML); env STEWARD_DECLARATION; default: the embedded default")
	return fs.String("config", os.Getenv("STEWARD_CONFIG"), "configuration file (YAML); env STEWARD_CONFIG")
}

func loadConfig(fs *flag.FlagSet, configPath string) (Config, error) {
	c := defaultConfig()
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config %s: %w", configPath, err)
		}
	}
	env := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*dst = v
		}
	}
	env("STEWARD_ADDR", &c.Addr)
	env("STEWARD_DATA", &c.Data)
	env("STEWARD_DATABASE", &c.Database)
	env("STEWARD_KEYS_DATABASE", &c.KeysDatabase)
	env("STEWARD_KEY_FILE", &c.KeyFile)
	env("STEWARD_DECLARATION", &c.Declaration)
	env("STEWARD_DEV_SINK", &c.DevSink)
	env("STEWARD_LOG_LEVEL", &c.LogLevel)
	env("STEWARD_SQLITE_SYNCHRONOUS", &c.Synchronous)
	env("STEWARD_PUBLIC_URL", &c.PublicURL)
	env("STEWARD_WECHAT_APP_ID", &c.WeChatAppID)
	env("STEWARD_WECHAT_APP_SECRET", &c.WeChatAppSecret)
	envInt := func(name string, dst *int) error {
		if v := os.Getenv(name); v != "" {
			if _, err := fmt.Sscan(v, dst); err != nil {
				return fmt.Errorf("config: %s must be a whole number", name)
			}
		}
		return nil
	}
	if err := errors.Join(envInt("STEWARD_OTP_PER_PHONE_PER_HOUR", &c.OTP.PerPhonePerHour), envInt("STEWARD_OTP_PER_CLIENT_PER_HOUR", &c.OTP.PerClientPerHour)); err != nil {
		return c, err
	}
	if v := os.Getenv("STEWARD_OTP_RESEND_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("config: STEWARD_OTP_RESEND_INTERVAL: %w", err)
		}
		c.OTP.ResendInterval = d
	}
	if v := os.Getenv("STEWARD_TRUST_PROXY"); v == "1" || v == "true" {
		c.TrustProxy = true
	}
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		switch f.Name {
		case "addr":
			c.Addr = v
		case "data":
			c.Data = v
		case "database":
			c.Database = v
		case "keys-database":
			c.KeysDatabase = v
		case "key-file":
			c.KeyFile = v
		case "declaration":
			c.Declaration = v
		}
	})
	return c, c.Validate()
}

// Validate fills derived defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Data == "" {
		return errors.New("config: data directory must not be empty")
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.Data, "steward.key")
	}
	// The one-time code limits in force (steward.OTPPolicy's defaults), so that
	// `steward config` shows what applies.
	if c.OTP.PerPhonePerHour == 0 {
		c.OTP.PerPhonePerHour = 5
	}
	if c.OTP.PerClientPerHour == 0 {
		c.OTP.PerClientPerHour = 20
	}
	if c.OTP.ResendInterval == 0 {
		c.OTP.ResendInterval = time.Minute
	}
	if c.OTP.PerPhonePerHour < 0 || c.OTP.PerClientPerHour < 0 || c.OTP.ResendInterval < 0 {
		return errors.New("config: otp limits must not be negative")
	}
	if c.KeyBackupRetention == 0 {
		c.KeyBackupRetention = 7 * 24 * time.Hour
	}
	if c.NoticeDeadline == 0 {
		c.NoticeDeadline = 7 * 24 * time.Hour
	}
	if c.MaintenanceInterval == 0 {
		c.MaintenanceInterval = time.Hour
	}
	if c.KeyBackupRetention < 0 || c.NoticeDeadline < 0 || c.MaintenanceInterval < 0 {
		return errors.New("config: durations must not be negative")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return errors.New("config: public_url must be a scheme and host such as https://s.example.com")
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if c.DevSink == "" {
		c.DevSink = filepath.Join(c.Data, "messages.jsonl")
	}
	if (c.WeChatAppID == "") != (c.WeChatAppSecret == "") {
		return errors.New("config: wechat_app_id and wechat_app_secret go together: set both to turn WeChat sign-in on, or neither")
	}
	isPG := func(s string) bool {
		return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
	}
	if c.Database != "" && !isPG(c.Database) {
		return errors.New("config: database must be a postgres:// URL, or empty for SQLite in the data directory")
	}
	if c.Database != "" && c.KeysDatabase == "" {
		// The key store must be a database of its own: derive NAME_keys.
		u, err := url.Parse(c.Database)
		if err != nil {
			return fmt.Errorf("config: database URL: %w", err)
		}
		u.Path = u.Path + "_keys"
		c.KeysDatabase = u.String()
	}
	if c.KeysDatabase != "" && c.KeysDatabase == c.Database {
		return errors.New("config: keys_database must be a different database from database, so that destroying a key reaches every copy of the data")
	}
	switch c.Synchronous {
	case "FULL", "NORMAL":
	default:
		return errors.New("config: sqlite_synchronous must be FULL or NORMAL")
	}
	return nil
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

// Redacted returns the configuration as YAML with passwords in URLs and the
// WeChat app secret hidden.
func (c Config) Redacted() string {
	c.Database, c.KeysDatabase = redactURL(c.Database), redactURL(c.KeysDatabase)
	if c.WeChatAppSecret != "" {
		c.WeChatAppSecret = "REDACTED"
	}
	b, _ := yaml.Marshal(c)
	return string(b)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
