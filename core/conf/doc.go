// Package conf parses nats-server style configuration files into a tree of maps, arrays and
// scalars, every key and value carrying its file:line:col. It only parses: what the keys mean
// is decided by the caller (cmd/starling), which uses the Entry.As* helpers so a type mismatch
// is reported as "file:line:col: key: expected a size, got string \"abc\"".
//
// # Format
//
// A file is an implicit map. An entry is a key, an optional ':' or '=', and a value
// ("port: 4222", "port = 4222", "port 4222"); entries end at a newline, ',' or ';'. Keys are
// bare words or quoted. Comments run from '#' or "//" to the end of the line, where a token
// could start (so the "//" in nats://host:4222 is part of the word).
//
// Values:
//
//   - maps { ... } (no separator needed before the brace: "tls { ... }") and arrays
//     [ a, b ] whose elements are separated by commas or newlines;
//   - "double-quoted" strings with escapes \t \n \r \" \\ \/ \xXX \uXXXX, 'single-quoted'
//     raw strings (both end on their line), and block strings: '(' up to a line holding
//     only ')', kept raw;
//   - bare words, classified as nats-server's lexer reads them: true/false/yes/no/on/off
//     (any case) are booleans; -?digits are int64; a size suffix multiplies (K M G T P E
//     are powers of 1000, KB/Ki/KiB ... are powers of 1024, any case); 2.5 is a float; a
//     word that starts with digits and goes on with letters is a string (1e3, 3secret,
//     1h30), a time.Duration when it is a Go duration (10s, 500ms, 1h30m; it reads back as
//     its text where a string is expected); anything else is a string (127.0.0.1,
//     0.0.0.0:4222, nats-route://h:6222). What nats-server's lexer refuses is an error: a
//     number out of range, a fraction or a negative number followed by letters (1.5s, -5s,
//     1.5MB), digits followed by '-' (a date: 2024-01-02), a word starting with '.' or with
//     a '-' not followed by a digit;
//   - $NAME: the value of the nearest earlier key NAME in this or an enclosing
//     map, else the environment variable NAME, else an error. As in nats-server, the
//     variable's text is read as a value: A=4222 is an integer, A='"x y"' the string x y,
//     A='[a, b]' a list, A='$B' the variable B (a cycle is an error), A='a b' an error. Inside quotes '$' is literal. As in nats-server, a bare
//     $2a$... is a bcrypt hash, not a variable; $2b$, $2x$ and $2y$ hashes must be quoted.
//     ${NAME} is an error, as in nats-server (which looks for a variable named "{NAME").
//
// One spelling is ambiguous: a bare 2m is the size 2000000, as nats-server reads it, and
// stays that number where a duration is expected (Entry.AsDuration refuses it, AsSeconds
// takes 2000000 seconds, as nats-server's ping_interval does). A quoted "2m" stays a string
// until asked.
//
// "include path" (a directive: no ':' or '=') parses the file at path, relative to the
// including file's directory (an absolute path too, as nats-server joins them), and merges
// its keys into the current map. As in nats-server the file is parsed on its own: its
// $variables see its own keys and the environment, not the includer's. Errors in it carry
// its own name and lines. Include cycles, includes nested more than 10 deep (or more than
// 1000 in one parse), and maps and arrays nested more than 64 deep are errors, so no input
// can exhaust the stack or make the work explode.
//
// A key given twice keeps the last value and position (nats-server behaviour). A file that
// starts with a UTF-8 byte order mark is refused at 1:1, as nats-server refuses it.
//
// # Errors
//
// Parse does not stop at the first problem: after a bad entry it carries on at the next
// separator or line, after an unterminated map or array at the bracket that closes the outer
// one, and reports everything (up to 100) as Errors, one "file:line:col: message" per line.
// An error in a value (an undefined variable, a bad number) names the key's dotted path
// first: "file:line:col: authorization.timeout: undefined variable \"T\"".
// Each *Error wraps a sentinel (ErrSyntax, ErrUndefined, ErrInclude, ErrTooDeep, ErrType).
//
// The parser is a recursive descent over the bytes of each file, with no token stream: the
// scanner (lex.go) reads what the parser (parse.go) asks for, because a bare word ends
// differently as a key (at ':' or '=') than as a value.
package conf
