package main

import (
	"errors"
	"fmt"
	"strings"
)

// The service-import row: account SVC exports the service svcExported, account CLI imports
// it as svcImported; the publisher logs in to CLI, the subscriber to SVC, so every message
// crosses the import (a subject mapping and a change of account) on its way. Both servers
// load the same file.
const (
	svcImportConfFile = "svcimport.conf"
	svcExported       = "bench.svc.exported"
	svcImported       = "bench.svc.imported"
	svcUser           = "svc"
	cliUser           = "cli"
)

func svcImportConfig() *serverConfig {
	return &serverConfig{file: svcImportConfFile, check: checkSvcImport, text: fmt.Sprintf(`accounts {
  SVC {
    users: [ {user: %s, password: %s} ]
    exports: [ {service: %q} ]
  }
  CLI {
    users: [ {user: %s, password: %s} ]
    imports: [ {service: {account: SVC, subject: %q}, to: %q} ]
  }
}
`, svcUser, svcUser, svcExported, cliUser, cliUser, svcExported, svcImported)}
}

// checkSvcImport fails unless the server refuses a client without credentials: the file
// was loaded.
func checkSvcImport(addr string) error {
	anon := "CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n"
	err := converse(addr, anon, func(line string) (bool, error) {
		switch {
		case strings.HasPrefix(line, "PONG"):
			return false, fmt.Errorf("server accepted a client without credentials: was %s loaded?", svcImportConfFile)
		case strings.HasPrefix(line, "-ERR"):
			return true, nil
		}
		return false, nil
	})
	if err != nil && !errors.Is(err, errClosed) { // closing without -ERR is a refusal too
		return fmt.Errorf("service import check: %w", err)
	}
	return nil
}
