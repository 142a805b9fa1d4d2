// fakeworkspace serves github.com/databricks/cli/libs/testserver, the fake workspace the Databricks CLI's
// own acceptance tests deploy into, on 127.0.0.1 for the template's test suite.
//
// It prints "LISTENING <url>" once it serves, then runs until it is sent SIGTERM or SIGINT, or its
// standard input closes (so a test process that dies takes the server with it).
//
// Beside the testserver's own routes (AddDefaultHandlers: apps, permissions, postgres, database
// instances, workspace files, fake OIDC, /__testserver/fault and /__testserver/kill) it answers:
//
//	GET /__lakebase/errors    what the testserver reported through t.Errorf, above all its
//	                          "No handler for URL" for a request it cannot answer
//	GET /__lakebase/requests  every request it served: method, path, query, body, and the token's
//	                          identity prefix and workspace key (?workspace=<key> keeps one workspace's)
//
// and it stands in for one thing the testserver lacks, a second user: GET /api/2.0/preview/scim/v2/Me for a
// user token (dbapi0) whose workspace key starts with "second-developer-" answers bob.jones@example.com
// (the testserver knows one user, fake_workspace.go TestUser), so two developers' dev deployments can be
// resolved side by side. Every other token gets the testserver's own answer (handlers.go).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/databricks/cli/libs/testserver"
)

// recorder stands in for *testing.T: the testserver reports what it cannot serve through Errorf.
type recorder struct {
	mu       sync.Mutex
	errors   []string
	cleanups []func()
	ctx      context.Context
	dir      string
}

func (r *recorder) record(msg string) {
	r.mu.Lock()
	r.errors = append(r.errors, msg)
	r.mu.Unlock()
	fmt.Fprintln(os.Stderr, "fakeworkspace: "+msg)
}

func (r *recorder) Log(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (r *recorder) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (r *recorder) Error(args ...any)               { r.record(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) {
	r.record(fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any)                 { r.record(fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *recorder) Skip(args ...any)                  { r.record("skip: " + fmt.Sprint(args...)) }
func (r *recorder) Skipf(format string, args ...any)  { r.record("skip: " + fmt.Sprintf(format, args...)) }
func (r *recorder) FailNow()                          { r.record("FailNow") }
func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}
func (r *recorder) Context() context.Context      { return r.ctx }
func (r *recorder) Setenv(key, value string)      { _ = os.Setenv(key, value) }
func (r *recorder) TempDir() string               { return r.dir }
func (r *recorder) Helper()                       {}
func (r *recorder) runCleanups() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

type logged struct {
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Query     string          `json:"query"`
	Body      json.RawMessage `json:"body,omitempty"`
	RawBody   string          `json:"raw_body,omitempty"`
	Identity  string          `json:"identity"`
	Workspace string          `json:"workspace"`
}

// identity names the token's prefix the way fake_workspace.go reads it.
func identity(token string) (string, string) {
	for prefix, who := range map[string]string{
		testserver.UserNameTokenPrefix:              "user",
		testserver.ServicePrincipalTokenPrefix:      "service_principal",
		testserver.GuestServicePrincipalTokenPrefix: "guest_service_principal",
	} {
		if key, ok := strings.CutPrefix(token, prefix); ok {
			return who, key
		}
	}
	return "other", token
}

func main() {
	dir, err := os.MkdirTemp("", "fakeworkspace-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	t := &recorder{ctx: ctx, dir: dir}

	server := testserver.New(t)
	// Registered before the defaults, so it wins (router.go: first registration wins).
	server.Handle("GET", "/api/2.0/preview/scim/v2/Me", secondDeveloper)
	testserver.AddDefaultHandlers(server)

	var mu sync.Mutex
	var requests []logged
	server.RequestCallback = func(req *testserver.Request) {
		if strings.HasPrefix(req.URL.Path, "/__lakebase/") {
			return
		}
		who, key := identity(req.Token)
		entry := logged{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Identity: who, Workspace: key}
		if json.Valid(req.Body) {
			entry.Body = append(json.RawMessage(nil), req.Body...)
		} else if len(req.Body) > 0 {
			entry.RawBody = fmt.Sprintf("[%d bytes]", len(req.Body))
		}
		mu.Lock()
		requests = append(requests, entry)
		mu.Unlock()
	}
	server.Handle("GET", "/__lakebase/errors", func(_ testserver.Request) any {
		t.mu.Lock()
		defer t.mu.Unlock()
		return append([]string{}, t.errors...)
	})
	server.Handle("GET", "/__lakebase/requests", func(req testserver.Request) any {
		want := req.URL.Query().Get("workspace")
		mu.Lock()
		defer mu.Unlock()
		out := []logged{}
		for _, r := range requests {
			if want == "" || r.Workspace == want {
				out = append(out, r)
			}
		}
		return out
	})

	fmt.Printf("LISTENING %s\n", server.URL)
	os.Stdout.Sync()

	done := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		close(done)
	}()
	go func() {
		// A parent that dies closes our standard input.
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		select {
		case <-done:
		default:
			close(done)
		}
	}()
	<-done
	cancel()
	t.runCleanups()
}

// SecondDeveloperKeyPrefix marks the workspace key of a user token that is a second developer.
const SecondDeveloperKeyPrefix = "second-developer-"

func secondDeveloper(req testserver.Request) any {
	user := any(req.Workspace.MeUser(req.Token))
	if key, ok := strings.CutPrefix(req.Token, testserver.UserNameTokenPrefix); ok && strings.HasPrefix(key, SecondDeveloperKeyPrefix) {
		user = map[string]any{"id": "1000054321", "userName": "bob.jones@example.com", "active": true}
	}
	return testserver.Response{
		Headers: map[string][]string{"X-Databricks-Org-Id": {"900800700600"}}, // as handlers.go answers /Me
		Body:    user,
	}
}
