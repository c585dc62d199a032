package streaming

// validClientID: ^[a-zA-Z0-9_-]+$ (spec §4).
func validClientID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validChannel: non-empty, no leading/trailing '.', no "..", no '/', no wildcards, no
// whitespace (spec §10.1; whitespace would not survive as a NATS subject).
func validChannel(name string) bool {
	if name == "" || name[0] == '.' || name[len(name)-1] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '*', '>', '/', ' ', '\t', '\r', '\n', '\f':
			return false
		case '.':
			if name[i+1] == '.' {
				return false
			}
		}
	}
	return true
}
