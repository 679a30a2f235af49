package http

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stewardhq/steward"
)

// SetRequestService makes s serve the rights-request and automated-decision routes
// with rs. Until it is called those routes answer 503 EUNAVAILABLE. Call it before
// serving.
func (s *Server) SetRequestService(rs *steward.RequestService) { s.requests = rs }

func (s *Server) registerRequestRoutes() {
	// The subject's own requests (policy §6, §10).
	s.handle("POST /v1/me/requests", s.handleFileRequest)
	s.handle("GET /v1/me/requests", s.handleMyRequests)
	s.handle("GET /v1/me/requests/{id}", s.handleMyRequest)
	s.handle("POST /v1/me/requests/{id}/verification-code", s.handleRequestCode)
	s.handle("POST /v1/me/requests/{id}/verify", s.handleVerifyRequest)
	s.handle("POST /v1/me/requests/{id}/withdraw", s.handleWithdrawMyRequest)
	// Automated decisions (P22).
	s.handle("GET /v1/me/decisions", s.handleMyDecisions)
	s.handle("POST /v1/me/decisions/opt-out", s.handleOptOutOfDecisions)
	s.handle("POST /v1/subjects/{id}/decisions", s.handleRecordDecision)
	// Staff: the queue and the decisions on requests.
	s.handle("GET /v1/requests", s.handleRequestQueue)
	s.handle("POST /v1/requests", s.handleFileOnBehalf)
	s.handle("GET /v1/requests/{id}", s.handleGetRequest)
	s.handle("POST /v1/requests/{id}/assign", s.handleAssignRequest)
	s.handle("POST /v1/requests/{id}/start", s.handleStartRequest)
	s.handle("POST /v1/requests/{id}/verify", s.handleVerifyOnBehalf)
	s.handle("POST /v1/requests/{id}/extend", s.handleExtendRequest)
	s.handle("POST /v1/requests/{id}/refuse", s.handleRefuseRequest)
	s.handle("POST /v1/requests/{id}/fulfil", s.handleFulfilRequest)
	s.handle("POST /v1/requests/{id}/withdraw", s.handleWithdrawRequest)
	s.handle("GET /v1/refusal-grounds", s.handleRefusalGrounds)
}

// rs returns the request service, or writes 503 and returns nil.
func (s *Server) rs(w http.ResponseWriter, r *http.Request) *steward.RequestService {
	if s.requests == nil {
		s.Error(w, r, steward.Errorf(steward.EUNAVAILABLE, "rights requests are not configured on this server"))
	}
	return s.requests
}

// RequestList is the answer of GET /v1/me/requests.
type RequestList struct {
	Requests []steward.RequestView `json:"requests"`
}

// VerifyRequestBody is the body of POST /v1/me/requests/{id}/verify: the one-time
// code sent by SMS.
type VerifyRequestBody struct {
	Code string `json:"code"`
}

// AssignRequestBody is the body of POST /v1/requests/{id}/assign; an empty To
// assigns the request to the caller.
type AssignRequestBody struct {
	To string `json:"to"`
}

// ExtendRequestBody is the body of POST /v1/requests/{id}/extend.
type ExtendRequestBody struct {
	Reason string `json:"reason"`
}

// RefuseRequestBody is the body of POST /v1/requests/{id}/refuse.
type RefuseRequestBody struct {
	Ground      steward.RefusalGround `json:"ground"`
	Explanation string                `json:"explanation"`
}

// OptOutBody is the body of POST /v1/me/decisions/opt-out.
type OptOutBody struct {
	System string `json:"system"`
}

// RefusalGroundList is the answer of GET /v1/refusal-grounds.
type RefusalGroundList struct {
	Grounds []steward.RefusalGroundInfo `json:"grounds"`
}

func (s *Server) handleFileRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in steward.RequestInput
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.File(r.Context(), in)
	s.answer(w, r, http.StatusCreated, v, err)
}

func (s *Server) handleMyRequests(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	list, err := rs.MyRequests(r.Context())
	s.answer(w, r, http.StatusOK, RequestList{Requests: list}, err)
}

func (s *Server) handleMyRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	v, err := rs.MyRequest(r.Context(), r.PathValue("id"))
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleRequestCode(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	out, err := rs.SendVerificationCode(r.Context(), r.PathValue("id"))
	s.answer(w, r, http.StatusOK, out, err)
}

func (s *Server) handleVerifyRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in VerifyRequestBody
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.VerifyWithCode(r.Context(), r.PathValue("id"), in.Code)
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleWithdrawMyRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	v, err := rs.WithdrawMine(r.Context(), r.PathValue("id"))
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleMyDecisions(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	out, err := rs.MyDecisions(r.Context())
	s.answer(w, r, http.StatusOK, out, err)
}

func (s *Server) handleOptOutOfDecisions(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireSubject(w, r); !ok {
		return
	}
	var in OptOutBody
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	out, err := rs.OptOutOfDecisions(r.Context(), in.System)
	s.answer(w, r, http.StatusOK, out, err)
}

func (s *Server) handleRecordDecision(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireApp(w, r); !ok {
		return
	}
	var in steward.DecisionInput
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	d, err := rs.RecordDecision(r.Context(), r.PathValue("id"), in)
	s.answer(w, r, http.StatusCreated, d, err)
}

// handleRequestQueue serves GET /v1/requests?type=&state=&due_before=&overdue=&assigned_to=&subject_id=&limit=.
// due_before is a date (requests due before that day in the legal time zone) or
// an RFC 3339 instant.
func (s *Server) handleRequestQueue(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	q, err := queueFilter(r.URL.Query(), rs.DeadlineRule().Location)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out, err := rs.List(r.Context(), q)
	s.answer(w, r, http.StatusOK, out, err)
}

func queueFilter(v url.Values, loc *time.Location) (steward.QueueFilter, error) {
	q := steward.QueueFilter{Type: steward.RequestType(v.Get("type")), State: v.Get("state"), AssignedTo: v.Get("assigned_to"), SubjectID: v.Get("subject_id")}
	if d := v.Get("due_before"); d != "" {
		if day, err := steward.ParseDate(d); err == nil {
			q.DueBefore = day.Start(loc)
		} else if t, err := time.Parse(time.RFC3339, d); err == nil {
			q.DueBefore = t
		} else {
			return q, steward.Errorf(steward.EINVALID, "due_before must be a date YYYY-MM-DD or an RFC 3339 time")
		}
	}
	switch v.Get("overdue") {
	case "", "false":
	case "true":
		q.Overdue = true
	default:
		return q, steward.Errorf(steward.EINVALID, "overdue must be true or false")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, steward.Errorf(steward.EINVALID, "limit must be a positive whole number")
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) handleFileOnBehalf(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in steward.StaffRequestInput
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.FileOnBehalf(r.Context(), in)
	s.answer(w, r, http.StatusCreated, v, err)
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	v, err := rs.Get(r.Context(), r.PathValue("id"))
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleAssignRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in AssignRequestBody
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.Assign(r.Context(), r.PathValue("id"), in.To)
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleStartRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	v, err := rs.Start(r.Context(), r.PathValue("id"))
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleVerifyOnBehalf(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in steward.IdentityCheck
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.VerifyOnBehalf(r.Context(), r.PathValue("id"), in)
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleExtendRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in ExtendRequestBody
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.Extend(r.Context(), r.PathValue("id"), in.Reason)
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleRefuseRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in RefuseRequestBody
	if err := s.decode(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	v, err := rs.Refuse(r.Context(), r.PathValue("id"), in.Ground, in.Explanation)
	s.answer(w, r, http.StatusOK, v, err)
}

// handleFulfilRequest serves POST /v1/requests/{id}/fulfil. The body is optional
// except for complaints (reply) and appeals (outcome and reply).
func (s *Server) handleFulfilRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	var in steward.FulfilInput
	if r.ContentLength != 0 {
		if err := s.decode(w, r, &in); err != nil {
			s.Error(w, r, err)
			return
		}
	}
	v, err := rs.Fulfil(r.Context(), r.PathValue("id"), in)
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleWithdrawRequest(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	if _, ok := s.requireStaff(w, r); !ok {
		return
	}
	v, err := rs.Withdraw(r.Context(), r.PathValue("id"))
	s.answer(w, r, http.StatusOK, v, err)
}

func (s *Server) handleRefusalGrounds(w http.ResponseWriter, r *http.Request) {
	rs := s.rs(w, r)
	if rs == nil {
		return
	}
	s.writeJSON(w, http.StatusOK, RefusalGroundList{Grounds: rs.RefusalGrounds().All()})
}

// answer writes v with status, or err.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, status, v)
}

// RequestMetrics returns a Prometheus collector of the open, due-soon and overdue
// rights requests, counted when scraped (P23: deadlines visible):
// steward_requests_open, steward_requests_due_soon and steward_requests_overdue.
// Register it on the registry given to NewServer in Options.Registry.
func RequestMetrics(rs *steward.RequestService) prometheus.Collector { return requestCollector{rs: rs} }

var (
	descRequestsOpen    = prometheus.NewDesc("steward_requests_open", "Rights requests not yet fulfilled, refused, withdrawn or merged.", nil, nil)
	descRequestsDueSoon = prometheus.NewDesc("steward_requests_due_soon", "Open rights requests due within three days.", nil, nil)
	descRequestsOverdue = prometheus.NewDesc("steward_requests_overdue", "Open rights requests past their due date.", nil, nil)
)

type requestCollector struct{ rs *steward.RequestService }

func (c requestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRequestsOpen
	ch <- descRequestsDueSoon
	ch <- descRequestsOverdue
}

func (c requestCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.rs.RequestStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRequestsOpen, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descRequestsOpen, prometheus.GaugeValue, float64(n.Open))
	ch <- prometheus.MustNewConstMetric(descRequestsDueSoon, prometheus.GaugeValue, float64(n.DueSoon))
	ch <- prometheus.MustNewConstMetric(descRequestsOverdue, prometheus.GaugeValue, float64(n.Overdue))
}

// ---- Go client ----

// FileRequest files a rights request for the signed-in subject (POST /v1/me/requests).
func (c *Client) FileRequest(ctx context.Context, in steward.RequestInput) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodPost, "/v1/me/requests", in)
}

// MyRequests lists the signed-in subject's requests (GET /v1/me/requests).
func (c *Client) MyRequests(ctx context.Context) ([]steward.RequestView, error) {
	var out RequestList
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/requests", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Requests, nil
}

// MyRequest returns one of the signed-in subject's requests (GET /v1/me/requests/{id}).
func (c *Client) MyRequest(ctx context.Context, id string) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodGet, "/v1/me/requests/"+url.PathEscape(id), nil)
}

// SendRequestCode sends a one-time code to verify identity for request id.
func (c *Client) SendRequestCode(ctx context.Context, id string) (*steward.CodeSent, error) {
	var out steward.CodeSent
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/requests/"+url.PathEscape(id)+"/verification-code", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyRequest verifies identity for request id with code.
func (c *Client) VerifyRequest(ctx context.Context, id, code string) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodPost, "/v1/me/requests/"+url.PathEscape(id)+"/verify", VerifyRequestBody{Code: code})
}

// WithdrawMyRequest withdraws the signed-in subject's request id.
func (c *Client) WithdrawMyRequest(ctx context.Context, id string) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodPost, "/v1/me/requests/"+url.PathEscape(id)+"/withdraw", nil)
}

// RequestQueue returns the staff queue (GET /v1/requests).
func (c *Client) RequestQueue(ctx context.Context, query url.Values) (*steward.RequestQueue, error) {
	var out steward.RequestQueue
	if _, err := c.do(ctx, http.MethodGet, "/v1/requests", query, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FileOnBehalf files a request for a subject as staff (POST /v1/requests).
func (c *Client) FileOnBehalf(ctx context.Context, in steward.StaffRequestInput) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodPost, "/v1/requests", in)
}

// Request returns request id as staff see it (GET /v1/requests/{id}).
func (c *Client) Request(ctx context.Context, id string) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil)
}

// RequestAction posts to /v1/requests/{id}/{action} (assign, start, verify,
// extend, refuse, fulfil, withdraw) with body in (nil for none).
func (c *Client) RequestAction(ctx context.Context, id, action string, in any) (*steward.RequestView, error) {
	return c.requestView(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/"+url.PathEscape(action), in)
}

// RecordDecision records an automated decision as a client app.
func (c *Client) RecordDecision(ctx context.Context, subjectID string, in steward.DecisionInput) (*steward.Decision, error) {
	var out steward.Decision
	if _, err := c.do(ctx, http.MethodPost, "/v1/subjects/"+url.PathEscape(subjectID)+"/decisions", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MyDecisions lists the signed-in subject's automated decisions and opt-outs.
func (c *Client) MyDecisions(ctx context.Context) (*steward.MyDecisionsList, error) {
	var out steward.MyDecisionsList
	if _, err := c.do(ctx, http.MethodGet, "/v1/me/decisions", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OptOutOfDecisions refuses decisions made solely by automated means by system.
func (c *Client) OptOutOfDecisions(ctx context.Context, system string) (*steward.DecisionOptOut, error) {
	var out steward.DecisionOptOut
	if _, err := c.do(ctx, http.MethodPost, "/v1/me/decisions/opt-out", nil, OptOutBody{System: system}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) requestView(ctx context.Context, method, path string, in any) (*steward.RequestView, error) {
	var out steward.RequestView
	if _, err := c.do(ctx, method, path, nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
