package conf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a Value.
type Kind int

// The kinds of value. The zero Kind is invalid: every parsed Value has one of these.
const (
	KindString Kind = iota + 1
	KindInt
	KindFloat
	KindBool
	KindDuration
	KindMap
	KindArray
)

// String returns the kind's name as used in error messages: "string", "integer", ...
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "integer"
	case KindFloat:
		return "float"
	case KindBool:
		return "boolean"
	case KindDuration:
		return "duration"
	case KindMap:
		return "map"
	case KindArray:
		return "array"
	}
	return "invalid"
}

// Value is one parsed value. Only the field for its Kind is set (Str for KindString, Int
// for KindInt, ...). Raw is the source text of a scalar as written, quotes included for a
// quoted string; a value that came from a $variable has the referenced value's Raw and the
// reference's Pos.
type Value struct {
	Kind  Kind
	Pos   Pos
	Str   string
	Int   int64
	Float float64
	Bool  bool
	Dur   time.Duration
	Map   *Map
	Array []*Value
	Raw   string
}

// Map is a configuration map: the top level of a file or a { ... } block.
type Map struct {
	Keys    []string // each key once, in the order it first appeared
	Entries map[string]*Entry
	sets    int // entries set so far: the next Entry.seq
}

// Entry is one key of a Map. A key defined twice keeps the last value and that definition's
// position (nats-server behaviour); its place in Map.Keys stays that of the first.
type Entry struct {
	Key    string
	KeyPos Pos
	Value  *Value
	// Referenced is set when a $variable resolved to this entry. Mapping code can use it
	// to let keys that exist only as variables pass its unknown-key check, as nats-server does.
	Referenced bool
	seq        int // when it was set in its map: the later of two spellings of a key wins
}

func newMap() *Map { return &Map{Entries: make(map[string]*Entry)} }

// set adds or replaces key. Replacing does not move the key in Keys, which keeps duplicate
// keys O(1) each.
func (m *Map) set(key string, pos Pos, v *Value) {
	if _, ok := m.Entries[key]; !ok {
		m.Keys = append(m.Keys, key)
	}
	m.Entries[key] = &Entry{Key: key, KeyPos: pos, Value: v}
	m.stamp(m.Entries[key])
}

// stamp records that e is the latest entry set in m.
func (m *Map) stamp(e *Entry) {
	m.sets++
	e.seq = m.sets
}

// FoldedKeys returns Keys with the keys that differ only in letter case folded into one,
// the one set last, at the place of the first spelling. nats-server keeps Max_Payload and
// max_payload apart and applies both in random order; taking the later one treats them as
// a key given twice, whose last value wins.
func (m *Map) FoldedKeys() []string {
	last := make(map[string]*Entry, len(m.Keys))
	for _, k := range m.Keys {
		e := m.Entries[k]
		if l := strings.ToLower(k); last[l] == nil || e.seq > last[l].seq {
			last[l] = e
		}
	}
	out := make([]string, 0, len(m.Keys))
	for _, k := range m.Keys {
		l := strings.ToLower(k)
		if e := last[l]; e != nil {
			out = append(out, e.Key)
			delete(last, l)
		}
	}
	return out
}

// Get returns the entry for key. It tries the exact key first, then a case-insensitive match
// (nats-server treats option names case-insensitively; of several spellings the one set
// last wins). It is safe on a nil Map.
func (m *Map) Get(key string) (*Entry, bool) {
	if m == nil {
		return nil, false
	}
	if e, ok := m.Entries[key]; ok {
		return e, true
	}
	var found *Entry
	for _, k := range m.Keys {
		if e := m.Entries[k]; strings.EqualFold(k, key) && (found == nil || e.seq > found.seq) {
			found = e
		}
	}
	return found, found != nil
}

// Errorf returns an error at the entry's key position whose message starts with the key:
// "file:line:col: key: message". It wraps what fmt.Errorf would (use %w to wrap a cause).
func (e *Entry) Errorf(format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Pos: e.KeyPos, Msg: e.Key + ": " + err.Error(), Err: err}
}

// describe names a value for an error message: `string "abc"`, `integer 1MB`, `map`.
func describe(v *Value) string {
	switch v.Kind {
	case KindString:
		return "string " + strconv.Quote(v.Str)
	case KindMap, KindArray:
		return v.Kind.String()
	}
	return v.Kind.String() + " " + v.Raw
}

func (e *Entry) mismatch(want string) *Error {
	return &Error{Pos: e.KeyPos, Msg: e.Key + ": expected " + want + ", got " + describe(e.Value), Err: ErrType}
}

// stringText returns the text of a value read as a string: a string's value, or a bare
// duration as written (nats-server's parser has no durations: 10s is a string to it). A
// number or a boolean is not one: nats-server and nats-streaming-server refuse them where a
// string is expected (server_name: 5, streaming { id: 5 }), and so do we, rather than take
// a password: 0123 as "0123" where they stop.
func stringText(v *Value) (string, bool) {
	switch v.Kind {
	case KindString:
		return v.Str, true
	case KindDuration:
		return v.Raw, true
	}
	return "", false
}

// notString is the error for v where a string is expected, at pos, named name.
func notString(pos Pos, name, want string, v *Value) *Error {
	msg := name + ": expected " + want + ", got " + describe(v)
	switch v.Kind {
	case KindInt, KindFloat, KindBool:
		msg += " (quote it to give it as a string: \"" + v.Raw + "\")"
	}
	return &Error{Pos: pos, Msg: msg, Err: ErrType}
}

// AsString returns a string value, or a bare duration (10s) as written; a number, a
// boolean, a map or an array is an error (quote a number meant as a string: "0123").
func (e *Entry) AsString() (string, error) {
	if s, ok := stringText(e.Value); ok {
		return s, nil
	}
	return "", notString(e.KeyPos, e.Key, "a string", e.Value)
}

// asKind returns the value, or for a quoted string the value its text would have unquoted
// (so "1MB" and "true" in quotes work where a size or a boolean is expected).
func asKind(v *Value) Value {
	if v.Kind == KindString {
		if c, msg := classify(strings.TrimSpace(v.Str)); msg == "" {
			return c
		}
	}
	return *v
}

// AsInt returns an integer value, including sizes such as 1MB (written bare or quoted).
func (e *Entry) AsInt() (int64, error) {
	if v := asKind(e.Value); v.Kind == KindInt {
		return v.Int, nil
	}
	return 0, e.mismatch("an integer")
}

// ParseSize reads s as a size written bare in a file is read (1048576, 64KB, 1MB, 2G:
// K M G T P are powers of 1000, KB Ki KiB ... of 1024, in any case), for command-line
// flags that take sizes. Anything but an integer, including one out of range, is an error.
func ParseSize(s string) (int64, error) {
	v, msg := classify(strings.TrimSpace(s))
	switch {
	case msg != "":
		return 0, errors.New(msg)
	case v.Kind != KindInt:
		return 0, fmt.Errorf("expected a size, got %q", s)
	}
	return v.Int, nil
}

// AsSize is AsInt with "expected a size" in its error, for byte counts like max_payload.
func (e *Entry) AsSize() (int64, error) {
	if v := asKind(e.Value); v.Kind == KindInt {
		return v.Int, nil
	}
	return 0, e.mismatch("a size")
}

// AsBool returns a boolean value: true/false/yes/no/on/off in any case, bare or quoted.
func (e *Entry) AsBool() (bool, error) {
	if v := asKind(e.Value); v.Kind == KindBool {
		return v.Bool, nil
	}
	return false, e.mismatch("a boolean")
}

// AsFloat returns a float value; an integer is accepted.
func (e *Entry) AsFloat() (float64, error) {
	switch v := asKind(e.Value); v.Kind {
	case KindFloat:
		return v.Float, nil
	case KindInt:
		return float64(v.Int), nil
	}
	return 0, e.mismatch("a number")
}

// AsDuration returns a duration written as one, bare (10s, 500ms) or quoted ("2m"), as
// nats-server reads lame_duck_duration or an export's response_threshold and
// nats-streaming-server every duration. A number is an error, including a bare 2m, which is
// the size 2000000 to both (quote it: "2m"); so is a quoted number without a unit ("2").
// AsSeconds and AsTimeout take numbers where the references do.
func (e *Entry) AsDuration() (time.Duration, error) {
	if d, ok := durationText(e.Value); ok {
		return d, nil
	}
	return 0, e.durationMismatch()
}

// durationText reads a string or a bare duration as a Go duration.
func durationText(v *Value) (time.Duration, bool) {
	switch v.Kind {
	case KindDuration:
		return v.Dur, true
	case KindString:
		d, err := time.ParseDuration(strings.TrimSpace(v.Str))
		return d, err == nil
	}
	return 0, false
}

// isDurationWord reports whether a bare number with a suffix also reads as a duration (2m).
func isDurationWord(w string) bool {
	_, err := time.ParseDuration(w)
	return err == nil && strings.IndexFunc(w, func(r rune) bool { return r > '9' }) >= 0
}

func (e *Entry) durationMismatch() *Error {
	err := e.mismatch("a duration")
	switch v := e.Value; {
	case v.Kind == KindInt && isDurationWord(v.Raw):
		err.Msg += fmt.Sprintf(" (a bare %s is the number %d, as in nats-server: write \"%s\")", v.Raw, v.Int, v.Raw)
	case v.Kind == KindFloat || (v.Kind == KindInt && strings.Trim(v.Raw, "-0123456789") == ""):
		err.Msg += fmt.Sprintf(" (write it with a unit: \"%ss\")", v.Raw)
	case v.Kind == KindString && strings.TrimSpace(v.Str) != "":
		if _, err2 := strconv.ParseFloat(strings.TrimSpace(v.Str), 64); err2 == nil {
			err.Msg += fmt.Sprintf(" (write it with a unit: \"%ss\")", strings.TrimSpace(v.Str))
		}
	}
	return err
}

// AsSeconds is AsDuration that also takes a whole number as seconds, as nats-server's
// ping_interval and write_deadline do: ping_interval: 30 is 30s. A fraction (1.5) is an
// error, as in nats-server. nats-server applies a number's size suffix first, so it takes a
// bare 2m as 2000000 seconds (23 days) without a word; here that is an error that says to
// quote it: surely two minutes were meant.
func (e *Entry) AsSeconds() (time.Duration, error) {
	if d, ok := durationText(e.Value); ok {
		return d, nil
	}
	if v := e.Value; v.Kind == KindInt && isDurationWord(v.Raw) {
		return 0, e.durationMismatch()
	}
	if v := e.Value; v.Kind == KindInt && v.Int <= math.MaxInt64/int64(time.Second) && v.Int >= math.MinInt64/int64(time.Second) {
		return time.Duration(v.Int) * time.Second, nil
	}
	if e.Value.Kind == KindFloat {
		err := e.mismatch("a duration or a whole number of seconds")
		err.Msg += fmt.Sprintf(" (write it with a unit: \"%ss\")", e.Value.Raw)
		return 0, err
	}
	return 0, e.durationMismatch()
}

// AsTimeout is AsDuration that also takes a number of seconds, whole or not (timeout: 0.5),
// as nats-server's authorization and tls timeouts do; a bare 2m is refused, as in AsSeconds.
func (e *Entry) AsTimeout() (time.Duration, error) {
	if d, ok := durationText(e.Value); ok {
		return d, nil
	}
	if v := e.Value; v.Kind == KindInt && isDurationWord(v.Raw) {
		return 0, e.durationMismatch() // a bare 2m: as AsSeconds
	}
	var secs float64
	switch v := e.Value; v.Kind {
	case KindInt:
		secs = float64(v.Int)
	case KindFloat:
		secs = v.Float
	default:
		return 0, e.durationMismatch()
	}
	if ns := secs * float64(time.Second); ns < math.MaxInt64 && ns > math.MinInt64 {
		return time.Duration(ns), nil
	}
	return 0, e.durationMismatch()
}

// AsMap returns a map value.
func (e *Entry) AsMap() (*Map, error) {
	if e.Value.Kind == KindMap {
		return e.Value.Map, nil
	}
	return nil, e.mismatch("a map")
}

// AsArray returns an array value.
func (e *Entry) AsArray() ([]*Value, error) {
	if e.Value.Kind == KindArray {
		return e.Value.Array, nil
	}
	return nil, e.mismatch("an array")
}

// AsStrings returns a string or an array of strings as a slice (elements read as by
// AsString). An element of another kind is an error at the element's position.
func (e *Entry) AsStrings() ([]string, error) {
	if s, ok := stringText(e.Value); ok {
		return []string{s}, nil
	}
	if e.Value.Kind != KindArray {
		return nil, notString(e.KeyPos, e.Key, "a string or an array of strings", e.Value)
	}
	out := make([]string, 0, len(e.Value.Array))
	for i, v := range e.Value.Array {
		s, ok := stringText(v)
		if !ok {
			return nil, notString(v.Pos, fmt.Sprintf("%s[%d]", e.Key, i), "a string", v)
		}
		out = append(out, s)
	}
	return out, nil
}
