// Package wechat exchanges WeChat OAuth2 authorization codes for WeChat account
// ids: Provider calls WeChat's open API, Fake is a test double.
package wechat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward"
)

// DefaultBaseURL is WeChat's open API.
const DefaultBaseURL = "https://api.weixin.qq.com"

// DefaultTimeout bounds one exchange when Provider.HTTP is nil.
const DefaultTimeout = 10 * time.Second

// WeChat's error codes for an authorization code that cannot be exchanged:
// 40029 invalid code (unknown or expired), 40163 code been used.
const (
	errInvalidCode = 40029
	errCodeUsed    = 40163
)

// Provider exchanges codes with WeChat's OAuth2 endpoint for websites and apps
// (GET /sns/oauth2/access_token). It implements steward.WeChatProvider. The app
// secret and the access token WeChat returns never appear in an error or a log:
// transport errors lose their URL (which holds the secret) and the token is
// dropped unread.
type Provider struct {
	AppID     string
	AppSecret string
	BaseURL   string       // default DefaultBaseURL
	HTTP      *http.Client // default a client with DefaultTimeout
}

// String names the app only, never the secret.
func (p Provider) String() string { return "wechat.Provider{app_id:" + p.AppID + "}" }

// LogValue logs the app id only, never the secret.
func (p Provider) LogValue() slog.Value { return slog.StringValue(p.String()) }

// tokenResponse is WeChat's answer. access_token and refresh_token are not read.
type tokenResponse struct {
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid"`
	ErrCode int    `json:"errcode"`
}

// Exchange spends code with WeChat and returns the account it was issued for.
// EUNAUTHORIZED when WeChat says the code is not valid, expired (40029) or used
// (40163); EUNAVAILABLE for any other WeChat error, a transport failure, a status
// other than 200, an answer that is not JSON or has no openid, or a Provider
// without AppID and AppSecret.
func (p *Provider) Exchange(ctx context.Context, code string) (steward.WeChatIdentity, error) {
	if p.AppID == "" || p.AppSecret == "" {
		return steward.WeChatIdentity{}, steward.Errorf(steward.EUNAVAILABLE, "WeChat sign-in is not configured")
	}
	base := p.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	q := url.Values{"appid": {p.AppID}, "secret": {p.AppSecret}, "code": {code}, "grant_type": {"authorization_code"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/sns/oauth2/access_token?"+q.Encode(), nil)
	if err != nil {
		return steward.WeChatIdentity{}, unavailable(errors.New("wechat: build request: invalid base URL"))
	}
	req.Header.Set("Accept", "application/json")
	hc := p.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error prints the URL, and the URL holds the secret and the code.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return steward.WeChatIdentity{}, unavailable(fmt.Errorf("wechat: exchange code: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return steward.WeChatIdentity{}, unavailable(fmt.Errorf("wechat: read answer: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return steward.WeChatIdentity{}, unavailable(fmt.Errorf("wechat: exchange code: status %d", resp.StatusCode))
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return steward.WeChatIdentity{}, unavailable(errors.New("wechat: exchange code: the answer is not JSON"))
	}
	switch tr.ErrCode {
	case 0:
	case errInvalidCode, errCodeUsed:
		return steward.WeChatIdentity{}, &steward.Error{Code: steward.EUNAUTHORIZED,
			Message: "the WeChat authorization code is not valid, has expired or was used already",
			Err:     fmt.Errorf("wechat: exchange code: errcode %d", tr.ErrCode)}
	default:
		// errmsg is not kept: nothing promises it never echoes the request.
		return steward.WeChatIdentity{}, unavailable(fmt.Errorf("wechat: exchange code: errcode %d", tr.ErrCode))
	}
	if tr.OpenID == "" {
		return steward.WeChatIdentity{}, unavailable(errors.New("wechat: exchange code: the answer has no openid"))
	}
	return steward.WeChatIdentity{OpenID: tr.OpenID, UnionID: tr.UnionID}, nil
}

func unavailable(err error) error {
	return steward.WrapError(steward.EUNAVAILABLE, "WeChat does not answer; try again later", err)
}

// Fake is a test double of WeChat: Issue plays a person authorizing the app in
// WeChat, and Exchange spends the code once, as WeChat does. The zero value is
// ready to use and safe for concurrent use.
type Fake struct {
	// Err, when set, is what Exchange returns for every code, e.g. an EUNAVAILABLE
	// *steward.Error to play WeChat being down.
	Err error

	mu    sync.Mutex
	codes map[string]steward.WeChatIdentity
}

// Issue returns a new single-use authorization code for the WeChat account with
// openID and, if not empty, unionID.
func (f *Fake) Issue(openID, unionID string) (code string) {
	var b [16]byte
	rand.Read(b[:])
	code = hex.EncodeToString(b[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.codes == nil {
		f.codes = map[string]steward.WeChatIdentity{}
	}
	f.codes[code] = steward.WeChatIdentity{OpenID: openID, UnionID: unionID}
	return code
}

// Exchange spends code: the account it was issued for, or EUNAUTHORIZED for a code
// never issued or already spent; f.Err if set.
func (f *Fake) Exchange(ctx context.Context, code string) (steward.WeChatIdentity, error) {
	if f.Err != nil {
		return steward.WeChatIdentity{}, f.Err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.codes[code]
	if !ok {
		return steward.WeChatIdentity{}, steward.Errorf(steward.EUNAUTHORIZED, "the WeChat authorization code is not valid, has expired or was used already")
	}
	delete(f.codes, code)
	return id, nil
}

var (
	_ steward.WeChatProvider = (*Provider)(nil)
	_ steward.WeChatProvider = (*Fake)(nil)
)
