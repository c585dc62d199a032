package app

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/starling-io/starling/core"
	"github.com/starling-io/starling/core/conf"
)

const accountsConf = `accounts {
  A {
    users: [ {user: a, password: a}, {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4} ]
    exports: [
      {stream: "public.>"}
      {stream: "private.>", accounts: [B]}
      {service: "help.>", response_type: stream, response_threshold: "5s"}
    ]
  }
  B {
    users: [ {user: b, password: b, permissions: {publish: "x.>"}} ]
    imports: [
      {stream: {account: A, subject: "public.>"}, prefix: from_a}
      {stream: {account: A, subject: "private.foo"}, to: "foo"}
      {service: {account: A, subject: "help.>"}, to: "ask.>"}
    ]
  }
}
authorization { users: [ {user: g, password: g} ] }
no_auth_user: b
`

func TestAccountsConfig(t *testing.T) {
	m, err := parseWith(t, accountsConf)
	if err != nil {
		t.Fatal(err)
	}
	want := []core.AccountConfig{
		{Name: "A", Exports: []core.Export{
			{Subject: "public.>"},
			{Subject: "private.>", Accounts: []string{"B"}},
			{Service: true, Subject: "help.>", Responses: "stream", ResponseThreshold: 5e9},
		}},
		{Name: "B", Imports: []core.Import{
			{Account: "A", Subject: "public.>", Prefix: "from_a"},
			{Account: "A", Subject: "private.foo", To: "foo"},
			{Service: true, Account: "A", Subject: "help.>", To: "ask.>"},
		}},
	}
	o := m.cfg.core
	if !reflect.DeepEqual(o.Accounts, want) {
		t.Fatalf("accounts\n got %+v\nwant %+v", o.Accounts, want)
	}
	accs := map[string]string{}
	for _, u := range m.cfg.auth.users {
		accs[u.user.Username+u.user.Nkey] = u.user.Account
	}
	if accs["a"] != "A" || accs["b"] != "B" || accs["g"] != "" || accs["UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"] != "A" {
		t.Errorf("users' accounts %v", accs)
	}
	if o.Auth == nil || o.Auth.Required() {
		t.Error("no_auth_user b: auth configured, not required")
	}
}

// Each problem is reported at the file:line:col of the account, export or import at fault,
// all at once.
func TestAccountsConfigErrors(t *testing.T) {
	const text = `accounts {
  A {
    exports: [ {stream: "a.>", accounts: [C]}, {service: "svc"} ]
    imports: [ {stream: {account: B, subject: "b.>"}} ]
  }
  B {
    imports: [
      {stream: {account: A, subject: "a.>"}}
      {stream: {account: A, subject: "zzz"}}
      {service: {account: A, subject: "svc"}, prefix: p}
      {stream: {account: NOPE, subject: "x"}}
      {service: {account: A, subject: "svc"}, to: "a.*"}
    ]
    exports: [ {stream: "b.>"} ]
  }
  C { exports: [ {stream: "c", response_type: stream} ], bogus: 1 }
  D { imports: [ {stream: {account: A}} ] }
}
`
	_, err := parseWith(t, text)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"s.conf:8:7: accounts.B.imports[0]: export not open to this account",
		"s.conf:9:7: accounts.B.imports[1]: subject not exported",
		"s.conf:10:7: accounts.B.imports[2]: a service import has no prefix",
		"s.conf:11:7: accounts.B.imports[3]: no such account \"NOPE\"",
		"s.conf:12:7: accounts.B.imports[4]: to \"a.*\"",
		"s.conf:16:18: accounts.C.exports[0]: response_type and response_threshold are for a service export",
		"s.conf:16:58: accounts.C.bogus: unknown configuration key",
		"s.conf:17:18: accounts.D.imports[0]: an import names the exporting account and subject",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
}

// A loop of imports is refused at the import that closes it; so is a user defined in two
// accounts, and a no_auth_user nobody defines.
func TestAccountsConfigCycles(t *testing.T) {
	const text = `accounts {
  A {
    exports: [ {stream: "a.>"}, {service: "q.>"} ]
    imports: [ {stream: {account: B, subject: "b.>"}, to: "a.>"}, {service: {account: B, subject: "r.>"}, to: "q.>"} ]
    users: [ {user: u, password: p} ]
  }
  B {
    exports: [ {stream: "b.>"}, {service: "r.>"} ]
    imports: [ {stream: {account: A, subject: "a.>"}, to: "b.>"}, {service: {account: A, subject: "q.>"}, to: "r.>"} ]
    users: [ {user: u, password: p} ]
  }
}
no_auth_user: nobody
`
	_, err := parseWith(t, text)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"s.conf:4:16: accounts.A.imports[0]: import cycle",
		"s.conf:4:67: accounts.A.imports[1]: import cycle",
		"s.conf:9:16: accounts.B.imports[0]: import cycle",
		"duplicate user \"u\"",
		"s.conf:13:1: no_auth_user: \"nobody\" is not a user",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
}

// FuzzAccountsConfig: no configuration panics the reader of the accounts block, and every
// problem it reports has a position.
func FuzzAccountsConfig(f *testing.F) {
	f.Add([]byte(accountsConf))
	f.Add([]byte(`accounts { A { imports: [ {service: {account: A, subject: "*.>"}, to: ">"} ] } }`))
	f.Add([]byte(`accounts { A { exports: [ {stream: "a.*.>"} ] }, B { imports: [ {stream: {account: A, subject: "a.x.>"}, to: "b.*.>"} ] } }`))
	f.Add([]byte(`accounts: { "$G": {}, A: { users: [ {user: x} ] } } no_auth_user: x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := conf.Parse("f.conf", data, conf.Options{ReadFile: func(string) ([]byte, error) { return nil, errors.ErrUnsupported }})
		if err != nil {
			return
		}
		s := newSettings()
		var p problems
		readFile(s, m, &p)
		s.buildAccounts(&p)
		for _, e := range p {
			var ce *conf.Error
			if !errors.As(e, &ce) || ce.Pos.Line < 1 {
				t.Fatalf("problem without a position: %v", e)
			}
		}
		if len(p) == 0 && len(s.core.Accounts) > 0 {
			if _, err := core.New(core.Options{Accounts: s.core.Accounts, Port: -1}); err != nil {
				t.Fatalf("valid accounts refused by core: %v", err)
			}
		}
	})
}
