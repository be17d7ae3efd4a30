package jwtguard

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteRuleAndWebsocketFuzzSeeds writes the seed corpora of the rule
// and websocket fuzz targets to testdata/fuzz/<target>/seed-*, where plain
// `go test` runs them as regression cases. Run it after changing a seed:
//
//	JWT_GUARD_WRITE_FUZZ_SEEDS=1 go test -run '^TestWriteRuleAndWebsocketFuzzSeeds$' .
//
// Inputs the fuzzer found (crashes fixed since) live beside them under
// their hash names and are kept.
func TestWriteRuleAndWebsocketFuzzSeeds(t *testing.T) {
	if os.Getenv("JWT_GUARD_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set JWT_GUARD_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz seeds")
	}
	for target, seeds := range map[string]map[string][]any{
		"FuzzRuleCompile":           fuzzRuleCompileSeeds(),
		"FuzzRuleEval":              fuzzRuleEvalSeeds(),
		"FuzzRuleCaddyfile":         fuzzRuleCaddyfileSeeds(),
		"FuzzWebsocketFirstMessage": fuzzWSSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, vals := range seeds {
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), fuzzSeedFile(vals...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fuzzSeedFile encodes values in Go's fuzz corpus format (go test fuzz v1).
func fuzzSeedFile(vals ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		default:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		}
	}
	return b.Bytes()
}

func fuzzRuleCompileSeeds() map[string][]any {
	seeds := map[string][]any{}
	for i, r := range fuzzRuleEvalRules {
		seeds[fmt.Sprintf("eval-rule-%02d", i)] = []any{[]byte(r.rule)}
	}
	for name, js := range map[string]string{
		"allow":            `{"rule":"allow"}`,
		"deny-with-error":  `{"rule":"deny","error":"nope","name":"d"}`,
		"empty-and":        `{"rule":"and","clauses":[]}`,
		"null-clause":      `{"rule":"or","clauses":[null]}`,
		"unknown-type":     match("complex", `"args.auth.x"`, "==", `1`),
		"string-in-number": match("number", `"args.auth.age"`, ">", `"18"`),
		"in-not-list":      match("string", `"args.auth.role"`, "in", `"admin"`),
		"huge-number":      match("number", `"args.auth.n"`, "<", `1e999999999`),
		"16-digits":        match("number", `"args.auth.n"`, "<", `1234567890123456`),
		"unbalanced":       match("string", `"args.auth.perms[args.query.params.res"`, "==", `"x"`),
		"bad-util":         match("date", `"utils.addDuration(args.auth.t, 'forever')"`, "==", `"utils.now()"`),
		"bad-date":         match("date", `"args.auth.t"`, "<", `"2026-13-45"`),
		"webhook":          `{"rule":"webhook","url":"http://127.0.0.1:1/hook","timeout":"1s","store":"args.hook"}`,
		"webhook-claims":   `{"rule":"webhook","url":"https://h.example","claims":"{}"}`,
		"webhook-no-url":   `{"rule":"webhook","url":"{env.NOPE}"}`,
		"query-rule":       `{"rule":"query","db":"db","col":"c","find":{}}`,
		"graphql-rule":     `{"rule":"graphql","graphqlQuery":"{ x }"}`,
		"force-framing":    `{"rule":"force","field":"args.query.headers.Content-Length","value":"1"}`,
		"force-object-hdr": `{"rule":"force","field":"args.query.headers.X","value":{"a":1}}`,
		"remove-res":       `{"rule":"remove","fields":["res.x"]}`,
		"transform-yaml":   `{"rule":"transform","outputFormat":"yaml","requestTemplate":"x","clause":{"rule":"allow"}}`,
		"store-auth":       `{"rule":"transform","store":"args.auth.x","requestTemplate":"{}","clause":{"rule":"allow"}}`,
		"deep-nesting":     strings.Repeat(`{"rule":"and","clauses":[`, 40) + `{"rule":"allow"}` + strings.Repeat(`]}`, 40),
	} {
		seeds[name] = []any{[]byte(js)}
	}
	return seeds
}

func fuzzRuleEvalSeeds() map[string][]any {
	const query = "res=docs&role=admin&n=7&k=plan&i=0&flag=true&d=2026-01-01T10:00:00Z&token=t&via=x"
	const headers = "X-User: user-1\nAuthorization: Bearer x\nX-Roles: spoofed"
	return map[string][]any{
		"typical": {[]byte(testClaims), query, headers,
			[]byte(`{"owner":"user-1","n":7,"max":100,"items":["admin",2],"at":"2026-06-15T00:00:00Z","perm":"read","doc":"docs","ok":true,"o":{"x.y":"user-1"},"roles":["a","b"],"secret":"s"}`)},
		"brackets":        {[]byte(`{"a":{"k1":"v","7":"w"},"b":{"plan":"k1"},"perms":{"docs":"read"},"roles":["admin"],"role":"admin"}`), "k=plan&res=docs&i=0", "", []byte(`{"items":["admin"],"o":{"x.y":"v"},"doc":"docs"}`)},
		"hostile-numbers": {[]byte(`{"age":1e999999999,"level":-0,"ids":[12345678901234567890,1e-400],"seen":"2026-06-15T12:00:00.123456789+14:00"}`), "n=1e999999999", "", []byte(`{"n":-1e-999999999,"max":0.000,"items":[]}`)},
		"type-confusion":  {[]byte(`{"role":["admin"],"perms":"docs","roles":"admin","verified":"true","age":"42","app_metadata":[1]}`), "role=admin&role=x", "", []byte(`["not","an","object"]`)},
		"body-not-json":   {[]byte(`{"sub":"user-1"}`), "", "", []byte(`{"owner":`)},
		"body-nested": {[]byte(`{"sub":"u","app_metadata":{"plan":"pro","tier":{"level":3}}}`), "", "",
			[]byte(`{"md":{"tier":{"x":1}},"owner":{"id":"someone"},"by":"x","items":"not-a-list"}`)},
		"injection":    {[]byte(`{"sub":"a\r\nX-Admin: 1","roles":["x\u0000y"],"role":"admin"}`), "via=%0d%0aX-Evil:%201&user=a", "X-User: a\u00e9", []byte(`{"owner":"a\r\nb"}`)},
		"unicode-keys": {[]byte(`{"perms":{"d\u00f6cs":"read","":"empty"},"roles":[]}`), "res=d%C3%B6cs&k=", "", []byte(`{"":{"":1}}`)},
		"empty":        {[]byte(`{}`), "", "", []byte{}},
	}
}

func fuzzRuleCaddyfileSeeds() map[string][]any {
	seeds := map[string][]any{}
	for name, text := range map[string]string{
		"keyword":      "authenticated",
		"match":        "match args.auth.role == admin",
		"quoted":       `match args.auth.name != "Ada Lovelace"`,
		"number":       "match args.auth.age >= 18 number",
		"number-var":   "match args.auth.age < args.auth.limit number",
		"bool":         "match args.auth.email_verified == true bool",
		"date":         "match utils.roundUpDate(args.auth.seen,'day') < utils.now() date",
		"json-list":    `match args.auth.role in ["admin","editor"]`,
		"bare-list":    "match args.auth.level notin [1, 2] number",
		"placeholder":  "match args.auth.sub == {http.request.uri.query.owner}",
		"brackets":     "match args.auth.perms[args.query.params.res] == read",
		"utils-exists": "match utils.exists(args.params.owner) == true bool",
		"and-or":       "and {\n match args.auth.a == x\n or {\n  deny\n  allow\n  error inner\n }\n error outer\n name both\n}",
		"json-clause":  "or {\n `{\"rule\":\"deny\",\"error\":\"x\"}`\n authenticated\n}",
		"json-rule":    "`{\"rule\":\"match\",\"type\":\"number\",\"f1\":\"args.auth.n\",\"eval\":\">\",\"f2\":1}`",
		"force":        "force args.query.headers.X-User-Id args.auth.sub {\n clause match args.auth.role != guest\n}",
		"remove":       "remove args.query.headers.X-A args.params.b",
		"webhook":      "webhook https://h.example/c {\n store args.h\n outputFormat string\n requestTemplate \"{{.auth.sub}}\"\n timeout 1s\n}",
		"transform":    "transform {\n requestTemplate `{\"n\":1}`\n store args.t\n clause match args.t.n == 1 number\n}",
		"heredoc":      "transform {\n requestTemplate <<EOF\n {\"n\": 1}\n EOF\n clause allow\n}",
		// Errors.
		"unknown":         "sometimes",
		"and-no-block":    "and",
		"unclosed-block":  "and {\n allow",
		"two-clauses":     "force args.query.headers.X v {\n clause allow\n clause deny\n}",
		"list-unclosed":   "match args.auth.role in [a, b",
		"bad-json":        "`{\"rule\":`",
		"json-extra-arg":  "`{\"rule\":\"allow\"}` extra",
		"unknown-option":  "match args.auth.a == b {\n frobnicate\n}",
		"bad-timeout":     "webhook https://h.example {\n timeout soon\n}",
		"missing-match":   "match args.auth.role ==",
		"nested-deep":     strings.Repeat("and {\n", 30) + "allow\n" + strings.Repeat("}\n", 30),
		"empty-or-block":  "or {\n}",
		"force-one-arg":   "force args.query.headers.X",
		"clause-in-and":   "and {\n clause allow\n}",
		"transform-empty": "transform {\n}",
	} {
		seeds[name] = []any{text}
	}
	return seeds
}

// fuzzWSFrameZeroKey is a masked client frame whose masking key is zero, so that
// its payload shows on the wire as is (and a marker in it is found).
func fuzzWSFrameZeroKey(b0 byte, payload []byte) []byte {
	return fuzzWSFrameWithKey(b0, payload, [4]byte{})
}

// fuzzWSFrameWithKey is a client frame masked with key (frame picks a random
// one; seeds use fixed keys so they stay the same each time they are written).
func fuzzWSFrameWithKey(b0 byte, payload []byte, key [4]byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, maskBit|byte(n))
	case n <= 0xffff:
		f = append(f, maskBit|126, byte(n>>8), byte(n))
	default:
		f = append(f, maskBit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, key[:]...)
	start := len(f)
	f = append(f, payload...)
	maskBytes(key[:], f[start:])
	return f
}

// fuzzWSDeflate compresses a message as permessage-deflate does, at level
// (flate.NoCompression keeps the text as is, in stored blocks).
func fuzzWSDeflate(t testing.TB, msg []byte, level int) []byte {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, level)
	_, _ = zw.Write(msg)
	if err := zw.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

func fuzzWSSeeds(t testing.TB) map[string][]any {
	allow := authMessage(fuzzWSMarker("allow"))
	deny := authMessage(fuzzWSMarker("deny"))
	masked := func(b0 byte, payload []byte) []byte {
		return fuzzWSFrameWithKey(b0, payload, [4]byte{0x37, 0xfa, 0x21, 0x3d})
	}
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	ping := fuzzWSFrameZeroKey(finBit|opPing, []byte("p"))
	pong := fuzzWSFrameZeroKey(finBit|opPong, nil)
	stored := fuzzWSDeflate(t, allow, flate.NoCompression)
	// A megabyte of zeros deflates to about 1 KiB: within max_message as
	// sent, far over it once inflated.
	bomb := fuzzWSDeflate(t, make([]byte, 1<<20), flate.BestCompression)
	huge := append([]byte{finBit | opText, maskBit | 127}, binary.BigEndian.AppendUint64(nil, 1<<40)...)
	type seed struct {
		stream  []byte
		deflate bool
		max     uint16
		chunk   uint8
		hold    bool
	}
	list := map[string]seed{
		"allowed":                {fuzzWSFrameZeroKey(finBit|opText, allow), false, 0, 0, false},
		"allowed-binary":         {fuzzWSFrameZeroKey(finBit|opBinary, allow), false, 0, 7, false},
		"allowed-then-more":      {cat(fuzzWSFrameZeroKey(finBit|opText, allow), masked(finBit|opText, []byte("second")), []byte("trailing garbage")), false, 0, 255, false},
		"allowed-hold":           {fuzzWSFrameZeroKey(finBit|opText, allow), false, 0, 0, true},
		"denied-by-rule":         {fuzzWSFrameZeroKey(finBit|opText, deny), false, 0, 0, false},
		"no-token":               {masked(finBit|opText, []byte(`{"data":{"tok":"x"}}`)), false, 0, 0, false},
		"not-json":               {masked(finBit|opText, []byte("hello")), false, 0, 0, false},
		"garbage-token":          {masked(finBit|opText, authMessage("a.b.c")), false, 0, 0, false},
		"fragmented":             {cat(fuzzWSFrameZeroKey(opText, allow[:10]), fuzzWSFrameZeroKey(opContinuation, allow[10:25]), fuzzWSFrameZeroKey(finBit|opContinuation, allow[25:])), false, 0, 3, false},
		"ping-before":            {cat(ping, pong, fuzzWSFrameZeroKey(finBit|opText, allow)), false, 0, 0, false},
		"ping-between-fragments": {cat(fuzzWSFrameZeroKey(opText, allow[:20]), ping, fuzzWSFrameZeroKey(finBit|opContinuation, allow[20:])), false, 0, 1, false},
		"compressed-stored":      {fuzzWSFrameZeroKey(finBit|opText|rsv1Bit, stored), true, 0, 0, false},
		"compressed-fragmented":  {cat(fuzzWSFrameZeroKey(opText|rsv1Bit, stored[:9]), ping, fuzzWSFrameZeroKey(finBit|opContinuation, stored[9:])), true, 0, 5, false},
		"compressed-best":        {masked(finBit|opText|rsv1Bit, fuzzWSDeflate(t, deny, flate.BestCompression)), true, 0, 0, false},
		"compressed-not-agreed":  {fuzzWSFrameZeroKey(finBit|opText|rsv1Bit, stored), false, 0, 0, false},
		"compression-bomb":       {masked(finBit|opText|rsv1Bit, bomb), true, 4096, 0, false},
		"compression-bomb-64KiB": {masked(finBit|opText|rsv1Bit, bomb), true, 0, 9, false},
		"corrupt-deflate":        {masked(finBit|opText|rsv1Bit, []byte{0xff, 0xfe, 0xfd}), true, 0, 0, false},
		"exactly-the-limit":      {fuzzWSFrameZeroKey(finBit|opText, allow), false, uint16(len(allow)), 0, false},
		"one-over-the-limit":     {fuzzWSFrameZeroKey(finBit|opText, allow), false, uint16(len(allow) - 1), 0, false},
		"oversized-announced":    {huge, false, 0, 0, false},
		"oversized-16bit":        {masked(finBit|opText, bytes.Repeat([]byte("x"), 300)), false, 200, 0, false},
		"many-pings":             {cat(bytes.Repeat(ping, 400), fuzzWSFrameZeroKey(finBit|opText, allow)), false, 64, 0, false},
		"unmasked":               {[]byte{finBit | opText, 1, 'x'}, false, 0, 0, false},
		"rsv2":                   {masked(finBit|opText|rsv2Bit, []byte("x")), false, 0, 0, false},
		"unknown-opcode":         {masked(finBit|0x3, nil), false, 0, 0, false},
		"continuation-first":     {masked(finBit|opContinuation, []byte("x")), false, 0, 0, false},
		"long-ping":              {masked(finBit|opPing, bytes.Repeat([]byte("p"), 126)), false, 0, 0, false},
		"non-minimal-length":     {[]byte{finBit | opText, maskBit | 126, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'}, false, 0, 0, false},
		"close-first":            {masked(finBit|opClose, []byte{0x03, 0xe8}), false, 0, 0, false},
		"half-a-frame":           {fuzzWSFrameZeroKey(finBit|opText, allow)[:40], false, 0, 0, false},
		"half-a-frame-hold":      {fuzzWSFrameZeroKey(finBit|opText, allow)[:40], false, 0, 0, true},
		"empty":                  {nil, false, 0, 0, false},
		"empty-message":          {masked(finBit|opText, nil), false, 0, 0, false},
	}
	seeds := map[string][]any{}
	for name, s := range list {
		seeds[name] = []any{s.stream, s.deflate, s.max, s.chunk, s.hold}
	}
	return seeds
}
