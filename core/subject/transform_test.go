package subject

import "testing"

func TestSubsetOverlap(t *testing.T) {
	for _, c := range []struct {
		p, q            string
		subset, overlap bool
	}{
		{"foo.bar", "foo.bar", true, true},
		{"foo.bar", "foo.*", true, true},
		{"foo.*", "foo.bar", false, true},
		{"foo.>", "foo.*", false, true},
		{"foo.*", "foo.>", true, true},
		{"foo.*.baz", "foo.>", true, true},
		{"foo", "foo.>", false, false},
		{"foo.bar", "foo.baz", false, false},
		{">", "foo.>", false, true},
		{"*.bar", "foo.*", false, true},
		{"a.b.c", "a.b", false, false},
	} {
		if got := SubsetOf(c.p, c.q); got != c.subset {
			t.Errorf("SubsetOf(%q, %q) = %v", c.p, c.q, got)
		}
		if got := Overlap(c.p, c.q); got != c.overlap {
			t.Errorf("Overlap(%q, %q) = %v", c.p, c.q, got)
		}
	}
}

func TestTransform(t *testing.T) {
	for _, c := range []struct {
		from, to, subj, want string
		ok                   bool
	}{
		{"foo.>", "x.foo.>", "foo.bar.baz", "x.foo.bar.baz", true},
		{"foo.*.>", "bar.*.baz.>", "foo.1.2.3", "bar.1.baz.2.3", true},
		{"foo.bar", "baz", "foo.bar", "baz", true},
		{"foo.bar", "baz", "foo.bar.x", "", false},
		{"foo.*", "b.*", "foo", "", false},
		{"foo.>", "b.>", "foo", "", false},
		{"foo.*", "b.*", "foo.x.y", "", false},
		{"foo.*", "b.*", "foo.*", "b.*", true},
		{"x.>", ">", "x.a.>", "a.>", true},
	} {
		tr, err := NewTransform(c.from, c.to)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := tr.ApplyString(c.subj)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s→%s (%q) = %q, %v", c.from, c.to, c.subj, got, ok)
		}
	}
	if _, err := NewTransform("foo.*", "bar.>"); err == nil {
		t.Error("mismatched wildcards accepted")
	}
	tr, _ := NewTransform("foo.*.>", "bar.*.>")
	dst := make([]byte, 0, 64)
	subj := []byte("foo.a.b.c")
	if n := testing.AllocsPerRun(100, func() { dst, _ = tr.Apply(dst, subj) }); n != 0 {
		t.Errorf("Apply allocates %v", n)
	}
}
