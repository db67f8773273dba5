package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErrorAnswersAreProblems sends serve, as wired, requests that are
// wrong at the HTTP level. Every one that reaches a handler is answered
// problem+json; the ones net/http answers itself before any handler runs
// are pinned here with what it writes, as docs/architecture.md lists them
// ("What net/http answers itself"), so a Go release that changes them
// fails this test instead of the document going stale.
func TestErrorAnswersAreProblems(t *testing.T) {
	s := serveLimited(t, "64", serverTimeouts{readHeader: time.Second, read: time.Second, write: 5 * time.Second, idle: 5 * time.Second})
	auth := "Authorization: Bearer " + s.creds["customs"] + "\r\n"
	nsw := "Authorization: Bearer " + s.creds["nsw"] + "\r\n"
	const plain = "text/plain; charset=utf-8"
	tests := []struct {
		name, request string
		status        int
		contentType   string // problem+json unless said
	}{
		// Answered by the service.
		{"unknown path", "GET /v1/nope HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 404, ""},
		{"method not allowed", "PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + auth + "\r\n", 405, ""},
		{"HEAD of a GET route", "HEAD /v1/policy HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 405, ""},
		{"TRACE", "TRACE /v1/policy HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 405, ""},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" + auth + "\r\n", 404, ""},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 401, ""},
		{"HTTP/2 preface on HTTP/1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 401, ""},
		{"malformed chunk", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n" + nsw + "\r\nzz\r\n{}\r\n0\r\n\r\n", 400, ""},
		{"chunked body over the limit", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n" + nsw + "\r\n200000\r\n" + `{"declaration_id":"` + strings.Repeat("9", 0x200000-19) + "\r\n0\r\n\r\n", 413, ""},
		{"Content-Length over the limit", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n" + nsw + "\r\n{", 413, ""},
		{"body slower than the read timeout", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n" + nsw + "\r\n{", 408, ""},
		// Answered by net/http before any handler runs.
		{"malformed request line", "GARBAGE\r\n\r\n", 400, plain},
		{"method not a token", "G(T /v1/policy HTTP/1.1\r\nHost: x\r\n\r\n", 400, plain},
		{"HTTP/0.9 request", "GET /v1/policy\r\n\r\n", 400, plain},
		{"TLS on the plain port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400, plain},
		{"bad escape in the path", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, plain},
		{"invalid header name", "GET /v1/policy HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400, plain},
		{"control character in a header", "GET /v1/policy HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, plain},
		{"malformed Host", "GET /v1/policy HTTP/1.1\r\nHost: a b\r\n\r\n", 400, plain},
		{"HTTP/1.1 without Host", "GET /v1/policy HTTP/1.1\r\n\r\n", 400, plain},
		{"Content-Length not a number", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, plain},
		{"two Content-Lengths", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, plain},
		{"headers over 64 KiB", "GET /v1/policy HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431, plain},
		{"URL over 64 KiB", "GET /v1/" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, plain},
		{"transfer encoding other than chunked", "POST /v1/declarations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, plain},
		{"HTTP/2.0 request line", "GET /v1/policy HTTP/2.0\r\nHost: x\r\n\r\n", 505, plain},
		{"Expect other than 100-continue", "GET /v1/policy HTTP/1.1\r\nHost: x\r\nExpect: nothing\r\n" + auth + "\r\n", 417, "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			go func() { _, _ = io.WriteString(c, tc.request) }()
			method, _, _ := strings.Cut(tc.request, " ")
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := tc.contentType
			switch want {
			case "":
				want = "application/problem+json"
			case "-":
				want = "" // no body at all
			}
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != want {
				t.Fatalf("%d %q %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, want)
			}
			if want == "application/problem+json" && strings.HasPrefix(tc.request, "HEAD") != (len(body) == 0) {
				t.Fatalf("body %q", body)
			}
		})
	}
}
