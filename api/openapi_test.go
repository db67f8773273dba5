package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/api"
)

// The OpenAPI document is kept true by checks: it validates as OpenAPI
// 3.1 (kin-openapi), and every route echo registers is in it.

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
