package tasksfile

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A task's exec and http fields: the command line, and the request
// with its method, URL, headers and body.

func (t *taskParse) exec(n *yaml.Node) []string {
	const want = "a non-empty list of strings like [sh, -c, 'echo hi']"
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		if n.Kind == yaml.SequenceNode {
			t.errorf(n.Line, "exec", "want %s, got an empty list", want)
		} else {
			t.bad("exec", n, want)
		}
		return nil
	}
	argv := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		field := fmt.Sprintf("exec[%d]", i)
		v := t.p.resolve(item)
		s, ok := t.text(field, v, "a string", false)
		switch {
		case !ok:
			return nil
		case i == 0 && s == "":
			t.bad(field, v, "the program to run")
			return nil
		case strings.IndexByte(s, 0) >= 0:
			t.errorf(v.Line, field, "contains a NUL byte; want text without one")
			return nil
		}
		argv = append(argv, s)
	}
	return argv
}

func (t *taskParse) http(n *yaml.Node) *HTTP {
	if n.Kind != yaml.MappingNode {
		t.bad("http", n, "a mapping with url and optional method, headers, body")
		return nil
	}
	h := &HTTP{}
	var method, urlField *yaml.Node
	for _, kv := range t.p.pairs(n, t.label+": http: ") {
		v := kv.val
		switch kv.key {
		case "method":
			method = v
		case "url":
			urlField = v
		case "body":
			if s, ok := t.text("http.body", v, "text", false); ok {
				h.Body = s
			}
		case "headers":
			h.Headers = t.headers(v)
		case "secret_headers":
			if v.Kind != yaml.SequenceNode {
				t.bad("http.secret_headers", v, "a list of header names such as [X-Token]")
				break
			}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode || !validHeaderName(item.Value) {
					t.bad("http.secret_headers", item, "a header name")
					continue
				}
				h.SecretHeaders = append(h.SecretHeaders, item.Value)
			}
		default:
			t.errorf(kv.line, "http", "unknown field %q (fields: %s)", kv.key, strings.Join(httpFields, ", "))
		}
	}
	const wantURL = "an absolute http:// or https:// URL"
	if urlField == nil {
		t.errorf(n.Line, "http.url", "missing; want %s", wantURL)
	} else if s, ok := t.text("http.url", urlField, wantURL, false); ok {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.bad("http.url", urlField, wantURL)
		}
		h.URL = s
	}
	switch {
	case method != nil:
		wantMethod := strings.Join(methods[:len(methods)-1], ", ") + " or " + methods[len(methods)-1]
		if s, ok := t.text("http.method", method, wantMethod, false); ok {
			h.Method = strings.ToUpper(s)
			known := false
			for _, m := range methods {
				known = known || m == h.Method
			}
			if !known {
				t.bad("http.method", method, wantMethod)
			}
		}
	case h.Body != "":
		h.Method = http.MethodPost
	default:
		h.Method = http.MethodGet
	}
	return h
}

func (t *taskParse) headers(n *yaml.Node) map[string]string {
	if n.Kind != yaml.MappingNode {
		t.bad("http.headers", n, "a mapping of header names to values")
		return nil
	}
	h := map[string]string{}
	first := map[string]int{} // canonical name -> line
	for _, kv := range t.p.pairs(n, t.label+": http.headers: ") {
		field := "http.headers." + kv.key
		if !validHeaderName(kv.key) {
			t.errorf(kv.line, "http.headers", "%q is not a header name; want letters, digits and ! # $ %% & ' * + - . ^ _ ` | ~", kv.key)
			continue
		}
		canon := http.CanonicalHeaderKey(kv.key)
		if at, dup := first[canon]; dup {
			t.errorf(kv.line, "http.headers", "%q set twice (first at line %d)", kv.key, at)
			continue
		}
		first[canon] = kv.line
		s, ok := t.text(field, kv.val, "a header value", false)
		if !ok {
			continue
		}
		if !validHeaderValue(s) {
			t.bad(field, kv.val, "a header value without line breaks or control characters")
			continue
		}
		h[kv.key] = s
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
