package api

import (
	_ "embed"
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/backtest"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
)

// The OpenAPI document is built here, in Go, from the table below and the
// Go types the handlers read and write (openapi3gen reads their json
// tags), so it cannot drift from the code by hand-editing: a route
// missing from apiDocs, or a body whose shape changed, fails
// api/openapi_test.go, which checks every registered route is documented
// and validates every request and response the API tests exchange.

// OpenAPIVersion is the version of the OpenAPI specification the document
// declares; kin-openapi validates 3.1 documents (and 3.1 bodies with JSON
// Schema 2020-12) since v0.13x.
const OpenAPIVersion = "3.1.0"

// param is a query parameter: its name, JSON Schema type and meaning.
type param struct {
	name, typ, doc string
}

func q(name, typ, doc string) param { return param{name, typ, doc} }

// op documents one route: its request body (a value of the Go type the
// handler decodes; nil for none), whether the body may be left out, the
// success status and body (a value of the type the handler encodes),
// whether an idempotent retry answers 200 with the same body, and the
// query parameters it reads.
type op struct {
	summary  string
	in       any
	optional bool
	status   int
	out      any
	replay   bool
	query    []param
	// media is the success body's media type when not JSON.
	media string
	// also is a second media type the success body may take beside
	// out's JSON (text/csv when a query asks for it).
	also string
}

var (
	limitParam = q("limit", "integer", "page size, 1 to 1000")
	afterSeqQ  = q("after", "integer", "the last sequence number read; 0 (the default) for the start")
)

// apiDocs documents every route, keyed as routeRules is.
var apiDocs = map[string]op{
	"GET /healthz":            {summary: "Liveness and the policy version in force", status: 200, out: health{}},
	"GET /readyz":             {summary: "Readiness: the store reads and writes, no job is stuck, no webhook lags past its threshold (503 says which)", status: 200, out: ReadyStatus{}},
	"GET /v1/jobs":            {summary: "The periodic jobs and how their runs went", status: 200, out: JobList{}},
	"POST /v1/jobs/:name/run": {summary: "Start a job now, outside its schedule (409 while it runs)", status: 202, out: JobStarted{}},
	"GET /v1/openapi.json":    {summary: "This OpenAPI document", status: 200, out: map[string]any{}},
	"GET /v1/reference":       {summary: "A human-readable reference of this API (HTML)", status: 200, media: "text/html"},
	// Prometheus' text exposition format (client_golang's, version 0.0.4):
	// no key from the loopback, else a key of role metrics, admin or
	// auditor (auth.go).
	"GET /metrics": {summary: "Operational metrics in Prometheus' text format: no key from the loopback, else a metrics, admin or auditor key",
		status: 200, media: "text/plain"},

	"POST /v1/declarations": {summary: "Decide which lines of a declaration to inspect (idempotent by declaration_id)",
		in: declaration.Input{}, status: 201, out: DeclarationResponse{}, replay: true},
	"GET /v1/decisions": {summary: "Search decisions", status: 200, out: DecisionSearchResponse{}, query: []param{
		q("importer", "string", "importer tax code"), q("declaration", "string", "declaration ID"), q("hs", "string", "HS code prefix"),
		q("mode", "string", "decision mode"), q("inspect", "boolean", "whether inspected"), q("agency", "string", "agency ID"),
		q("from", "string", "earliest decision time (RFC 3339 or date)"), q("to", "string", "latest decision time (RFC 3339 or date, inclusive)"),
		q("overridden", "boolean", "whether overridden"), q("after", "string", "cursor: the previous page's next"), limitParam}},
	"GET /v1/decisions/:id": {summary: "A decision with its overrides", status: 200, out: inspection.DecisionView{}},
	"POST /v1/decisions/:id/override": {summary: "Override a decision", in: inspection.OverrideInput{},
		status: 201, out: OverrideResponse{}, replay: true},
	"POST /v1/decisions/:id/overrides/:n/confirm": {summary: "Confirm a relaxing override (second pair of eyes)",
		in: struct{}{}, optional: true, status: 200, out: OverrideResponse{}},
	"POST /v1/decisions/:id/overrides/:n/reject": {summary: "Reject a relaxing override", in: ReasonRequest{}, status: 200, out: OverrideResponse{}},

	"GET /v1/assignments": {summary: "The inspection queue", status: 200, out: AssignmentList{}, query: []param{
		q("agency", "string", "agency ID"), q("status", "string", "comma-separated statuses"), q("mode", "string", "decision mode"),
		q("check", "string", "check kind"), q("overdue", "boolean", "only overdue assignments"),
		q("due_before", "string", "RFC 3339 time or date"), q("due_after", "string", "RFC 3339 time or date"),
		q("sort", "string", "sort order"), q("after", "string", "cursor: the previous page's next"), limitParam}},
	"GET /v1/assignments/:id": {summary: "An assignment", status: 200, out: inspection.Assignment{}},
	"POST /v1/assignments/:id/result": {summary: "Record an agency's result", in: inspection.ResultInput{},
		status: 201, out: inspection.Assignment{}, replay: true},
	"POST /v1/assignments/:id/accept":      {summary: "Accept an assignment", in: AcceptRequest{}, status: 200, out: inspection.Assignment{}},
	"POST /v1/assignments/:id/sample":      {summary: "Record sampling", in: inspection.SampleInput{}, status: 200, out: inspection.Assignment{}},
	"POST /v1/assignments/:id/corrections": {summary: "Correct a recorded result", in: inspection.CorrectionInput{}, status: 201, out: inspection.Assignment{}, replay: true},
	"GET /v1/workload": {summary: "Each agency's backlog, due and overdue work", status: 200, out: WorkloadResponse{},
		query: []param{q("date", "string", "the day (RFC 3339 time or date); today by default")}},

	"POST /v1/alerts":    {summary: "Raise an alert", in: inspection.AlertInput{}, status: 201, out: inspection.Event{}, replay: true},
	"GET /v1/goods/:key": {summary: "The state of goods", status: 200, out: inspection.GoodsState{}},
	"POST /v1/manufacturers/:key/certificates": {summary: "Register a checked certificate on a manufacturer",
		in: inspection.CertificateRegistration{}, status: 201, out: reference.Manufacturer{}},
	"POST /v1/goods/:key/link":   {summary: "Link goods into other goods", in: GoodsLinkRequest{}, status: 201, out: inspection.GoodsLink{}},
	"POST /v1/goods/:key/unlink": {summary: "Undo a goods link", in: GoodsLinkRequest{}, status: 200, out: inspection.GoodsLink{}},
	"GET /v1/policy":             {summary: "The policy in force", status: 200, out: policy.Policy{}},

	"GET /v1/quota/periods":                {summary: "Quota periods", status: 200, out: QuotaPeriodList{}},
	"GET /v1/quota/periods/:period/scopes": {summary: "Quota usage of a period", status: 200, out: quota.Usage{}},
	"GET /v1/audit":                        {summary: "The audit chain", status: 200, out: AuditPage{}, query: []param{afterSeqQ, limitParam}},
	"GET /v1/scores": {summary: "Ranked risk scores", status: 200, out: ScoreList{},
		query: []param{q("kind", "string", "subject kind (goods by default)"), limitParam}},
	"GET /v1/scores/:subject": {summary: "The risk score of kind:id", status: 200, out: SubjectScore{}},

	"POST /v1/admin/keys":       {summary: "Create an API key (the token is shown once)", in: KeyCreateRequest{}, status: 201, out: KeyCreated{}},
	"GET /v1/admin/keys":        {summary: "List API keys", status: 200, out: KeyList{}},
	"DELETE /v1/admin/keys/:id": {summary: "Revoke an API key", status: 200, out: KeyInfo{}},
	"POST /v1/admin/backups":    {summary: "Write a backup into the backup directory (the newest N are kept)", status: 201, out: inspection.BackupInfo{}},
	"GET /v1/admin/backup":      {summary: "Stream a consistent backup (a header, a manifest line, then badger's stream compressed with zstd)", status: 200, media: "application/octet-stream"},

	"GET /v1/policies":                    {summary: "Policy versions", status: 200, out: PolicyList{}},
	"POST /v1/policies":                   {summary: "Draft a policy version", in: PolicyCreateRequest{}, status: 201, out: inspection.PolicyVersion{}},
	"GET /v1/policies/:version":           {summary: "A policy version", status: 200, out: inspection.PolicyVersion{}},
	"PUT /v1/policies/:version":           {summary: "Edit a draft's document", in: jsontext.Value{}, status: 200, out: inspection.PolicyVersion{}},
	"POST /v1/policies/:version/validate": {summary: "Validate a version", status: 200, out: inspection.PolicyValidation{}},
	"POST /v1/policies/:version/submit":   {summary: "Submit a draft for approval", status: 200, out: inspection.PolicyVersion{}},
	"POST /v1/policies/:version/approve":  {summary: "Approve a submitted version", in: ApproveRequest{}, status: 200, out: inspection.PolicyVersion{}},
	"POST /v1/policies/:version/reject":   {summary: "Reject a submitted version", in: ReasonRequest{}, status: 200, out: inspection.PolicyVersion{}},
	"POST /v1/policies/:version/activate": {summary: "Activate an approved version, now or at a time", in: ActivateRequest{}, optional: true,
		status: 200, out: inspection.PolicyVersion{}},
	"POST /v1/policies/:version/backtests": {summary: "Start a backtest of the version against the one in force (a stretch of stored history, or a generated one); the job is kept in the store, and one a restart interrupts is marked failed, never resumed: start it again",
		in: BacktestRequest{}, optional: true, status: 202, out: backtest.Job{}},
	"GET /v1/backtests/:id": {summary: "A backtest: state, progress, and its report once done (a job a restart interrupted is failed, with the progress it had and no report)", status: 200, out: backtest.Job{}},
	"GET /v1/backtests/:id/changes": {summary: "A done backtest's changed lots, paged (or all as CSV); 409 for a job not done", status: 200, out: BacktestChangesPage{}, also: "text/csv",
		query: []param{q("after", "integer", "cursor: the previous page's next"), limitParam, q("format", "string", "json (the default) or csv")}},
	"DELETE /v1/backtests/:id":          {summary: "Cancel a running backtest", status: 200, out: backtest.Job{}},
	"POST /v1/policies/:version/retire": {summary: "Retire a version", in: ReasonRequest{}, optional: true, status: 200, out: inspection.PolicyVersion{}},
	"GET /v1/policies/:version/diff": {summary: "Changes from this version to another", status: 200, out: PolicyDiff{},
		query: []param{q("to", "string", "the version to compare with (required)")}},
	"POST /v1/policies/:version/shadow": {summary: "Start or stop a shadow run", in: ShadowRequest{}, status: 200, out: inspection.PolicyVersion{}},
	"GET /v1/policies/:version/shadow": {summary: "The shadow run's report", status: 200, out: inspection.ShadowReport{},
		query: []param{q("after", "string", "cursor: the previous page's next"), limitParam}},
	"GET /v1/policies/:version/effectiveness": {summary: "The version's effectiveness ledger: hit rates per rule, and the violation rate among reduced lots estimated from the random checks",
		status: 200, out: inspection.Effectiveness{}},

	"GET /v1/events": {summary: "The NSW feed (long poll with wait)", status: 200, out: EventPageResponse{}, query: []param{
		afterSeqQ, limitParam, q("types", "string", "comma-separated event types"), q("wait", "string", "how long to wait for events, e.g. 30s")}},
	"POST /v1/webhooks":                   {summary: "Subscribe a webhook (the secret is shown once)", in: inspection.WebhookInput{}, status: 201, out: inspection.NewWebhook{}},
	"GET /v1/webhooks":                    {summary: "List webhooks", status: 200, out: WebhookList{}},
	"GET /v1/webhooks/:id":                {summary: "A webhook", status: 200, out: inspection.Webhook{}},
	"POST /v1/webhooks/:id/rotate-secret": {summary: "Rotate a webhook's secret", status: 200, out: inspection.NewWebhook{}},
	"POST /v1/webhooks/:id/redeliver":     {summary: "Redeliver a range of events", in: RedeliverRequest{}, status: 202, out: RedeliverRequest{}},
	"GET /v1/webhooks/:id/dead-letters": {summary: "Deliveries that failed for good", status: 200, out: inspection.DeadLetterPage{},
		query: []param{afterSeqQ, limitParam}},
	"DELETE /v1/webhooks/:id": {summary: "Delete a webhook", status: 200, out: inspection.Webhook{}},
}

// health is GET /healthz's body.
type health struct {
	Status        string `json:"status"`
	PolicyVersion string `json:"policy_version"`
}

// problemStatuses are the error statuses every operation documents; each
// answers an RFC 9457 problem (Problem).
var problemStatuses = []int{400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503}

// problemCodes are the codes a Problem carries and what each means; the
// document lists them as the enum of code, so every problem any API test
// provokes is checked to carry one of them.
var problemCodes = []struct{ code, doc string }{
	{"invalid", "400: the request is malformed (JSON, media type, parameter); 422: the input breaks a rule. field names it"},
	{"unauthenticated", "401: no key, or a key that is unknown, expired or revoked"},
	{"forbidden", "403: the principal's role may not do this"},
	{"not_found", "404: no such record, or not one the principal may see"},
	{"method_not_allowed", "405: the path exists but not with this method"},
	{"conflict", "409: the input contradicts what is stored (e.g. a retry with another body)"},
	{"gone", "410: it existed but is no longer kept"},
	{"too_large", "413: the body exceeds the limit"},
	{"unsupported_media_type", "415: the body is not application/json"},
	{"rate_limited", "429: too many requests from this principal, or too many failed authentications from this address"},
	{"internal", "500: a bug or an unexpected storage failure"},
	{"unavailable", "503: a dependency is down or the server is shutting down; retry later"},
}

// describeProblem documents Problem's members: the code enum and the type
// URI each code has.
func describeProblem(sc *openapi3.Schema) {
	sc.Description = "RFC 9457 problem details. type is https://ktcn.gov.vn/problems/<code>; title is the status text."
	code := sc.Properties["code"].Value
	var b strings.Builder
	b.WriteString("ktcn's error code:")
	for _, c := range problemCodes {
		code.Enum = append(code.Enum, c.code)
		b.WriteString("\n- " + c.code + ": " + c.doc)
	}
	code.Description = b.String()
	sc.Properties["type"].Value.Format = "uri"
	sc.Properties["field"].Value.Description = "the offending input: a JSON pointer into the body, or a parameter name"
}

var (
	openAPIOnce sync.Once
	openAPIDoc  *openapi3.T
	openAPIJSON []byte
	openAPIErr  error
)

// OpenAPI returns the API's OpenAPI document (built once; callers must
// not change it).
func OpenAPI() (*openapi3.T, error) {
	openAPIOnce.Do(func() {
		openAPIDoc, openAPIErr = buildOpenAPI()
		if openAPIErr == nil {
			openAPIJSON, openAPIErr = json.Marshal(openAPIDoc)
		}
	})
	return openAPIDoc, openAPIErr
}

// OpenAPIJSON is OpenAPI() encoded.
func OpenAPIJSON() ([]byte, error) {
	_, err := OpenAPI()
	return openAPIJSON, err
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// OpenAPIPath turns echo's /a/:b into OpenAPI's /a/{b}.
func OpenAPIPath(path string) string { return echoParam.ReplaceAllString(path, "{$1}") }

func buildOpenAPI() (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: OpenAPIVersion,
		Info: &openapi3.Info{Title: "ktcn", Version: "1",
			Description: "Risk-based inspection of imported goods. Every route but /healthz, /readyz, /v1/openapi.json and /v1/reference " +
				"needs a bearer API key (/metrics none from the loopback); which roles may call which route is in the README. Errors are RFC 9457 problems."},
		Paths:    openapi3.NewPaths(),
		Security: openapi3.SecurityRequirements{{"bearer": {}}},
		Components: &openapi3.Components{
			Schemas:   openapi3.Schemas{},
			Responses: openapi3.ResponseBodies{},
			SecuritySchemes: openapi3.SecuritySchemes{"bearer": {Value: &openapi3.SecurityScheme{
				Type: "http", Scheme: "bearer", Description: "an API key created by `ktcn keys create` or POST /v1/admin/keys"}}},
		},
	}
	s := &schemas{doc: doc, owner: map[string]owner{}}
	problem, err := s.ref(Problem{}, true)
	if err != nil {
		return nil, err
	}
	describeProblem(s.doc.Components.Schemas["Problem"].Value)
	problemResponse := openapi3.NewResponse().
		WithDescription("An RFC 9457 problem: code is ktcn's error code, field the offending input (JSON path or parameter name).").
		WithContent(openapi3.NewContentWithSchemaRef(problem, []string{problemContentType}))
	doc.Components.Responses["Problem"] = &openapi3.ResponseRef{Value: problemResponse}

	keys := make([]string, 0, len(apiDocs))
	for k := range apiDocs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		d := apiDocs[key]
		method, path, _ := strings.Cut(key, " ")
		o := &openapi3.Operation{
			OperationID: operationID(method, path),
			Summary:     d.summary,
			Tags:        []string{tagOf(path)},
			Responses:   openapi3.NewResponsesWithCapacity(len(problemStatuses) + 3),
		}
		if rule, ok := routeRules[key]; ok && rule.public {
			o.Security = &openapi3.SecurityRequirements{}
		} else if ok && rule.loopback {
			// No key (from the loopback), or the bearer key.
			o.Security = &openapi3.SecurityRequirements{{}, {"bearer": {}}}
		}
		for _, m := range echoParam.FindAllStringSubmatch(path, -1) {
			o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: openapi3.NewPathParameter(m[1]).
				WithSchema(openapi3.NewStringSchema())})
		}
		for _, p := range d.query {
			// Empty is the same as absent for every parameter.
			qp := openapi3.NewQueryParameter(p.name).WithDescription(p.doc).WithSchema(&openapi3.Schema{Type: &openapi3.Types{p.typ}})
			qp.AllowEmptyValue = true
			o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: qp})
		}
		if d.in != nil {
			ref, err := s.ref(d.in, false)
			if err != nil {
				return nil, fmt.Errorf("%s request: %w", key, err)
			}
			o.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().
				WithRequired(!d.optional).WithContent(openapi3.NewContentWithJSONSchemaRef(ref))}
		}
		ok := openapi3.NewResponse().WithDescription(http.StatusText(d.status))
		switch {
		case d.media != "":
			ok.WithContent(openapi3.Content{d.media: openapi3.NewMediaType()})
		case d.out != nil:
			ref, err := s.ref(d.out, true)
			if err != nil {
				return nil, fmt.Errorf("%s response: %w", key, err)
			}
			content := openapi3.NewContentWithJSONSchemaRef(ref)
			if d.also != "" {
				content[d.also] = openapi3.NewMediaType()
			}
			ok.WithContent(content)
		}
		o.AddResponse(d.status, ok)
		if d.replay {
			replay := *ok
			replay.Description = openapi3.Ptr("The same answer to an idempotent retry: nothing changed.")
			o.AddResponse(http.StatusOK, &replay)
		}
		for _, st := range problemStatuses {
			o.Responses.Set(fmt.Sprint(st), &openapi3.ResponseRef{Ref: "#/components/responses/Problem", Value: problemResponse})
		}
		doc.AddOperation(OpenAPIPath(path), method, o)
	}
	return doc, nil
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for part := range strings.SplitSeq(strings.TrimPrefix(path, "/v1"), "/") {
		part = strings.TrimPrefix(part, ":")
		for w := range strings.FieldsFuncSeq(part, func(r rune) bool { return r == '-' || r == '.' || r == '_' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func tagOf(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	if parts[0] == "" || parts[0] == "healthz" || parts[0] == "metrics" || strings.HasPrefix(parts[0], "openapi") || parts[0] == "reference" {
		return "meta"
	}
	return parts[0]
}

// schemas registers one component schema per Go body type, named after
// the type; nested types are inlined into it. Response schemas require
// every member the encoder always writes (no omitempty or omitzero) and
// allow null where a nil pointer, slice or map encodes as null; request
// schemas require nothing, as the strict decoder leaves absent members
// zero and the domain says which it needs.
type schemas struct {
	doc   *openapi3.T
	owner map[string]owner
}

// owner is the Go type a component schema describes, and which way.
type owner struct {
	t        reflect.Type
	response bool
}

// componentName names a body type's component: its Go name, capitalised;
// a request type's ends in Input or Request (declaration.Input is
// DeclarationInput). Unnamed types, maps and raw JSON are inlined ("").
func componentName(t reflect.Type, response bool) string {
	name := t.Name()
	if name == "" || t.Kind() != reflect.Struct {
		return ""
	}
	if name == "Input" {
		pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
		name = pkg + name
	}
	name = strings.ToUpper(name[:1]) + name[1:]
	if !response && !strings.HasSuffix(name, "Input") && !strings.HasSuffix(name, "Request") {
		name += "Input"
	}
	return name
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	rawTypes      = []reflect.Type{reflect.TypeFor[json.RawMessage](), reflect.TypeFor[jsontext.Value]()}
)

func (s *schemas) ref(v any, response bool) (*openapi3.SchemaRef, error) {
	t := reflect.TypeOf(v)
	name := componentName(t, response)
	if name != "" {
		if other, taken := s.owner[name]; taken && other != (owner{t, response}) {
			name += map[bool]string{true: "Response", false: "Body"}[response]
		}
	}
	gen := openapi3gen.NewGenerator(openapi3gen.UseAllExportedFields(),
		openapi3gen.SchemaCustomizer(func(_ string, ft reflect.Type, tag reflect.StructTag, sc *openapi3.Schema) error {
			return customize(ft, tag, sc, response)
		}))
	ref, err := gen.NewSchemaRefForValue(v, nil)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return ref, nil
	}
	s.doc.Components.Schemas[name] = &openapi3.SchemaRef{Value: ref.Value}
	s.owner[name] = owner{t, response}
	return &openapi3.SchemaRef{Ref: "#/components/schemas/" + name, Value: ref.Value}, nil
}

// customize corrects what openapi3gen cannot know from the Go type alone.
func customize(t reflect.Type, tag reflect.StructTag, sc *openapi3.Schema, response bool) error {
	nullable := sc.Nullable
	sc.Nullable = false // not a 3.1 keyword: null is a type there
	switch {
	case slices.Contains(rawTypes, t):
		*sc = openapi3.Schema{Description: "any JSON value"}
		return nil
	case t.Kind() == reflect.Struct && t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler):
		*sc = openapi3.Schema{Type: &openapi3.Types{"string"}}
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
		*sc = openapi3.Schema{}
		return nil
	}
	if !response {
		return nil
	}
	if t.Kind() == reflect.Struct && sc.Properties != nil {
		sc.Required = requiredMembers(t)
	}
	opts := tag.Get("json")
	omitted := strings.Contains(opts, ",omitempty") || strings.Contains(opts, ",omitzero")
	if (nullable || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Interface) && !omitted && sc.Type != nil {
		types := append(openapi3.Types{}, *sc.Type...)
		if !slices.Contains(types, "null") {
			types = append(types, "null")
		}
		sc.Type = &types
	}
	return nil
}

// requiredMembers names the members encoding/json always writes for t.
func requiredMembers(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				continue // may be nil: its members may all be absent
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, requiredMembers(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if strings.Contains(","+opts, ",omitempty") || strings.Contains(","+opts, ",omitzero") {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// openAPIJSONHandler serves the document.
func openAPIJSONHandler(c echo.Context) error {
	body, err := OpenAPIJSON()
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, body)
}

//go:embed reference.html
var referenceHTML []byte

// referencePage serves the reference page, which reads the document
// from /v1/openapi.json and renders it with no network beyond this server.
func referencePage(c echo.Context) error {
	return c.HTMLBlob(http.StatusOK, referenceHTML)
}
