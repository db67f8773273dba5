package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/api"
)

// The OpenAPI document is kept true by three checks: it validates as
// OpenAPI 3.1 (kin-openapi), every route echo registers is in it, and
// every request and response any API test sends through env.send is
// validated against it (checkSpec, called by send for every exchange).

// specRouter finds the documented operation of a request.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := api.OpenAPI()
	if err != nil {
		return nil, err
	}
	return legacy.NewRouter(doc)
})

// failures collects what a check finds, for the tests that show it bites.
type failures struct {
	mu   sync.Mutex
	list []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, fmt.Sprintf(format, args...))
}

func (f *failures) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

// peek returns the bytes of a request body without consuming it, for the
// readers tests send; known is false for a stream it cannot read ahead.
func peek(r io.Reader) (body []byte, known bool) {
	switch b := r.(type) {
	case nil:
		return nil, true
	case *bytes.Buffer:
		return bytes.Clone(b.Bytes()), true
	case *bytes.Reader:
		body, _ = io.ReadAll(b)
		_, _ = b.Seek(0, io.SeekStart)
		return body, true
	case *strings.Reader:
		body, _ = io.ReadAll(b)
		_, _ = b.Seek(0, io.SeekStart)
		return body, true
	}
	return nil, false
}

var specOptions = &openapi3filter.Options{
	AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
	// A status the document does not list is a failure too.
	IncludeResponseStatus: true,
	MultiError:            true,
}

// checkSpec validates one exchange against the OpenAPI document: the
// request when the API accepted it (a request the API refuses may well be
// outside the schema: that is what the refusal is for), and the response
// always. Requests to routes the document does not have (tests of
// unknown paths and methods) are skipped: TestOpenAPIDocumentsEveryRoute
// covers every registered route.
func (e *env) checkSpec(sent *http.Request, body []byte, known bool, resp *http.Response, raw []byte) {
	report := e.spec
	if report == nil {
		report = e.t.Errorf
	}
	router, err := specRouter()
	if err != nil {
		report("openapi: %v", err)
		return
	}
	req := sent.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := router.FindRoute(req)
	if err != nil {
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: specOptions}
	what := sent.Method + " " + sent.URL.RequestURI()
	if resp.StatusCode < 300 {
		opts := *specOptions
		opts.ExcludeRequestBody = !known
		in.Options = &opts
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			report("openapi: %s was answered %d but the request does not match the document: %v", what, resp.StatusCode, err)
		}
		in.Options = specOptions
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(raw)), Options: specOptions}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		report("openapi: %s answered %d %.300s, which does not match the document: %v", what, resp.StatusCode, raw, err)
	}
}

// TestOpenAPIDocumentValidates: the document is valid OpenAPI 3.1, as
// kin-openapi checks it, and round-trips through its loader as served.
func TestOpenAPIDocumentValidates(t *testing.T) {
	doc, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI %s: %v", doc.OpenAPI, err)
	}
	e := newEnv(t, start)
	var served json.RawMessage
	if status, hdr := e.as(anonymous).do("GET", "/v1/openapi.json", nil, &served); status != http.StatusOK ||
		!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/openapi.json: %d %q", status, hdr.Get("Content-Type"))
	}
	loaded, err := openapi3.NewLoader().LoadFromData(served)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Validate(context.Background()); err != nil {
		t.Fatalf("the served document does not validate: %v", err)
	}
	if len(loaded.Components.Responses["Problem"].Value.Content["application/problem+json"].Schema.Ref) == 0 {
		t.Error("problem responses are not documented as application/problem+json")
	}
}

// undocumented lists the registered routes the document does not have.
func undocumented(doc *openapi3.T, routes []*echo.Route) []string {
	var missing []string
	for _, r := range routes {
		item := doc.Paths.Value(api.OpenAPIPath(r.Path))
		if item == nil || item.GetOperation(r.Method) == nil {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	slices.Sort(missing)
	return missing
}

// TestOpenAPIDocumentsEveryRoute: every route echo has registered is an
// operation of the document, and the document has no operation the
// router lacks. The second case shows the check bites: a route added
// without a row in api/openapi.go is reported.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, start)
	if missing := undocumented(doc, e.echo.Routes()); len(missing) > 0 {
		t.Errorf("routes without documentation (add them to apiDocs in api/openapi.go): %v", missing)
	}
	registered := map[string]bool{}
	for _, r := range e.echo.Routes() {
		registered[r.Method+" "+api.OpenAPIPath(r.Path)] = true
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+path] {
				t.Errorf("the document has %s %s, which no route serves", method, path)
			}
		}
	}

	t.Run("an undocumented route is reported", func(t *testing.T) {
		e := newEnvWith(t, start, envOptions{routes: func(ec *echo.Echo) {
			ec.GET("/v1/undocumented/:id", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
		}})
		missing := undocumented(doc, e.echo.Routes())
		if !slices.Equal(missing, []string{"GET /v1/undocumented/:id"}) {
			t.Fatalf("undocumented = %v, want the added route alone", missing)
		}
	})
}

// TestOpenAPIResponseMismatchBites: a documented route whose answer does
// not match its schema fails the check every API test runs, as does an
// accepted request outside the schema.
func TestOpenAPIResponseMismatchBites(t *testing.T) {
	var got failures
	e := newEnvWith(t, start, envOptions{specFailures: &got, routes: func(ec *echo.Echo) {
		// Replaces the real handler: a decision whose inspect is a string
		// and which lacks most required members.
		ec.GET("/v1/decisions/:id", func(c echo.Context) error {
			return c.JSON(http.StatusOK, map[string]any{"id": c.Param("id"), "inspect": "yes"})
		})
		// An undocumented status on a documented route.
		ec.GET("/v1/policies", func(c echo.Context) error { return c.JSON(http.StatusTeapot, map[string]string{}) })
	}})
	e.do("GET", "/v1/decisions/D-1", nil, nil)
	e.do("GET", "/v1/policies", nil, nil)
	fs := got.all()
	if len(fs) != 2 || !strings.Contains(fs[0], "GET /v1/decisions/D-1 answered 200") || !strings.Contains(fs[1], "GET /v1/policies answered 418") {
		t.Fatalf("want a failure for each wrong answer, got %q", fs)
	}
	// A well-formed answer passes.
	e.as(anonymous).do("GET", "/healthz", nil, nil)
	if n := len(got.all()); n != 2 {
		t.Fatalf("a valid answer was reported: %q", got.all()[2:])
	}
}

// TestReferencePageIsSelfContained: GET /v1/reference is HTML served by
// the binary that reads the document from this server and loads nothing
// from anywhere else.
func TestReferencePageIsSelfContained(t *testing.T) {
	e := newEnv(t, start)
	req, err := http.NewRequest("GET", e.srv.URL+"/v1/reference", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Contains(page, []byte(`fetch("/v1/openapi.json")`)) {
		t.Error("the page does not read /v1/openapi.json")
	}
	for _, outside := range []string{"http://", "https://", `src="//`, `href="//`, "@import"} {
		if bytes.Contains(page, []byte(outside)) {
			t.Errorf("the page refers outside this server: %q", outside)
		}
	}
}
