package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Client calls a Steward server's JSON API. Its methods mirror the routes and the
// steward.Service methods behind them; errors are *steward.Error values with the
// server's code and message, so steward.ErrorCode(err) is the same in-process and
// over the wire. A Client is safe for concurrent use if its fields are not changed.
type Client struct {
	BaseURL string       // e.g. "https://steward.example.com", without /v1
	Token   string       // bearer token: a session token (sts_…) or an API token (stk_…)
	HTTP    *http.Client // default http.DefaultClient
}

// maxResponseBytes bounds what the client reads of one response (an export with a
// photo is a few MiB).
const maxResponseBytes = 64 << 20

// do sends one request. in, when not nil, is sent as JSON; a 2xx answer is decoded
// into out when out is not nil. Any other status becomes a *steward.Error: the
// body's code and message when it has them, else CodeOf(status). A transport
// failure is EUNAVAILABLE wrapping the cause.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (*http.Response, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	if in == nil {
		return c.send(ctx, method, u, "", nil, out)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("http: encode request: %w", err)
	}
	return c.send(ctx, method, u, "application/json", bytes.NewReader(b), out)
}

// send makes one request with body (of contentType, if body is not nil) and
// decodes a 2xx JSON answer into out; other answers become *steward.Error.
func (c *Client) send(ctx context.Context, method, u, contentType string, body io.Reader, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, steward.WrapError(steward.EINVALID, "the request could not be built", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, steward.WrapError(steward.EUNAVAILABLE, "Steward does not answer", err)
	}
	defer resp.Body.Close()
	rd := io.LimitReader(resp.Body, maxResponseBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, responseError(resp.StatusCode, rd)
	}
	if out != nil {
		if err := json.NewDecoder(rd).Decode(out); err != nil {
			return resp, steward.WrapError(steward.EINTERNAL, "the answer from Steward could not be read", err)
		}
	}
	io.Copy(io.Discard, rd)
	return resp, nil
}

// responseError turns an error response into a *steward.Error.
func responseError(status int, body io.Reader) error {
	var eb errorBody
	b, _ := io.ReadAll(io.LimitReader(body, 1<<20))
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		return &steward.Error{Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return &steward.Error{Code: CodeOf(status), Message: fmt.Sprintf("Steward answered %d %s", status, http.StatusText(status))}
}

// SendCode asks for a one-time code by SMS for purpose steward.CodeRegister or
// steward.CodeSignIn (POST /v1/auth/codes). EINVALID, ETOOMANY.
func (c *Client) SendCode(ctx context.Context, phone, purpose string) (*steward.CodeSent, error) {
	var out steward.CodeSent
	if _, err := c.do(ctx, http.MethodPost, "/v1/auth/codes", nil, SendCodeRequest{Phone: phone, Purpose: purpose}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Register opens an account (POST /v1/register). Errors as steward.Service.Register.
func (c *Client) Register(ctx context.Context, r steward.Registration) (*steward.Registered, error) {
	var out steward.Registered
	if _, err := c.do(ctx, http.MethodPost, "/v1/register", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SignIn exchanges a sign-in code for a session token (POST /v1/auth/sign-in). The
// client does not keep the token: set Token to use it.
func (c *Client) SignIn(ctx context.Context, phone, code string) (*steward.SignedIn, error) {
	var out steward.SignedIn
	if _, err := c.do(ctx, http.MethodPost, "/v1/auth/sign-in", nil, SignInRequest{Phone: phone, Code: code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SignInWeChat exchanges a WeChat authorization code for a session token of the
// account bound to that WeChat account (POST /v1/auth/wechat). EUNAUTHORIZED for a
// code that is not valid or was used, ENOTFOUND when no account is bound,
// EUNAVAILABLE when WeChat sign-in is off or WeChat does not answer.
func (c *Client) SignInWeChat(ctx context.Context, code string) (*steward.SignedIn, error) {
	var out steward.SignedIn
	if _, err := c.do(ctx, http.MethodPost, "/v1/auth/wechat", nil, WeChatCodeRequest{Code: code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BindWeChat binds the WeChat account a code was issued for to the signed-in
// subject and returns the profile (POST /v1/me/wechat). Errors as
// steward.Service.BindWeChat.
func (c *Client) BindWeChat(ctx context.Context, code string) (*steward.Profile, error) {
	var out steward.Profile
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/wechat", nil, WeChatCodeRequest{Code: code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Me returns the signed-in subject's profile (GET /v1/me).
func (c *Client) Me(ctx context.Context) (*steward.Profile, error) {
	var out steward.Profile
	if _, err := c.do(ctx, http.MethodGet, "/v1/me", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateMe changes the signed-in subject's fields; a field set to JSON null is
// deleted (PATCH /v1/me).
func (c *Client) UpdateMe(ctx context.Context, fields steward.FieldValues) (*steward.Profile, error) {
	var out steward.Profile
	if _, err := c.do(ctx, http.MethodPatch, "/v1/me", nil, UpdateMeRequest{Fields: fields}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Consents returns the signed-in subject's consents in force and their history
// (GET /v1/me/consents).
func (c *Client) Consents(ctx context.Context) ([]steward.ConsentState, []steward.ConsentEvent, error) {
	var out Consents
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/consents", nil, nil, &out); err != nil {
		return nil, nil, err
	}
	return out.Current, out.History, nil
}

// GrantConsent records consent for a purpose (POST /v1/me/consents).
func (c *Client) GrantConsent(ctx context.Context, choice steward.ConsentChoice) (*steward.ConsentReceipt, error) {
	var out steward.ConsentReceipt
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/consents", nil, choice, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WithdrawConsent withdraws consent for purpose (DELETE /v1/me/consents/{purpose}).
func (c *Client) WithdrawConsent(ctx context.Context, purpose string) (*steward.ConsentReceipt, error) {
	var out steward.ConsentReceipt
	if _, err := c.do(ctx, http.MethodDelete, "/v1/me/consents/"+url.PathEscape(purpose), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConsentReceipt downloads the receipt of one consent event
// (GET /v1/me/consents/{event_id}/receipt).
func (c *Client) ConsentReceipt(ctx context.Context, eventID string) (*steward.ConsentReceipt, error) {
	var out steward.ConsentReceipt
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/consents/"+url.PathEscape(eventID)+"/receipt", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Export downloads the signed-in subject's complete export (GET /v1/me/export).
func (c *Client) Export(ctx context.Context) (*steward.Export, error) {
	var out steward.Export
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/export", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendCancellationCode sends a code confirming cancellation to the registered
// number (POST /v1/me/cancellation/code).
func (c *Client) SendCancellationCode(ctx context.Context) (*steward.CodeSent, error) {
	var out steward.CodeSent
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/cancellation/code", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelAccount cancels the signed-in subject's account with the confirmation code
// (POST /v1/me/cancellation). Every session, this client's included, dies.
func (c *Client) CancelAccount(ctx context.Context, code string) (*steward.DeletionReceipt, error) {
	var out steward.DeletionReceipt
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/cancellation", nil, CancelRequest{Code: code}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReadForPurpose reads a subject's fields under purpose, all of the purpose's
// fields or only those named (GET /v1/subjects/{id}/data). Client app tokens only.
func (c *Client) ReadForPurpose(ctx context.Context, subjectID, purpose string, fields []string) (steward.FieldValues, error) {
	q := url.Values{"purpose": {purpose}}
	if len(fields) > 0 {
		q.Set("fields", strings.Join(fields, ","))
	}
	var out PurposeData
	if _, err := c.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(subjectID)+"/data", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Fields, nil
}

// CheckConsent returns nil when purpose's legal basis holds for the subject, else
// the EFORBIDDEN error naming what is missing (GET /v1/subjects/{id}/consents/{purpose}).
func (c *Client) CheckConsent(ctx context.Context, subjectID, purpose string) error {
	var out BasisHolds
	if _, err := c.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(subjectID)+"/consents/"+url.PathEscape(purpose), nil, nil, &out); err != nil {
		return err
	}
	if !out.BasisHolds {
		return steward.Errorf(steward.EFORBIDDEN, "purpose %s: the legal basis does not hold", purpose)
	}
	return nil
}

// Declaration returns the declaration in force (GET /v1/declaration), with its
// legal time zone resolved when this machine knows it.
func (c *Client) Declaration(ctx context.Context) (*steward.Declaration, error) {
	var out steward.Declaration
	if _, err := c.do(ctx, http.MethodGet, "/v1/declaration", nil, nil, &out); err != nil {
		return nil, err
	}
	if loc, err := time.LoadLocation(out.LegalTimeZone); err == nil && out.LegalTimeZone != "" {
		out.SetLocation(loc)
	}
	return &out, nil
}

// Ready returns nil when the server and its stores answer (GET /readyz), else
// EUNAVAILABLE.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}
