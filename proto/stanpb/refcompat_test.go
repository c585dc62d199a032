package stanpb_test

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"

	refpb "github.com/nats-io/stan.go/pb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/starling-io/starling/proto/stanpb"
)

// refMsg is what stan.go's gogo-generated pb types offer.
type refMsg interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// refTypes: every client message type of stan.go v0.10.4's pb package.
var refTypes = map[protoreflect.Name]func() refMsg{
	"PubMsg":               func() refMsg { return new(refpb.PubMsg) },
	"PubAck":               func() refMsg { return new(refpb.PubAck) },
	"MsgProto":             func() refMsg { return new(refpb.MsgProto) },
	"Ack":                  func() refMsg { return new(refpb.Ack) },
	"ConnectRequest":       func() refMsg { return new(refpb.ConnectRequest) },
	"ConnectResponse":      func() refMsg { return new(refpb.ConnectResponse) },
	"Ping":                 func() refMsg { return new(refpb.Ping) },
	"PingResponse":         func() refMsg { return new(refpb.PingResponse) },
	"SubscriptionRequest":  func() refMsg { return new(refpb.SubscriptionRequest) },
	"SubscriptionResponse": func() refMsg { return new(refpb.SubscriptionResponse) },
	"UnsubscribeRequest":   func() refMsg { return new(refpb.UnsubscribeRequest) },
	"CloseRequest":         func() refMsg { return new(refpb.CloseRequest) },
	"CloseResponse":        func() refMsg { return new(refpb.CloseResponse) },
}

// TestSchemaMatchesStanGo compares, field by field, our descriptors with the protobuf struct tags
// of stan.go's types: same numbers, names, wire encodings, Go types and Go field names, and no
// field on either side that the other lacks.
func TestSchemaMatchesStanGo(t *testing.T) {
	msgs := allMessages(t)
	if len(msgs) != len(refTypes) {
		t.Fatalf("%d message types here, %d in stan.go", len(msgs), len(refTypes))
	}
	for _, m := range msgs {
		md := m.ProtoReflect().Descriptor()
		newRef, ok := refTypes[md.Name()]
		if !ok {
			t.Errorf("%s: no such type in stan.go's pb", md.Name())
			continue
		}
		rt := reflect.TypeOf(newRef()).Elem()
		ours := reflect.TypeOf(m).Elem()
		seen := 0
		for i := 0; i < rt.NumField(); i++ {
			sf := rt.Field(i)
			tag, ok := sf.Tag.Lookup("protobuf")
			if !ok {
				continue
			}
			seen++
			parts := strings.Split(tag, ",") // e.g. varint,10,opt,name=startPosition,proto3,enum=pb.StartPosition
			num, _ := strconv.Atoi(parts[1])
			fd := md.Fields().ByNumber(protoreflect.FieldNumber(num))
			if fd == nil {
				t.Errorf("%s.%s: stan.go has field %d, we do not", md.Name(), sf.Name, num)
				continue
			}
			if want := "name=" + string(fd.Name()); parts[3] != want {
				t.Errorf("%s field %d: stan.go %s, ours %s", md.Name(), num, parts[3], want)
			}
			if enc := wireEncoding(fd.Kind()); parts[0] != enc {
				t.Errorf("%s field %d: stan.go encodes %s, ours %s", md.Name(), num, parts[0], enc)
			}
			of, ok := ours.FieldByName(sf.Name)
			if !ok {
				t.Errorf("%s: no Go field %s", md.Name(), sf.Name)
				continue
			}
			if of.Type.Kind() != sf.Type.Kind() || of.Type.Name() != sf.Type.Name() {
				t.Errorf("%s.%s: Go type %v, stan.go %v", md.Name(), sf.Name, of.Type, sf.Type)
			}
		}
		if seen != md.Fields().Len() {
			t.Errorf("%s: %d fields in stan.go, %d here", md.Name(), seen, md.Fields().Len())
		}
	}
	for v := refpb.StartPosition(0); v <= refpb.StartPosition_First; v++ {
		if got := stanpb.StartPosition(v).String(); got != v.String() {
			t.Errorf("StartPosition %d: ours %s, stan.go %s", v, got, v.String())
		}
	}
}

func wireEncoding(k protoreflect.Kind) string {
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return "bytes"
	}
	return "varint" // every scalar in stan.proto is a varint type
}

// TestInteropWithStanGo encodes every message type, every field set, with stan.go's code and
// decodes it with ours, and the reverse; both encoders must also produce the same bytes.
func TestInteropWithStanGo(t *testing.T) {
	for seed := 0; seed < 3; seed++ {
		for _, m := range allMessages(t) {
			name := m.ProtoReflect().Descriptor().Name()
			fill(m.ProtoReflect(), seed)
			ourBytes, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			// ours → stan.go → bytes again
			ref := refTypes[name]()
			if err := ref.Unmarshal(ourBytes); err != nil {
				t.Fatalf("%s: stan.go cannot decode ours: %v", name, err)
			}
			refBytes, err := ref.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(refBytes, ourBytes) {
				t.Errorf("%s: stan.go re-encodes\n % x\nours\n % x", name, refBytes, ourBytes)
			}
			// stan.go → ours, field values compared by Go name
			back := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(refBytes, back); err != nil {
				t.Fatalf("%s: cannot decode stan.go's bytes: %v", name, err)
			}
			if !proto.Equal(back, m) {
				t.Errorf("%s: decoded %v, want %v", name, back, m)
			}
			sameFields(t, string(name), reflect.ValueOf(ref).Elem(), reflect.ValueOf(back).Elem())
		}
	}
}

// TestInteropTypedValues: the same exchange with values typed out by hand, as stan.go builds them.
func TestInteropTypedValues(t *testing.T) {
	ref := &refpb.SubscriptionRequest{
		ClientID: "c1", Subject: "foo", QGroup: "q", Inbox: "_INBOX.d", MaxInFlight: 1024,
		AckWaitInSecs: 30, DurableName: "dur", StartPosition: refpb.StartPosition_TimeDeltaStart,
		StartTimeDelta: -5_000_000_000,
	}
	b, _ := ref.Marshal()
	var ours stanpb.SubscriptionRequest
	if err := proto.Unmarshal(b, &ours); err != nil {
		t.Fatal(err)
	}
	if ours.GetStartPosition() != stanpb.StartPosition_TimeDeltaStart || ours.StartTimeDelta != -5_000_000_000 ||
		ours.DurableName != "dur" || ours.MaxInFlight != 1024 {
		t.Fatalf("decoded %v", &ours)
	}
	mp, _ := proto.Marshal(&stanpb.MsgProto{Sequence: 2, Subject: "foo", Data: []byte("m2"),
		Timestamp: 1_700_000_000_000_000_000, Redelivered: true, RedeliveryCount: 1})
	var rm refpb.MsgProto
	if err := rm.Unmarshal(mp); err != nil {
		t.Fatal(err)
	}
	if rm.Sequence != 2 || rm.Subject != "foo" || string(rm.Data) != "m2" || !rm.Redelivered ||
		rm.RedeliveryCount != 1 || rm.Timestamp != 1_700_000_000_000_000_000 {
		t.Fatalf("stan.go decoded %+v", rm)
	}
	// An empty payload is a successful response for stan.go too.
	var cr refpb.CloseResponse
	if err := cr.Unmarshal(nil); err != nil || cr.Error != "" {
		t.Fatalf("empty CloseResponse: %v %q", err, cr.Error)
	}
}

// sameFields compares the exported fields stan.go's struct has with ours of the same Go name.
func sameFields(t *testing.T, name string, ref, ours reflect.Value) {
	t.Helper()
	for i := 0; i < ref.NumField(); i++ {
		f := ref.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		o := ours.FieldByName(f.Name)
		rv := ref.Field(i)
		if !o.IsValid() || o.Kind() != rv.Kind() {
			t.Errorf("%s.%s: no field of kind %v here", name, f.Name, rv.Kind())
			continue
		}
		var equal bool
		switch rv.Kind() {
		case reflect.Slice:
			equal = bytes.Equal(rv.Bytes(), o.Bytes())
		case reflect.String:
			equal = rv.String() == o.String()
		case reflect.Bool:
			equal = rv.Bool() == o.Bool()
		case reflect.Int32, reflect.Int64:
			equal = rv.Int() == o.Int()
		case reflect.Uint32, reflect.Uint64:
			equal = rv.Uint() == o.Uint()
		default:
			t.Fatalf("%s.%s: unhandled kind %v", name, f.Name, rv.Kind())
		}
		if !equal {
			t.Errorf("%s.%s: stan.go %v, ours %v", name, f.Name, rv.Interface(), o.Interface())
		}
	}
}
